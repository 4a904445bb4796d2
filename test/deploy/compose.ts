// Test support for the compose-deployed mesh: a docker-compose project of this repository's
// docker-compose.yml under a unique name, and a grpc-js client of the Workflow API loaded from the
// .proto files (no Connect code), as a user in another language would have.
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

const run = promisify(execFile);
export const root = fileURLToPath(new URL("../../", import.meta.url));

/** Runs a command, failing with its output when it exits non-zero. */
export async function sh(
  file: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<string> {
  try {
    const { stdout } = await run(file, args, {
      cwd: root,
      env: options.env ?? process.env,
      timeout: options.timeoutMs ?? 120_000,
      maxBuffer: 64 * 1024 * 1024,
    });
    return stdout;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(
      `${file} ${args.join(" ")} failed: ${e.message}\n${e.stdout ?? ""}\n${e.stderr ?? ""}`,
    );
  }
}

/** A docker-compose project of docker-compose.yml. */
export class ComposeProject {
  constructor(
    readonly name: string,
    readonly env: NodeJS.ProcessEnv,
    readonly files: readonly string[] = ["docker-compose.yml"],
  ) {}

  compose(args: string[], timeoutMs = 300_000): Promise<string> {
    const files = this.files.flatMap((f) => ["-f", f]);
    return sh("docker-compose", ["-p", this.name, ...files, ...args], {
      env: this.env,
      timeoutMs,
    });
  }

  /** The id of a service's (first) container. */
  async containerOf(service: string): Promise<string> {
    const id = (await this.compose(["ps", "-q", service])).trim().split("\n")[0] ?? "";
    if (id === "") throw new Error(`no container for service ${service}`);
    return id;
  }

  async inspect(id: string, format: string): Promise<string> {
    return (await sh("docker", ["inspect", "-f", format, id])).trim();
  }

  /** Ids of what is left of the project: containers, networks and volumes, by compose's label. */
  async leftovers(): Promise<{ containers: string[]; networks: string[]; volumes: string[] }> {
    const label = `label=com.docker.compose.project=${this.name}`;
    const ids = async (args: string[]) =>
      (await sh("docker", args)).split("\n").filter((l) => l.trim() !== "");
    return {
      containers: await ids(["ps", "-aq", "--filter", label]),
      networks: await ids(["network", "ls", "-q", "--filter", label]),
      volumes: await ids(["volume", "ls", "-q", "--filter", label]),
    };
  }
}

/**
 * google.protobuf.Value as proto-loader gives it: protobufjs defines the well-known types with
 * camelCase names whatever keepCase says, and `kind` names the oneof member that is set.
 */
export interface ProtoValue {
  nullValue?: string;
  numberValue?: number;
  stringValue?: string;
  boolValue?: boolean;
  structValue?: { fields: Record<string, ProtoValue> };
  listValue?: { values: ProtoValue[] };
  kind?: string;
}

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export function fromValue(v: ProtoValue | null | undefined): Json {
  if (v === null || v === undefined) return null;
  switch (v.kind) {
    case "numberValue":
      return v.numberValue ?? 0;
    case "stringValue":
      return v.stringValue ?? "";
    case "boolValue":
      return v.boolValue ?? false;
    case "structValue":
      return Object.fromEntries(
        Object.entries(v.structValue?.fields ?? {}).map(([k, x]) => [k, fromValue(x)]),
      );
    case "listValue":
      return (v.listValue?.values ?? []).map(fromValue);
    default:
      return null;
  }
}

export function stringValue(s: string): ProtoValue {
  return { stringValue: s, kind: "stringValue" };
}

type Callback<T> = (err: grpc.ServiceError | null, res: T) => void;
type Unary = (req: object, md: grpc.Metadata, cb: Callback<never>) => void;

/** The Workflow API through @grpc/grpc-js and the .proto files. */
export interface WorkflowStub {
  client: grpc.Client;
  call<T>(method: string, req: object): Promise<T>;
  watch(req: object): grpc.ClientReadableStream<{ event: Record<string, unknown> }>;
  close(): void;
}

export function workflowStub(address: string, token: string): WorkflowStub {
  const definition = protoLoader.loadSync("agentainer/workflow/v1/workflow.proto", {
    includeDirs: [`${root}proto`],
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const loaded = grpc.loadPackageDefinition(definition) as unknown as {
    agentainer: { workflow: { v1: { WorkflowService: grpc.ServiceClientConstructor } } };
  };
  const Ctor = loaded.agentainer.workflow.v1.WorkflowService;
  const client = new Ctor(address, grpc.credentials.createInsecure());
  const metadata = () => {
    const md = new grpc.Metadata();
    md.set("authorization", `Bearer ${token}`);
    return md;
  };
  const methods = client as unknown as Record<string, Unary>;
  return {
    client,
    call<T>(method: string, req: object): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        const fn = methods[method];
        if (fn === undefined) throw new Error(`no method ${method}`);
        fn.call(client, req, metadata(), (err: grpc.ServiceError | null, res: T) =>
          err ? reject(err) : resolve(res),
        );
      });
    },
    watch(req: object) {
      const fn = (client as unknown as Record<string, grpc.handleServerStreamingCall<never, never>>)
        .WatchWorkflow as unknown as (
        r: object,
        md: grpc.Metadata,
      ) => grpc.ClientReadableStream<{ event: Record<string, unknown> }>;
      return fn.call(client, req, metadata());
    },
    close: () => client.close(),
  };
}

