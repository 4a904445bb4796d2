import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { PoolService } from "../gen/agentainer/pool/v1/pool_pb.js";
import { WorkflowService } from "../gen/agentainer/workflow/v1/workflow_pb.js";

/** Where the CLI sends its calls unless --server or AGENTAINER_SERVER says otherwise. */
export const defaultServer = "http://127.0.0.1:7070";

export interface Clients {
  server: string;
  workflow: Client<typeof WorkflowService>;
  pool: Client<typeof PoolService>;
}

export function connect(server: string): Clients {
  const baseUrl = /^https?:\/\//.test(server) ? server : `http://${server}`;
  const transport = createGrpcTransport({ baseUrl });
  return {
    server: baseUrl,
    workflow: createClient(WorkflowService, transport),
    pool: createClient(PoolService, transport),
  };
}

/** A failure the CLI explains in one line, with the exit code it ends with. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

const codeNames: Partial<Record<Code, string>> = {
  [Code.InvalidArgument]: "invalid",
  [Code.NotFound]: "not found",
  [Code.AlreadyExists]: "already exists",
  [Code.FailedPrecondition]: "not allowed now",
  [Code.ResourceExhausted]: "too large",
  [Code.PermissionDenied]: "denied",
};

/** The one line a person reads for a failed call. */
export function explain(err: unknown, server: string): CliError {
  if (err instanceof CliError) return err;
  const e = ConnectError.from(err);
  if (
    e.code === Code.Unavailable &&
    /ECONNREFUSED|connect|ENOTFOUND|EHOSTUNREACH/i.test(e.rawMessage)
  ) {
    return new CliError(
      `cannot reach the Agentainer server at ${server}: start one with \`agentainer up\`, or point --server at a running one`,
      3,
    );
  }
  const kind = codeNames[e.code];
  return new CliError(kind === undefined ? e.rawMessage : `${kind}: ${e.rawMessage}`, 1);
}
