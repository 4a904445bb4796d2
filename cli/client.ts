import {
  Code,
  ConnectError,
  createClient,
  type Client,
  type Interceptor,
} from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { createBearerTokenInterceptor } from "../lib/auth.js";
import { PoolService } from "../gen/agentainer/pool/v1/pool_pb.js";
import { StateService } from "../gen/agentainer/state/v1/state_pb.js";
import { WorkflowService } from "../gen/agentainer/workflow/v1/workflow_pb.js";

/** Where the CLI sends its calls unless --server or AGENTAINER_SERVER says otherwise. */
export const defaultServer = "http://127.0.0.1:7070";

/** One address the CLI calls, and the option that chose it (named in errors). */
export interface Target {
  url: string;
  /** The service the CLI calls there. */
  service: "Workflow" | "Pool" | "State";
  option: "--server" | "--pool-server" | "--state-server";
  env: "AGENTAINER_SERVER" | "AGENTAINER_POOL_SERVER" | "AGENTAINER_STATE_SERVER";
  /** False when the address is --server's, because the option itself was not given. */
  own: boolean;
}

export interface Clients {
  /** --server's address. */
  server: string;
  workflow: Client<typeof WorkflowService>;
  pool: Client<typeof PoolService>;
  state: Client<typeof StateService>;
}

export interface Servers {
  server: string;
  poolServer?: string | undefined;
  stateServer?: string | undefined;
  /** Sent as `authorization: Bearer <token>` on every call (AGENTAINER_API_TOKEN). */
  apiToken?: string | undefined;
}

/** The target each failed call went to, so that its error names the right option. */
const targetOf = new WeakMap<object, Target>();

function tag(err: unknown, target: Target): unknown {
  const e = ConnectError.from(err);
  if (!targetOf.has(e)) targetOf.set(e, target);
  return e;
}

async function* tagged<T>(messages: AsyncIterable<T>, target: Target): AsyncIterable<T> {
  try {
    yield* messages;
  } catch (err) {
    throw tag(err, target);
  }
}

function tagging(target: Target): Interceptor {
  return (next) => async (req) => {
    try {
      const res = await next(req);
      return res.stream ? { ...res, message: tagged(res.message, target) } : res;
    } catch (err) {
      throw tag(err, target);
    }
  };
}

const withScheme = (url: string) => (/^https?:\/\//.test(url) ? url : `http://${url}`);

function client<S extends Parameters<typeof createClient>[0]>(
  service: S,
  target: Target,
  apiToken: string | undefined,
) {
  const interceptors = [tagging(target)];
  if (apiToken) interceptors.push(createBearerTokenInterceptor(apiToken));
  const transport = createGrpcTransport({ baseUrl: target.url, interceptors });
  return createClient(service, transport) as Client<S>;
}

/** Clients of the three services the CLI calls: Pool and State default to --server's address. */
export function connect(servers: Servers): Clients {
  const server = withScheme(servers.server);
  const pick = (url: string | undefined) => (url ? withScheme(url) : undefined);
  const pool = pick(servers.poolServer);
  const state = pick(servers.stateServer);
  return {
    server,
    workflow: client(
      WorkflowService,
      {
        url: server,
        service: "Workflow",
        option: "--server",
        env: "AGENTAINER_SERVER",
        own: true,
      },
      servers.apiToken,
    ),
    pool: client(
      PoolService,
      {
        url: pool ?? server,
        service: "Pool",
        option: "--pool-server",
        env: "AGENTAINER_POOL_SERVER",
        own: pool !== undefined,
      },
      servers.apiToken,
    ),
    state: client(
      StateService,
      {
        url: state ?? server,
        service: "State",
        option: "--state-server",
        env: "AGENTAINER_STATE_SERVER",
        own: state !== undefined,
      },
      servers.apiToken,
    ),
  };
}

/** A failure the CLI explains in one line, with the exit code it ends with (docs/cli.md). */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

/** Exit codes (docs/cli.md). */
export const exit = {
  refused: 1,
  badInput: 2,
  unreachable: 3,
} as const;

const codeNames: Partial<Record<Code, string>> = {
  [Code.InvalidArgument]: "invalid",
  [Code.NotFound]: "not found",
  [Code.AlreadyExists]: "already exists",
  [Code.FailedPrecondition]: "not allowed now",
  [Code.ResourceExhausted]: "too large",
  [Code.PermissionDenied]: "denied",
  [Code.Unauthenticated]: "unauthenticated",
};

/** True when a call failed because nothing answered at the address (no server, no route). */
export function isUnreachable(err: unknown): boolean {
  const e = ConnectError.from(err);
  return (
    e.code === Code.Unavailable &&
    /ECONNREFUSED|connect|ENOTFOUND|EHOSTUNREACH|EAI_AGAIN|ETIMEDOUT/i.test(e.rawMessage)
  );
}

const examplePort = { Workflow: 7071, Pool: 7072, State: 7073 } as const;

/** The one line a person reads for a failed call, and its exit code. */
export function explain(err: unknown, server: string): CliError {
  if (err instanceof CliError) return err;
  const e = ConnectError.from(err);
  const target = targetOf.get(e) ?? {
    url: server,
    service: "Workflow",
    option: "--server",
    env: "AGENTAINER_SERVER",
    own: true,
  };
  if (isUnreachable(e)) {
    if (!target.own || target.service === "Workflow") {
      return new CliError(
        `cannot reach the Agentainer server at ${target.url}: start one with \`agentainer up\`, or point --server (AGENTAINER_SERVER) at a running one`,
        exit.unreachable,
      );
    }
    return new CliError(
      `cannot reach the ${target.service} service at ${target.url} (${target.option}, ${target.env})`,
      exit.unreachable,
    );
  }
  if (e.code === Code.Unimplemented && target.service === "Workflow") {
    return new CliError(
      `${target.url} does not serve the Workflow service: point --server (or AGENTAINER_SERVER) at \`agentainer up\` or a Workflow service (e.g. http://host:7071)`,
      exit.unreachable,
    );
  }
  if (e.code === Code.Unimplemented) {
    return new CliError(
      `${target.url} does not serve the ${target.service} service: set ${target.option} (or ${target.env}) to its address, e.g. http://host:${examplePort[target.service]}`,
      exit.unreachable,
    );
  }
  const kind = codeNames[e.code];
  const message = kind === undefined ? e.rawMessage : `${kind}: ${e.rawMessage}`;
  return new CliError(message, e.code === Code.InvalidArgument ? exit.badInput : exit.refused);
}