/**
 * Describes a method through gRPC server reflection (v1) with grpc-js: the request and response
 * type names read from the file descriptor that defines the service.
 */
export async function describeMethod(
  address: string,
  token: string,
  service: string,
  method: string,
): Promise<{ input: string; output: string; serverStreaming: boolean }> {
  const { fromBinary } = await import("@bufbuild/protobuf");
  const { FileDescriptorProtoSchema } = await import("@bufbuild/protobuf/wkt");
  const definition = protoLoader.loadSync("grpc/reflection/v1/reflection.proto", {
    includeDirs: [`${root}proto`],
    keepCase: true,
    oneofs: true,
  });
  const loaded = grpc.loadPackageDefinition(definition) as unknown as {
    grpc: { reflection: { v1: { ServerReflection: grpc.ServiceClientConstructor } } };
  };
  const client = new loaded.grpc.reflection.v1.ServerReflection(
    address,
    grpc.credentials.createInsecure(),
  ) as unknown as grpc.Client & {
    ServerReflectionInfo(md: grpc.Metadata): grpc.ClientDuplexStream<object, ReflectionReply>;
  };
  const md = new grpc.Metadata();
  md.set("authorization", `Bearer ${token}`);
  try {
    const reply = await new Promise<ReflectionReply>((resolve, reject) => {
      const call = client.ServerReflectionInfo(md);
      call.on("data", (r: ReflectionReply) => {
        resolve(r);
        call.end();
      });
      call.on("error", reject);
      call.write({ file_containing_symbol: service });
    });
    if (reply.error_response) throw new Error(reply.error_response.error_message);
    for (const bytes of reply.file_descriptor_response?.file_descriptor_proto ?? []) {
      const file = fromBinary(FileDescriptorProtoSchema, bytes);
      const svc = file.service.find((s) => `${file.package}.${s.name}` === service);
      const m = svc?.method.find((x) => x.name === method);
      if (m !== undefined) {
        return { input: m.inputType, output: m.outputType, serverStreaming: m.serverStreaming };
      }
    }
    throw new Error(`${service}/${method} is not described`);
  } finally {
    client.close();
  }
}

interface ReflectionReply {
  file_descriptor_response?: { file_descriptor_proto: Uint8Array[] };
  error_response?: { error_code: number; error_message: string };
}
