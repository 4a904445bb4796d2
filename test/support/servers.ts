// Real redis-server and nats-server processes for tests, each on a free loopback port in its own
// temp dir. The global setup starts one of each for the whole run; tests of restart behaviour start
// their own with these functions (pass `port` and `dir` to restart on the same address and data).
import { spawn, type ChildProcess } from "node:child_process";
import { accessSync, constants, mkdtempSync, rmSync } from "node:fs";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";

export interface ServerOptions {
  /** TCP port on 127.0.0.1; default: a free one. */
  port?: number;
  /** Data directory; default: a new temp dir, removed by `stop()`. A dir you pass is left alone. */
  dir?: string;
  /** How long to wait for the server to answer; default 15 s. */
  readyTimeoutMs?: number;
  /** Appended to the command line, e.g. `["--appendonly", "yes"]` to keep Redis data across a restart. */
  extraArgs?: readonly string[];
}

export interface RunningServer {
  /** `redis://127.0.0.1:<port>` or `nats://127.0.0.1:<port>`. */
  readonly url: string;
  readonly port: number;
  readonly dir: string;
  readonly pid: number;
  /** Stops the process (SIGTERM, SIGKILL after 5 s; or the signal given) and waits for its exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

const LOOPBACK = "127.0.0.1";
const SETUP_HINT = "run `bash scripts/setup.sh` (as root it installs what is missing)";

/** Starts `redis-server` without persistence and waits until it answers PING. */
export function startRedisServer(options: ServerOptions = {}): Promise<RunningServer> {
  return startServer(options, {
    name: "redis-server",
    args: (port, dir) => [
      ...["--port", String(port), "--bind", LOOPBACK, "--dir", dir],
      ...["--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "no"],
    ],
    url: (port) => `redis://${LOOPBACK}:${port}`,
    ready: (port, deadline) => waitForLine(port, deadline, "PING\r\n", (line) => line === "+PONG"),
  });
}

/** Starts `nats-server` with JetStream (its store in the data dir) and waits for its INFO line. */
export function startNatsServer(options: ServerOptions = {}): Promise<RunningServer> {
  return startServer(options, {
    name: "nats-server",
    args: (port, dir) => ["-js", "-a", LOOPBACK, "-p", String(port), "-sd", dir],
    url: (port) => `nats://${LOOPBACK}:${port}`,
    ready: (port, deadline) => waitForLine(port, deadline, "", isJetStreamInfo),
  });
}

/** A TCP port that was free a moment ago (bound on 127.0.0.1 with port 0, then released). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once("error", reject);
    server.listen(0, LOOPBACK, () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error("no port assigned"))));
    });
  });
}

interface ServerSpec {
  /** The executable, also the name of its Debian package. */
  name: string;
  args: (port: number, dir: string) => string[];
  url: (port: number) => string;
  ready: (port: number, deadline: number) => Promise<boolean>;
}

async function startServer(options: ServerOptions, spec: ServerSpec): Promise<RunningServer> {
  const binary = findBinary(spec.name);
  const ownsDir = options.dir === undefined;
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), `agentainer-${spec.name}-`));
  // A picked port can be taken by someone else before the server binds it: retry with a new one.
  const attempts = options.port === undefined ? 3 : 1;
  let lastError: Error | undefined;
  for (let attempt = 0; attempt < attempts; attempt++) {
    const port = options.port ?? (await freePort());
    const args = [...spec.args(port, dir), ...(options.extraArgs ?? [])];
    const child = spawn(binary, args, {
      cwd: dir,
      stdio: ["ignore", "pipe", "pipe"],
    });
    const output = captureOutput(child);
    const exited = exitPromise(child);
    const deadline = Date.now() + (options.readyTimeoutMs ?? 15_000);
    const ready = await Promise.race([spec.ready(port, deadline), exited.then(() => false)]);
    if (ready && child.exitCode === null && child.signalCode === null) {
      const killOnExit = (): void => {
        child.kill("SIGKILL");
      };
      process.once("exit", killOnExit);
      return {
        url: spec.url(port),
        port,
        dir,
        pid: child.pid ?? -1,
        stop: async (signal: NodeJS.Signals = "SIGTERM") => {
          process.removeListener("exit", killOnExit);
          await stopChild(child, exited, signal);
          if (ownsDir) rmSync(dir, { recursive: true, force: true });
        },
      };
    }
    await stopChild(child, exited, "SIGKILL");
    lastError = new Error(
      `${spec.name} on 127.0.0.1:${port} did not become ready (exit code ` +
        `${String(child.exitCode)}, signal ${String(child.signalCode)}); its output:\n${output()}`,
    );
  }
  if (ownsDir) rmSync(dir, { recursive: true, force: true });
  throw lastError ?? new Error(`${spec.name} did not start`);
}

function findBinary(name: string): string {
  // nats-server lives in /usr/sbin, which is not on every user's PATH.
  const dirs = [
    ...(process.env.PATH ?? "").split(delimiter),
    "/usr/sbin",
    "/usr/local/sbin",
    "/sbin",
  ];
  for (const dir of dirs) {
    if (dir === "") continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  throw new Error(
    `${name} not found on PATH or in /usr/sbin: ${SETUP_HINT} or install the Debian package ${name}.`,
  );
}

function captureOutput(child: ChildProcess): () => string {
  let text = "";
  const keep = (chunk: Buffer): void => {
    text = (text + chunk.toString("utf8")).slice(-8_000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  return () => text;
}

function exitPromise(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once("exit", () => resolve());
    child.once("error", () => resolve());
  });
}

async function stopChild(
  child: ChildProcess,
  exited: Promise<void>,
  signal: NodeJS.Signals,
): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill(signal);
  const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
  await exited;
  clearTimeout(timer);
}

function isJetStreamInfo(line: string): boolean {
  if (!line.startsWith("INFO ")) return false;
  try {
    const info = JSON.parse(line.slice("INFO ".length)) as { jetstream?: boolean };
    return info.jetstream === true;
  } catch {
    return false;
  }
}

/** Polls: connect, send `request`, read the first line, until `accept(line)` or the deadline. */
async function waitForLine(
  port: number,
  deadline: number,
  request: string,
  accept: (line: string) => boolean,
): Promise<boolean> {
  while (Date.now() < deadline) {
    const line = await firstLine(port, request, Math.max(100, deadline - Date.now()));
    if (line !== undefined && accept(line)) return true;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return false;
}

function firstLine(port: number, request: string, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = connect({ host: LOOPBACK, port });
    let buffer = "";
    const finish = (line: string | undefined): void => {
      socket.destroy();
      resolve(line);
    };
    socket.setTimeout(Math.min(timeoutMs, 2_000), () => finish(undefined));
    socket.once("error", () => finish(undefined));
    socket.once("close", () => finish(undefined));
    socket.once("connect", () => {
      if (request !== "") socket.write(request);
    });
    socket.on("data", (chunk: Buffer) => {
      buffer += chunk.toString("utf8");
      const end = buffer.indexOf("\r\n");
      if (end >= 0) finish(buffer.slice(0, end));
    });
  });
}
