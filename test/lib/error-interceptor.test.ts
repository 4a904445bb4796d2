import { Writable } from "node:stream";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { StateService } from "../../gen/agentainer/state/v1/state_pb.js";
import { createErrorInterceptor, toConnectError } from "../../lib/error-interceptor.js";
import {
  AgentainerError,
  AlreadyExistsError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  ResourceExhaustedError,
  UnavailableError,
  type ErrorKind,
} from "../../lib/errors.js";
import { createLogger, type Logger } from "../../lib/logger.js";

/** A real pino logger whose JSON lines land in `lines`. */
function capturingLogger(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString("utf8").split("\n")) {
        if (line.trim() !== "") lines.push(JSON.parse(line) as Record<string, unknown>);
      }
      callback();
    },
  });
  return { logger: createLogger({ name: "interceptor-test", level: "info", destination }), lines };
}

describe("toConnectError", () => {
  it.each<[string, AgentainerError, Code]>([
    [
      "InvalidArgumentError",
      new InvalidArgumentError("key must not be empty"),
      Code.InvalidArgument,
    ],
    ["NotFoundError", new NotFoundError("workflow wf-1 has no state"), Code.NotFound],
    ["AlreadyExistsError", new AlreadyExistsError("pool p exists"), Code.AlreadyExists],
    [
      "FailedPreconditionError",
      new FailedPreconditionError("key holds a string"),
      Code.FailedPrecondition,
    ],
    [
      "ResourceExhaustedError",
      new ResourceExhaustedError("state is over 10 MiB"),
      Code.ResourceExhausted,
    ],
    ["UnavailableError", new UnavailableError("redis is down"), Code.Unavailable],
  ])("maps %s to its code and keeps the message", (_name, err, code) => {
    const connectError = toConnectError(err);
    expect(connectError).toBeInstanceOf(ConnectError);
    expect(connectError.code).toBe(code);
    expect(connectError.rawMessage).toBe(err.message);
  });

  it.each<[ErrorKind, Code]>([
    ["deadline_exceeded", Code.DeadlineExceeded],
    ["cancelled", Code.Canceled],
  ])("maps an AgentainerError of kind %s to its code", (kind, code) => {
    const connectError = toConnectError(new AgentainerError(kind, `it was ${kind}`));
    expect(connectError.code).toBe(code);
    expect(connectError.rawMessage).toBe(`it was ${kind}`);
  });

  it("turns an unknown error into INTERNAL with a generic message and logs the original", () => {
    const { logger, lines } = capturingLogger();
    const connectError = toConnectError(
      new TypeError("cannot read properties of undefined (password=hunter2)"),
      logger,
      "agentainer.state.v1.StateService/Get",
    );
    expect(connectError.code).toBe(Code.Internal);
    expect(connectError.rawMessage).toBe("internal error; the server log has the details");
    expect(connectError.message).not.toContain("hunter2");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      level: 50,
      msg: "unexpected error in handler",
      procedure: "agentainer.state.v1.StateService/Get",
      err: { type: "TypeError", message: "cannot read properties of undefined (password=hunter2)" },
    });
  });

  it("turns a thrown non-Error value into INTERNAL too", () => {
    const { logger, lines } = capturingLogger();
    expect(toConnectError("just a string", logger).code).toBe(Code.Internal);
    expect(toConnectError(undefined).code).toBe(Code.Internal);
    expect(lines).toHaveLength(1);
  });

  it("passes a ConnectError through untouched and does not log it", () => {
    const { logger, lines } = capturingLogger();
    const original = new ConnectError("too many watchers", Code.ResourceExhausted);
    expect(toConnectError(original, logger)).toBe(original);
    expect(lines).toEqual([]);
  });

  it("does not log domain errors", () => {
    const { logger, lines } = capturingLogger();
    toConnectError(new NotFoundError("nope"), logger);
    expect(lines).toEqual([]);
  });
});

