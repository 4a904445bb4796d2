import { create } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StateService } from "../../gen/agentainer/state/v1/state_pb.js";
import { startServer, type RunningServer } from "../../lib/server.js";

// Every service reads requests of at most maxMessageBytes (64 MiB; 64 KiB here): a caller, authenticated or not, cannot
// make a server buffer gigabytes before anything looks at the call.
describe("request size", () => {
  let server: RunningServer;
  let sets = 0;
  beforeAll(async () => {
    server = await startServer({
      name: "size-test",
      services: [StateService],
      routes: (router) =>
        router.service(StateService, {
          set: () => {
            sets++;
            return { version: 1n };
          },
        }),
      port: 0,
      host: "127.0.0.1",
      logger: pino({ level: "silent" }),
      readMaxBytes: 64 * 1024,
      shutdownTimeoutMs: 500,
    });
  });
  afterAll(() => server?.close());

  it("refuses a message over the limit with RESOURCE_EXHAUSTED, and takes one under it", async () => {
    const client = createClient(StateService, createGrpcTransport({ baseUrl: server.url }));
    const value = (n: number) =>
      create(ValueSchema, { kind: { case: "stringValue", value: "x".repeat(n) } });
    const err = await client
      .set({ workflowId: "wf", key: "k", value: value(100 * 1024) })
      .catch((e: unknown) => ConnectError.from(e));
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.ResourceExhausted);
    expect(sets).toBe(0);
    await client.set({ workflowId: "wf", key: "k", value: value(1024) });
    expect(sets).toBe(1);
  });
});
