import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StateService } from "../../gen/agentainer/state/v1/state_pb.js";
import { Health } from "../../gen/grpc/health/v1/health_pb.js";
import { ServingStatus } from "../../lib/health.js";
import { startServer, type RunningServer } from "../../lib/server.js";

const STATE = "agentainer.state.v1.StateService";
const healthProto = fileURLToPath(
  new URL("../../proto/grpc/health/v1/health.proto", import.meta.url),
);

interface HealthStub {
  Check(
    req: { service: string },
    cb: (err: grpc.ServiceError | null, res?: { status: string }) => void,
  ): void;
  Watch(req: { service: string }): grpc.ClientReadableStream<{ status: string }>;
  close(): void;
}

function healthClient(port: number): HealthStub {
  const def = protoLoader.loadSync(healthProto, { keepCase: true, enums: String, defaults: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } };
  };
  return new pkg.grpc.health.v1.Health(
    `127.0.0.1:${port}`,
    grpc.credentials.createInsecure(),
  ) as unknown as HealthStub;
}

function check(client: HealthStub, service: string): Promise<string> {
  return new Promise((resolve, reject) =>
    client.Check({ service }, (err, res) => (err ? reject(err) : resolve(res?.status ?? ""))),
  );
}

/** Collects Watch messages until `count` arrived, then cancels the call. */
function watch(
  client: HealthStub,
  service: string,
  count: number,
  onFirst?: () => void,
): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const seen: string[] = [];
    const call = client.Watch({ service });
    call.on("data", (res: { status: string }) => {
      seen.push(res.status);
      if (seen.length === 1) onFirst?.();
      if (seen.length === count) {
        call.cancel();
        resolve(seen);
      }
    });
    call.on("error", (err: grpc.ServiceError) => {
      if (err.code !== grpc.status.CANCELLED) reject(err);
    });
  });
}

describe("health service", () => {
  let server: RunningServer;
  let client: HealthStub;

  beforeAll(async () => {
    server = await startServer({
      name: "health-test",
      services: [StateService],
      routes: (router) => router.service(StateService, {}),
      port: 0,
      logger: pino({ level: "silent" }),
    });
    client = healthClient(server.port);
  });
  afterAll(async () => {
    client.close();
    await server.close();
  });

  describe("Check from a grpc-js client", () => {
    it("reports SERVING for the whole server (empty name)", async () => {
      expect(await check(client, "")).toBe("SERVING");
    });

    it("reports SERVING for each registered service", async () => {
      expect(await check(client, STATE)).toBe("SERVING");
    });

    it("fails with NOT_FOUND for an unknown service", async () => {
      await expect(check(client, "no.such.v1.Service")).rejects.toMatchObject({
        code: grpc.status.NOT_FOUND,
      });
    });

    it("reports what the process set through the control object", async () => {
      server.health.setStatus("agentainer.extra.v1.ExtraService", ServingStatus.NOT_SERVING);
      expect(await check(client, "agentainer.extra.v1.ExtraService")).toBe("NOT_SERVING");
    });
  });

  describe("Watch from a grpc-js client", () => {
    it("sends the current status, then every change", async () => {
      const name = "agentainer.watched.v1.WatchedService";
      server.health.setStatus(name, ServingStatus.SERVING);
      const seen = watch(client, name, 3, () => {
        server.health.setStatus(name, ServingStatus.NOT_SERVING);
        setTimeout(() => server.health.setStatus(name, ServingStatus.SERVING), 20);
      });
      expect(await seen).toEqual(["SERVING", "NOT_SERVING", "SERVING"]);
    });

    it("reports SERVICE_UNKNOWN for an unknown name and follows it once it is registered", async () => {
      const name = "agentainer.late.v1.LateService";
      const seen = watch(client, name, 2, () =>
        server.health.setStatus(name, ServingStatus.SERVING),
      );
      expect(await seen).toEqual(["SERVICE_UNKNOWN", "SERVING"]);
    });
  });

  describe("other protocols on the same port", () => {
    it("answers Connect JSON over plain HTTP/1.1 (fetch)", async () => {
      const res = await fetch(`${server.url}/grpc.health.v1.Health/Check`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ service: STATE }),
      });
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ status: "SERVING" });
    });

    it("answers a Connect client over HTTP/1.1 and a gRPC-Web client over HTTP/2", async () => {
      const connect = createClient(
        Health,
        createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }),
      );
      const grpcWeb = createClient(
        Health,
        createGrpcWebTransport({ baseUrl: server.url, httpVersion: "2" }),
      );
      expect((await connect.check({ service: "" })).status).toBe(ServingStatus.SERVING);
      expect((await grpcWeb.check({ service: STATE })).status).toBe(ServingStatus.SERVING);
      await expect(connect.check({ service: "nope" })).rejects.toSatisfy(
        (err) => ConnectError.from(err).code === Code.NotFound,
      );
    });
  });
});
