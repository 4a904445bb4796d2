import { spawn } from "node:child_process";
import { connect as http2Connect } from "node:http2";
import { connect as netConnect } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { create } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type ConnectRouter } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { StateService } from "../../gen/agentainer/state/v1/state_pb.js";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { ServerReflection } from "../../gen/grpc/reflection/v1/reflection_pb.js";
import { ServingStatus } from "../../lib/health.js";
import { startServer, type RunningServer } from "../../lib/server.js";

const SLOW_MS = 400;

/** Get answers after SLOW_MS for key "slow" (honouring its context signal); Watch never ends on its own. */
function stateRoutes(started: { get: () => void }) {
  return (router: ConnectRouter) =>
    router.service(StateService, {
      async get(req, ctx) {
        started.get();
        if (req.key === "slow") await sleep(SLOW_MS, undefined, { signal: ctx.signal });
        return {
          value: create(ValueSchema, { kind: { case: "stringValue", value: req.key } }),
          version: 1n,
        };
      },
      async *watch(_req, ctx) {
        await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve)); // ignores shutdown
      },
    });
}

async function start(
  shutdownTimeoutMs: number,
  onGet: () => void = () => {},
): Promise<RunningServer> {
  return startServer({
    name: "shutdown-test",
    services: [StateService],
    routes: stateRoutes({ get: onGet }),
    port: 0,
    logger: pino({ level: "silent" }),
    shutdownTimeoutMs,
  });
}

function connectRefused(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = netConnect(port, "127.0.0.1");
    socket.on("connect", () => {
      socket.destroy();
      resolve("connected");
    });
    socket.on("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? "error"));
  });
}

