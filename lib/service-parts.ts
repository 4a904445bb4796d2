import type { DescService } from "@bufbuild/protobuf";
import { createRouterTransport, type Transport } from "@connectrpc/connect";
import type { Interceptor } from "@connectrpc/connect";
import { createTokenAuthInterceptor } from "./auth.js";
import { createErrorInterceptor } from "./error-interceptor.js";
import type { Logger } from "./logger.js";
import { createUnknownFieldsInterceptor } from "./unknown-fields.js";
import { startServer, type RunningServer, type ServerOptions } from "./server.js";

/**
 * A service built but not yet listening: its domain, its routes and how to stop it. A service's
 * `main.ts` builds one; run alone it gets its own server (`serveParts`), and in the one-process
 * mode all four share one server and reach each other through `inMemoryTransport`, the same
 * handlers without a socket.
 */
export interface ServiceParts {
  readonly name: string;
  readonly services: readonly DescService[];
  readonly logger: Logger;
  readonly routes: ServerOptions["routes"];
  /** Where the service listens when it runs alone. */
  readonly listen: { host: string; port: number; shutdownTimeoutMs: number };
  /** Largest request message it reads, when not lib/server.ts's maxMessageBytes. */
  readonly readMaxBytes?: number;
  /** The API token callers must send (AGENTAINER_API_TOKEN), if any. */
  readonly apiToken?: string | undefined;
  /** Stops the domain, once its server no longer takes calls. */
  close(): Promise<void>;
}

/** A running service: its server and its logger. */
export interface RunningService extends RunningServer {
  readonly logger: Logger;
}

/** Serves one service on its own port. */
export async function serveParts(parts: ServiceParts): Promise<RunningService> {
  let server: RunningServer;
  try {
    server = await startServer({
      name: parts.name,
      services: parts.services,
      routes: parts.routes,
      host: parts.listen.host,
      port: parts.listen.port,
      logger: parts.logger,
      interceptors: serverInterceptors(parts.logger, parts.apiToken),
      shutdownTimeoutMs: parts.listen.shutdownTimeoutMs,
      readMaxBytes: parts.readMaxBytes,
    });
  } catch (err) {
    // The port is taken, say: what the parts hold (connections, containers, files) goes too.
    await parts
      .close()
      .catch((closeErr: unknown) =>
        parts.logger.warn({ err: closeErr }, "could not close the service after a failed start"),
      );
    throw err;
  }
  return {
    port: server.port,
    url: server.url,
    health: server.health,
    logger: parts.logger,
    async close() {
      await server.close();
      await parts.close();
    },
  };
}

/**
 * What every server runs before a handler, outermost first: the API token check (when a token is
 * set), the refusal of unknown fields, and the mapping of domain errors to gRPC statuses.
 */
export function serverInterceptors(logger: Logger, apiToken: string | undefined): Interceptor[] {
  return [
    ...(apiToken === undefined ? [] : [createTokenAuthInterceptor(apiToken)]),
    createUnknownFieldsInterceptor(),
    createErrorInterceptor(logger),
  ];
}

/** A transport that calls a service's handlers in this process (errors mapped as on the wire). */
export function inMemoryTransport(parts: ServiceParts, shutdownSignal: AbortSignal): Transport {
  return createRouterTransport((router) => parts.routes(router, { shutdownSignal }), {
    router: { interceptors: [createErrorInterceptor(parts.logger)] },
  });
}
