import { createServer as createHttp1Server } from "node:http";
import {
  constants as http2Constants,
  createServer as createHttp2Server,
  type ServerHttp2Session,
} from "node:http2";
import { createServer as createNetServer, type AddressInfo, type Socket } from "node:net";
import type { DescService } from "@bufbuild/protobuf";
import type { ConnectRouter, Interceptor } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { Logger } from "pino";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import { createHealthService, type HealthControl } from "./health.js";
import { createReflectionService } from "./reflection.js";

export interface ServerOptions {
  /** Short name of the service, e.g. "state"; used in logs. */
  name: string;
  /** The app's services, announced by health and reflection. */
  services: readonly DescService[];
  /** Registers the app's services. Streaming handlers should end their streams when shutdownSignal aborts. */
  routes: (router: ConnectRouter, ctx: { shutdownSignal: AbortSignal }) => void;
  /** Defaults to "0.0.0.0". */
  host?: string;
  /** 0 picks a free port. */
  port: number;
  logger: Logger;
  interceptors?: Interceptor[];
  /** How long close() waits for calls to finish before cutting connections; defaults to 10 s. */
  shutdownTimeoutMs?: number;
  /** Largest request message read, in bytes; defaults to maxMessageBytes. */
  readMaxBytes?: number;
}

/**
 * The largest request message a service reads unless it asks for more (64 MiB): far above
 * every legitimate request but a full State Batch (inputs and values are capped at a few MiB;
 * the State service sets its own), and far below the 4 GiB Connect would otherwise buffer for a
 * caller, before any interceptor (the token check among them) has seen the call. Larger
 * messages are refused with RESOURCE_EXHAUSTED.
 */
export const maxMessageBytes = 64 * 1024 * 1024;

export interface RunningServer {
  readonly port: number;
  /** e.g. http://127.0.0.1:8080 */
  readonly url: string;
  readonly health: HealthControl;
  /**
   * Graceful and idempotent: health goes NOT_SERVING, the shutdown signal aborts (streams end), the
   * port stops accepting, in-flight calls finish, HTTP/2 sessions get GOAWAY; whatever is still open
   * after shutdownTimeoutMs is destroyed.
   */
  close(): Promise<void>;
}

// Every HTTP/2 connection opens with this preface; anything else is treated as HTTP/1.x.
const HTTP2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

type Protocol = "pending" | "h1" | "h2";

// How long close() waits for a just-accepted connection to say which protocol it speaks.
const PENDING_GRACE_MS = 1_000;

/**
 * Serves Connect, gRPC and gRPC-Web on one port, over HTTP/2 cleartext (prior knowledge) and HTTP/1.1,
 * with grpc.health.v1 and gRPC server reflection (v1 and v1alpha) registered next to the app's services.
 *
 * Node's cleartext http2 server ignores `allowHTTP1`, so a plain TCP listener reads the first bytes of
 * each connection and hands it to an HTTP/2 or an HTTP/1 server, both running the same Connect handler.
 */