describe("graceful shutdown", () => {
  it("ends open streams cleanly, lets in-flight unary calls finish, then refuses connections", async () => {
    let getStarted = (): void => {};
    const inFlight = new Promise<void>((resolve) => (getStarted = resolve));
    const server = await start(10_000, () => getStarted());
    const transport = createGrpcTransport({ baseUrl: server.url }); // one HTTP/2 connection for both calls
    const health = createClient(Health, transport);
    const state = createClient(StateService, transport);

    const watched: ServingStatus[] = [];
    let firstStatus = (): void => {};
    const watching = new Promise<void>((resolve) => (firstStatus = resolve));
    const watchEnded = (async () => {
      for await (const res of health.watch({ service: "" })) {
        watched.push(res.status);
        firstStatus();
      }
    })();
    await watching;
    const slow = state.get({ workflowId: "wf", key: "slow" });
    await inFlight;

    const t0 = Date.now();
    const closed = server.close();
    expect(server.close()).toBe(closed); // idempotent

    await expect(watchEnded).resolves.toBeUndefined(); // ended with OK, not an error
    expect(watched).toEqual([ServingStatus.SERVING, ServingStatus.NOT_SERVING]);
    const res = await slow;
    expect(res.value?.kind).toEqual({ case: "stringValue", value: "slow" });
    await closed;
    expect(Date.now() - t0).toBeLessThan(5_000);

    expect(await connectRefused(server.port)).toBe("ECONNREFUSED");
    const fresh = createClient(Health, createGrpcTransport({ baseUrl: server.url }));
    const err = await fresh.check({ service: "" }).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(err?.code).toBe(Code.Unavailable);
  });

  it("ends open reflection streams cleanly", async () => {
    const server = await start(10_000);
    const reflection = createClient(ServerReflection, createGrpcTransport({ baseUrl: server.url }));
    let finishRequests = (): void => {};
    const requestsOpen = new Promise<void>((resolve) => (finishRequests = resolve));
    async function* requests() {
      yield { messageRequest: { case: "listServices" as const, value: "" } };
      await requestsOpen; // the client keeps its side open, as grpcui does
    }
    const answers: string[] = [];
    let firstAnswer = (): void => {};
    const answered = new Promise<void>((resolve) => (firstAnswer = resolve));
    const ended = (async () => {
      for await (const res of reflection.serverReflectionInfo(requests())) {
        answers.push(res.messageResponse.case ?? "none");
        firstAnswer();
      }
    })();
    await answered;
    const t0 = Date.now();
    await server.close();
    expect(Date.now() - t0).toBeLessThan(5_000); // did not wait for the shutdown timeout
    await expect(ended).resolves.toBeUndefined();
    expect(answers).toEqual(["listServicesResponse"]);
    finishRequests();
  });

  it("reports NOT_SERVING to health checks arriving during the drain", async () => {
    let getStarted = (): void => {};
    const inFlight = new Promise<void>((resolve) => (getStarted = resolve));
    const server = await start(10_000, () => getStarted());
    const transport = createGrpcTransport({ baseUrl: server.url });
    const slow = createClient(StateService, transport).get({ workflowId: "wf", key: "slow" });
    await inFlight;
    const closed = server.close();
    expect(server.health.getStatus("")).toBe(ServingStatus.NOT_SERVING);
    server.health.setStatus("", ServingStatus.SERVING); // ignored once shut down
    expect(server.health.getStatus("agentainer.state.v1.StateService")).toBe(
      ServingStatus.NOT_SERVING,
    );
    expect(server.health.getStatus("")).toBe(ServingStatus.NOT_SERVING);
    await slow;
    await closed;
  });

  it("sends GOAWAY to open HTTP/2 connections", async () => {
    const server = await start(10_000);
    const session = http2Connect(server.url);
    await new Promise((resolve) => session.once("connect", resolve));
    // The server's session is up once a ping is answered.
    await new Promise((resolve, reject) =>
      session.ping((err) => (err ? reject(err) : resolve(undefined))),
    );
    const goaway = new Promise<number>((resolve) =>
      session.once("goaway", (code: number) => resolve(code)),
    );
    session.on("error", () => {});
    await server.close();
    expect(await goaway).toBe(0); // NO_ERROR
    session.destroy();
  });

  it("closes idle HTTP/1.1 keep-alive connections instead of waiting for them", async () => {
    const server = await start(10_000);
    const res = await fetch(`${server.url}/grpc.health.v1.Health/Check`, {
      method: "POST",
      headers: { "content-type": "application/json", connection: "keep-alive" },
      body: "{}",
    });
    expect(await res.json()).toEqual({ status: "SERVING" });
    const t0 = Date.now();
    await server.close();
    expect(Date.now() - t0).toBeLessThan(2_000);
  });

  it("still serves a connection accepted just before close, then closes it", async () => {
    const server = await start(10_000);
    const socket = netConnect(server.port, "127.0.0.1");
    socket.on("error", () => {});
    await new Promise((resolve) => socket.once("connect", resolve));
    await sleep(50); // accepted by the server, but no byte sent yet
    const closed = server.close();
    let response = "";
    socket.setEncoding("utf8").on("data", (chunk: string) => (response += chunk));
    const ended = new Promise((resolve) => socket.once("close", resolve));
    const body = "{}";
    socket.write(
      "POST /grpc.health.v1.Health/Check HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" +
        `Content-Length: ${body.length}\r\n\r\n${body}`,
    );
    await ended;
    await closed;
    expect(response).toMatch(/^HTTP\/1\.1 200 /);
    expect(response.toLowerCase()).toContain("connection: close");
    expect(response).toContain('{"status":"NOT_SERVING"}');
  });

  it("cuts streams that ignore the shutdown signal after shutdownTimeoutMs", async () => {
    const server = await start(300);
    const state = createClient(StateService, createGrpcTransport({ baseUrl: server.url }));
    const stream = state.watch({ workflowId: "wf" })[Symbol.asyncIterator]();
    const next = stream.next().then(
      () => "ended",
      () => "failed",
    );
    await sleep(50); // let the call reach the server
    const t0 = Date.now();
    await server.close();
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(250);
    expect(took).toBeLessThan(3_000);
    expect(await next).toBe("failed");
  });
});

describe("installShutdownHandlers", () => {
  it("closes the server on SIGTERM and exits 0", async () => {
    const serverModule = fileURLToPath(new URL("../../lib/server.ts", import.meta.url));
    const script = `
      const { startServer, installShutdownHandlers } = await import(${JSON.stringify(serverModule)});
      const { pino } = await import("pino");
      const logger = pino();
      const server = await startServer({ name: "signalled", services: [], routes: () => {}, port: 0, logger });
      installShutdownHandlers(() => server.close(), logger);
      logger.info("ready"); // before this line a SIGTERM would still kill the process outright
    `;
    const child = spawn(
      process.execPath,
      ["--import", "tsx", "--input-type=module", "-e", script],
      {
        stdio: ["ignore", "pipe", "inherit"],
      },
    );
    let output = "";
    const listening = new Promise<void>((resolve) =>
      child.stdout.on("data", (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes('"msg":"ready"')) resolve();
      }),
    );
    const exited = new Promise<number | null>((resolve) =>
      child.once("exit", (code) => resolve(code)),
    );
    await listening;
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
    const messages = output
      .trim()
      .split("\n")
      .map((line) => (JSON.parse(line) as { msg: string }).msg);
    // pino's default destination is asynchronous and does not always keep the order of lines across a signal.
    expect(messages.sort()).toEqual(
      [
        "server listening",
        "ready",
        "shutdown signal received",
        "server shutting down",
        "server stopped",
      ].sort(),
    );
  }, 20_000);
});
