import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { create, fromBinary } from "@bufbuild/protobuf";
import {
  FileDescriptorProtoSchema,
  ValueSchema,
  type FileDescriptorProto,
} from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StateService } from "../../gen/agentainer/state/v1/state_pb.js";
import { startServer, type RunningServer } from "../../lib/server.js";

const root = fileURLToPath(new URL("../../", import.meta.url));
const run = promisify(execFile);

type Version = "v1" | "v1alpha";

interface ReflectionResponse {
  message_response: string;
  list_services_response?: { service: { name: string }[] };
  file_descriptor_response?: { file_descriptor_proto: Buffer[] };
  all_extension_numbers_response?: { base_type_name: string; extension_number: number[] };
  error_response?: { error_code: number; error_message: string };
}

interface ReflectionStub {
  ServerReflectionInfo(): grpc.ClientDuplexStream<object, ReflectionResponse>;
  close(): void;
}

function reflectionClient(version: Version, port: number): ReflectionStub {
  const file = `${root}proto/grpc/reflection/${version}/reflection.proto`;
  const def = protoLoader.loadSync(file, { keepCase: true, oneofs: true, defaults: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    grpc: { reflection: Record<Version, { ServerReflection: grpc.ServiceClientConstructor }> };
  };
  const Client = pkg.grpc.reflection[version].ServerReflection;
  return new Client(
    `127.0.0.1:${port}`,
    grpc.credentials.createInsecure(),
  ) as unknown as ReflectionStub;
}

/** Sends the requests over one stream and collects one response per request. */
function reflect(client: ReflectionStub, requests: object[]): Promise<ReflectionResponse[]> {
  return new Promise((resolve, reject) => {
    const responses: ReflectionResponse[] = [];
    const call = client.ServerReflectionInfo();
    call.on("data", (res: ReflectionResponse) => {
      responses.push(res);
      if (responses.length === requests.length) call.end();
    });
    call.on("error", reject);
    call.on("end", () => resolve(responses));
    for (const request of requests) call.write(request);
  });
}

function decodeFiles(res: ReflectionResponse | undefined): FileDescriptorProto[] {
  const bytes = res?.file_descriptor_response?.file_descriptor_proto ?? [];
  return bytes.map((b) => fromBinary(FileDescriptorProtoSchema, b));
}

describe("server reflection", () => {
  let server: RunningServer;

  beforeAll(async () => {
    server = await startServer({
      name: "reflection-test",
      services: [StateService],
      routes: (router) =>
        router.service(StateService, {
          get: (req) => ({
            value: create(ValueSchema, {
              kind: { case: "stringValue", value: `value of ${req.key}` },
            }),
            version: 7n,
          }),
        }),
      port: 0,
      logger: pino({ level: "silent" }),
    });
  });
  afterAll(() => server.close());

  describe.each<Version>(["v1", "v1alpha"])(
    "grpc.reflection.%s from a grpc-js client",
    (version) => {
      let client: ReflectionStub;
      beforeAll(() => {
        client = reflectionClient(version, server.port);
      });
      afterAll(() => client.close());

      it("lists the app's services, health and both reflection services", async () => {
        const [res] = await reflect(client, [{ list_services: "*" }]);
        const names = res?.list_services_response?.service.map((s) => s.name);
        expect(names).toEqual(
          expect.arrayContaining([
            "agentainer.state.v1.StateService",
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
          ]),
        );
      });

      it("returns the file of a method with its transitive imports", async () => {
        const [res] = await reflect(client, [
          { file_containing_symbol: "agentainer.state.v1.StateService.Increment" },
        ]);
        const files = decodeFiles(res);
        expect(files[0]?.name).toBe("agentainer/state/v1/state.proto");
        expect(files.map((f) => f.name)).toEqual(
          expect.arrayContaining([
            "google/protobuf/struct.proto",
            "google/protobuf/timestamp.proto",
            "google/protobuf/duration.proto",
          ]),
        );
        const state = files[0];
        const increment = state?.service
          .find((s) => s.name === "StateService")
          ?.method.find((m) => m.name === "Increment");
        expect(increment?.inputType).toBe(".agentainer.state.v1.IncrementRequest");
        const input = state?.messageType.find((m) => m.name === "IncrementRequest");
        expect(input?.field.map((f) => f.name)).toEqual(["workflow_id", "key", "delta"]);
        const struct = files.find((f) => f.name === "google/protobuf/struct.proto");
        expect(struct?.messageType.map((m) => m.name)).toEqual(
          expect.arrayContaining(["Struct", "Value", "ListValue"]),
        );
      });

      it("finds nested types, enums, enum values and fields", async () => {
        const symbols = [
          "grpc.health.v1.HealthCheckResponse.ServingStatus",
          "grpc.health.v1.HealthCheckResponse.SERVING",
          "agentainer.state.v1.STATE_OPERATION_SET",
          "agentainer.state.v1.GetRequest.workflow_id",
          ".google.protobuf.Value",
        ];
        const responses = await reflect(
          client,
          symbols.map((s) => ({ file_containing_symbol: s })),
        );
        expect(responses.map((r) => decodeFiles(r)[0]?.name)).toEqual([
          "grpc/health/v1/health.proto",
          "grpc/health/v1/health.proto",
          "agentainer/state/v1/state.proto",
          "agentainer/state/v1/state.proto",
          "google/protobuf/struct.proto",
        ]);
      });

      it("does not resend imports the stream already sent, but always sends the requested file", async () => {
        const [first, second, third] = await reflect(client, [
          { file_by_filename: "agentainer/state/v1/state.proto" },
          { file_by_filename: "google/protobuf/struct.proto" },
          { file_by_filename: "agentainer/state/v1/state.proto" },
        ]);
        expect(decodeFiles(first)).toHaveLength(4);
        expect(decodeFiles(second).map((f) => f.name)).toEqual(["google/protobuf/struct.proto"]);
        expect(decodeFiles(third).map((f) => f.name)).toEqual(["agentainer/state/v1/state.proto"]);
      });

      it("answers unknown symbols, files and extensions with a NOT_FOUND error response", async () => {
        const responses = await reflect(client, [
          { file_containing_symbol: "agentainer.state.v1.NoSuchThing" },
          { file_by_filename: "nope.proto" },
          {
            file_containing_extension: {
              containing_type: "agentainer.state.v1.GetRequest",
              extension_number: 100,
            },
          },
        ]);
        expect(responses.map((r) => r.error_response?.error_code)).toEqual([5, 5, 5]);
      });

      it("reports no extension numbers for a known message and echoes the request", async () => {
        const [res] = await reflect(client, [
          { host: "h", all_extension_numbers_of_type: "agentainer.state.v1.GetRequest" },
        ]);
        expect(res?.all_extension_numbers_response).toEqual({
          base_type_name: "agentainer.state.v1.GetRequest",
          extension_number: [],
        });
        expect(res).toMatchObject({
          valid_host: "h",
          original_request: { all_extension_numbers_of_type: "agentainer.state.v1.GetRequest" },
        });
      });
    },
  );

  describe("buf curl", () => {
    const buf = `${root}node_modules/.bin/buf`;
    const flags = ["curl", "--protocol", "grpc", "--http2-prior-knowledge", "--reflect"];

    it.each(["grpc-v1", "grpc-v1alpha"])(
      "lists the methods through %s reflection",
      async (protocol) => {
        const { stdout } = await run(buf, [
          ...flags,
          "--reflect-protocol",
          protocol,
          "--list-methods",
          server.url,
        ]);
        const methods = stdout.trim().split("\n");
        expect(methods).toEqual(
          expect.arrayContaining([
            "agentainer.state.v1.StateService/Get",
            "agentainer.state.v1.StateService/Increment",
            "grpc.health.v1.Health/Check",
            "grpc.health.v1.Health/Watch",
          ]),
        );
      },
    );

    it("calls StateService/Get with a schema it learnt by reflection", async () => {
      const data = JSON.stringify({ workflowId: "wf-1", key: "greeting" });
      const { stdout } = await run(buf, [
        ...flags,
        "--data",
        data,
        `${server.url}/agentainer.state.v1.StateService/Get`,
      ]);
      expect(JSON.parse(stdout)).toEqual({ value: "value of greeting", version: "7" });
    });
  });
});