export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const { name, logger } = options;
  const shutdownTimeoutMs = options.shutdownTimeoutMs ?? 10_000;
  const shutdown = new AbortController();
  const shutdownSignal = shutdown.signal;

  const health = createHealthService({
    services: options.services.map((s) => s.typeName),
    shutdownSignal,
  });
  const reflection = createReflectionService({
    services: [...options.services, Health],
    shutdownSignal,
  });
  // Not passing shutdownSignal to the adapter on purpose: it would abort every handler's context.signal,
  // failing in-flight unary calls that forward it to downstream I/O instead of letting them finish.
  const handler = connectNodeAdapter({
    interceptors: options.interceptors ?? [],
    readMaxBytes: options.readMaxBytes ?? maxMessageBytes,
    routes(router) {
      options.routes(router, { shutdownSignal });
      health.routes(router);
      reflection.routes(router);
    },
  });

  const sockets = new Map<Socket, Protocol>();
  const sessions = new Set<ServerHttp2Session>();
  const h1InFlight = new Map<Socket, number>();
  let closing = false;
  let onSocketClosed = (): void => {};

  const h2 = createHttp2Server({}, (req, res) => {
    // A response can end while the client is still sending (a stream the server finished, e.g. on
    // shutdown). Like gRPC servers, reset the request side with NO_ERROR (RFC 9113 §8.1) so the stream,
    // and a closing session, do not wait for a client that may never half-close. The compat layer
    // always ends a response with trailers, submitted in a setImmediate from its own 'wantTrailers'
    // listener; ours runs after it, so the RST_STREAM is queued behind the trailers, never before.
    req.stream.once("wantTrailers", () =>
      setImmediate(() => {
        if (!req.complete && !req.stream.closed) req.stream.close(http2Constants.NGHTTP2_NO_ERROR);
      }),
    );
    handler(req, res);
  });
  h2.on("session", (session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
    if (closing) session.close();
  });
  h2.on("sessionError", (err) => logger.debug({ err }, "http2 session error"));

  const h1 = createHttp1Server((req, res) => {
    const socket = req.socket;
    h1InFlight.set(socket, (h1InFlight.get(socket) ?? 0) + 1);
    if (closing) res.setHeader("connection", "close");
    res.once("close", () => {
      const left = (h1InFlight.get(socket) ?? 1) - 1;
      h1InFlight.set(socket, left);
      if (closing && left === 0) socket.end();
    });
    handler(req, res);
  });

  const listener = createNetServer((socket) => {
    sockets.set(socket, "pending");
    socket.once("close", () => {
      sockets.delete(socket);
      h1InFlight.delete(socket);
      onSocketClosed();
    });
    socket.on("error", (err) => logger.debug({ err }, "socket error")); // a reset must not crash the process
    if (closing) {
      socket.destroy();
      return;
    }
    sniffProtocol(socket, (protocol) => {
      sockets.set(socket, protocol);
      (protocol === "h2" ? h2 : h1).emit("connection", socket);
    });
  });

  await new Promise<void>((resolve, reject) => {
    listener.once("error", reject);
    listener.listen(options.port, options.host ?? "0.0.0.0", () => {
      listener.off("error", reject);
      resolve();
    });
  });
  listener.on("error", (err) => logger.error({ err, name }, "listener error"));
  const port = (listener.address() as AddressInfo).port;
  const url = `http://${clientHost(options.host)}:${port}`;
  logger.info({ name, url, services: options.services.map((s) => s.typeName) }, "server listening");

  const allSocketsClosed = new Promise<void>((resolve) => {
    onSocketClosed = () => {
      if (closing && sockets.size === 0) resolve();
    };
  });

  async function closeGracefully(): Promise<void> {
    logger.info({ name, connections: sockets.size }, "server shutting down");
    closing = true;
    health.control.shutdown();
    shutdown.abort();
    const listenerClosed = new Promise<void>((resolve) => listener.close(() => resolve()));
    for (const session of sessions) session.close(); // GOAWAY; open streams may finish
    for (const [socket, protocol] of sockets) {
      if (protocol === "h1" && (h1InFlight.get(socket) ?? 0) === 0) socket.end();
    }
    // A connection accepted just now may still be sending its first bytes: once its protocol is known it is
    // closed like the others (GOAWAY, or Connection: close). One that stays silent is dropped soon.
    const dropSilent = setTimeout(
      () => {
        for (const [socket, protocol] of sockets) if (protocol === "pending") socket.destroy();
      },
      Math.min(PENDING_GRACE_MS, shutdownTimeoutMs),
    );
    onSocketClosed();

    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<true>(
      (resolve) => (timer = setTimeout(() => resolve(true), shutdownTimeoutMs)),
    );
    if ((await Promise.race([allSocketsClosed, timedOut])) === true) {
      logger.warn(
        { name, connections: sockets.size, shutdownTimeoutMs },
        "shutdown timeout; closing connections",
      );
      for (const session of sessions) session.destroy();
      for (const socket of sockets.keys()) socket.destroy();
    }
    clearTimeout(timer);
    clearTimeout(dropSilent);
    await listenerClosed;
    logger.info({ name }, "server stopped");
  }

  let closed: Promise<void> | undefined;
  return {
    port,
    url,
    health: health.control,
    close: () => (closed ??= closeGracefully()),
  };
}

/** SIGTERM and SIGINT call close() once, then exit 0 (1 if close throws). Repeated signals are logged and ignored. */
export function installShutdownHandlers(close: () => Promise<void>, logger: Logger): void {
  let started = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (started) {
      logger.warn({ signal }, "already shutting down");
      return;
    }
    started = true;
    logger.info({ signal }, "shutdown signal received");
    close().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
}

/** Reads until the bytes received either are the HTTP/2 preface or cannot be, then puts them back. */
function sniffProtocol(socket: Socket, decided: (protocol: "h1" | "h2") => void): void {
  let received = Buffer.alloc(0);
  const onData = (chunk: Buffer): void => {
    received = Buffer.concat([received, chunk]);
    const n = Math.min(received.length, HTTP2_PREFACE.length);
    const matches = received.subarray(0, n).equals(HTTP2_PREFACE.subarray(0, n));
    if (matches && n < HTTP2_PREFACE.length) return;
    socket.off("data", onData);
    socket.pause();
    socket.unshift(received);
    decided(matches ? "h2" : "h1");
    // The http2 session drains the unshifted bytes itself; resuming would hand them to nobody.
    if (!matches) socket.resume();
  };
  socket.on("data", onData);
}

function clientHost(host: string | undefined): string {
  if (host === undefined || host === "0.0.0.0" || host === "::" || host === "") return "127.0.0.1";
  return host.includes(":") ? `[${host}]` : host;
}
