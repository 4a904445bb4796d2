import { create } from "@bufbuild/protobuf";
import { Code, createHandlerContext, type HandlerContext } from "@connectrpc/connect";
import pino from "pino";
import { describe, expect, it } from "vitest";
import { AgentainerError } from "../../lib/errors.js";
import { BatchRequestSchema, StateService } from "../../gen/agentainer/state/v1/state_pb.js";
import { runBatch } from "../../services/state/batch.js";

function contextWith(signal: AbortSignal): HandlerContext {
  return createHandlerContext({
    service: StateService,
    method: StateService.method.batch,
    protocolName: "grpc",
    requestMethod: "POST",
    url: "http://localhost/agentainer.state.v1.StateService/Batch",
    requestSignal: signal,
  });
}

const increments = (n: number) =>
  create(BatchRequestSchema, {
    operations: Array.from({ length: n }, (_, i) => ({
      operation: { case: "increment" as const, value: { workflowId: "wf", key: `k${i}` } },
    })),
  });

describe("runBatch", () => {
  it("runs nothing when the caller cancelled before it started", async () => {
    const controller = new AbortController();
    controller.abort();
    let ran = 0;
    const impl = { increment: () => Promise.resolve({ value: ++ran }) };
    const err = await runBatch(
      impl as never,
      increments(5),
      contextWith(controller.signal),
      pino({ level: "silent" }),
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AgentainerError);
    expect((err as AgentainerError).kind).toBe("cancelled");
    expect(ran).toBe(0);
  });

  it("starts the operations in the order given", async () => {
    const started: string[] = [];
    const impl = {
      async increment(req: { key: string }) {
        started.push(req.key);
        await new Promise((r) => setTimeout(r, req.key === "k0" ? 20 : 1));
        return { value: 1 };
      },
    };
    const res = await runBatch(
      impl as never,
      increments(4),
      contextWith(new AbortController().signal),
      pino({ level: "silent" }),
    );
    expect(started).toEqual(["k0", "k1", "k2", "k3"]);
    expect(res.results).toHaveLength(4);
  });

  it("reports an unexpected failure as INTERNAL without its details, and logs it", async () => {
    const logged: unknown[] = [];
    const logger = pino({ level: "error" }, { write: (line: string) => logged.push(line) });
    const impl = {
      increment(req: { key: string }) {
        if (req.key === "k1") throw new TypeError("secret internals");
        return Promise.resolve({ value: 1 });
      },
    };
    const res = await runBatch(
      impl as never,
      increments(3),
      contextWith(new AbortController().signal),
      logger,
    );
    const cases = res.results?.map((r) => r.result?.case);
    expect(cases).toEqual(["increment", "error", "increment"]);
    const error = res.results?.[1]?.result?.value as { code: number; message: string };
    expect(error.code).toBe(Code.Internal);
    expect(error.message).not.toMatch(/secret/);
    expect(logged.join("")).toMatch(/secret internals/);
    expect(logged.join("")).toMatch(/operations\[1\]/);
  });
});