describe("createErrorInterceptor through a router transport", () => {
  /** A StateService client whose handlers throw what `fail` throws. */
  function stateClient(fail: () => never, options: { afterFirst?: boolean } = {}) {
    const { logger, lines } = capturingLogger();
    const transport = createRouterTransport(
      (router) =>
        router.service(StateService, {
          get() {
            return Promise.resolve().then(fail);
          },
          set() {
            fail();
          },
          async *watch(req) {
            if (options.afterFirst) {
              yield { change: { workflowId: req.workflowId, version: 1n } };
            }
            fail();
          },
        }),
      { router: { interceptors: [createErrorInterceptor(logger)] } },
    );
    return { client: createClient(StateService, transport), lines };
  }

  /** Awaits `call` and returns the ConnectError the client saw. */
  async function clientError(call: () => Promise<unknown>): Promise<ConnectError> {
    try {
      await call();
    } catch (err) {
      expect(err).toBeInstanceOf(ConnectError);
      return err as ConnectError;
    }
    throw new Error("expected the call to fail");
  }

  async function drainWatch(client: ReturnType<typeof stateClient>["client"]) {
    const received: bigint[] = [];
    for await (const res of client.watch({ workflowId: "wf-1" })) {
      received.push(res.change?.version ?? 0n);
    }
    return received;
  }

  it("gives the client NOT_FOUND and the message for a unary handler that rejects", async () => {
    const { client } = stateClient(() => {
      throw new NotFoundError("workflow wf-1 has no state; create it first");
    });
    const err = await clientError(() => client.get({ workflowId: "wf-1", key: "k" }));
    expect(err.code).toBe(Code.NotFound);
    expect(err.rawMessage).toBe("workflow wf-1 has no state; create it first");
  });

  it("gives the client the code for a unary handler that throws synchronously", async () => {
    const { client } = stateClient(() => {
      throw new InvalidArgumentError("key must not be empty", { field: "key" });
    });
    const err = await clientError(() => client.set({ workflowId: "wf-1", key: "" }));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toBe("key must not be empty");
  });

  it("gives the client NOT_FOUND for a streaming handler that throws before its first message", async () => {
    const { client } = stateClient(() => {
      throw new NotFoundError("workflow wf-1 has no state");
    });
    const err = await clientError(() => drainWatch(client));
    expect(err.code).toBe(Code.NotFound);
    expect(err.rawMessage).toBe("workflow wf-1 has no state");
  });

  it("gives the client the messages sent so far, then the code, for a stream that fails midway", async () => {
    const { client } = stateClient(
      () => {
        throw new FailedPreconditionError("state was deleted");
      },
      { afterFirst: true },
    );
    const received: bigint[] = [];
    const err = await clientError(async () => {
      for await (const res of client.watch({ workflowId: "wf-1" })) {
        received.push(res.change?.version ?? 0n);
      }
    });
    expect(received).toEqual([1n]);
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.rawMessage).toBe("state was deleted");
  });

  it("hides an unexpected unary error behind INTERNAL and logs it with the procedure", async () => {
    const { client, lines } = stateClient(() => {
      throw new Error("ECONNRESET talking to redis at redis://:secret@10.0.0.1");
    });
    const err = await clientError(() => client.get({ workflowId: "wf-1", key: "k" }));
    expect(err.code).toBe(Code.Internal);
    expect(err.message).not.toContain("secret");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      procedure: "agentainer.state.v1.StateService/Get",
      err: { message: "ECONNRESET talking to redis at redis://:secret@10.0.0.1" },
    });
  });

  it("hides an unexpected streaming error behind INTERNAL and logs it with the procedure", async () => {
    const { client, lines } = stateClient(
      () => {
        throw new RangeError("index out of range");
      },
      { afterFirst: true },
    );
    const err = await clientError(() => drainWatch(client));
    expect(err.code).toBe(Code.Internal);
    expect(err.message).not.toContain("index out of range");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      procedure: "agentainer.state.v1.StateService/Watch",
      err: { type: "RangeError", message: "index out of range" },
    });
  });

  it("passes a ConnectError thrown by a handler to the client unchanged", async () => {
    const { client, lines } = stateClient(() => {
      throw new ConnectError("slow down", Code.ResourceExhausted);
    });
    const err = await clientError(() => client.get({ workflowId: "wf-1", key: "k" }));
    expect(err.code).toBe(Code.ResourceExhausted);
    expect(err.rawMessage).toBe("slow down");
    expect(lines).toEqual([]);
  });
});
