import { realpathSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { isAbsolute, resolve } from "node:path";
import { PassThrough, type Readable } from "node:stream";
import { setTimeout as delay } from "node:timers/promises";
import Docker from "dockerode";
import {
  AlreadyExistsError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  UnavailableError,
} from "../../../lib/errors.js";
import type {
  ContainerOptions,
  ContainerRuntime,
  ContainerSummary,
  ExecOptions,
  ExitInfo,
  ImageInfo,
  Mount,
  ProcessIo,
  RuntimeContainer,
  RuntimeProcess,
} from "./runtime.js";

/** How long `connectDocker` waits for the engine's answer to a ping. */
const pingTimeoutMs = 2000;
/** The Docker sockets no container may see (plus the one this runtime talks to). */
const dockerSockets = ["/var/run/docker.sock", "/run/docker.sock"];
/** Buffered output per stream before the container is made to wait for its reader. */
const outputHighWaterMark = 1024 * 1024;
/** Exit code of a process ended by SIGKILL (the OOM killer's signal). */
const sigkillExit = 128 + 9;

/**
 * The Docker engine as the Executor's container runtime; the only module that imports dockerode.
 * Every container is hardened (no new privileges, all capabilities dropped), limited (CPU quota,
 * memory without swap, pids) and never sees the Docker socket. Images are never pulled: a missing
 * one is a NotFoundError, as no registry may be reachable.
 */
export class DockerRuntime implements ContainerRuntime {
  readonly kind = "docker";
  readonly isolated = true;

  constructor(
    private readonly docker: Docker,
    /** Where the engine answers (socket path or DOCKER_HOST), for error messages. */
    readonly where: string,
    /** The unix socket this runtime talks to, if any: refused as a mount like the usual ones. */
    private readonly socketPath: string | undefined,
  ) {}

  async getImage(image: string): Promise<ImageInfo> {
    try {
      const info = await this.docker.getImage(image).inspect();
      const created = Date.parse(info.Created);
      return {
        id: info.Id,
        entrypoint: stringList(info.Config.Entrypoint),
        cmd: stringList(info.Config.Cmd),
        workingDir: info.Config.WorkingDir ?? "",
        sizeBytes: info.Size,
        createdMs: Number.isNaN(created) ? undefined : created,
      };
    } catch (err) {
      throw this.error(err, { image });
    }
  }

  async createContainer(options: ContainerOptions): Promise<RuntimeContainer> {
    const binds = options.mounts.map((m) => this.bind(m));
    const { command, args } = options;
    try {
      const container = await this.docker.createContainer({
        name: options.name,
        Image: options.image,
        // A command replaces ENTRYPOINT (and CMD by args, even empty: Docker then ignores the
        // image's CMD); args alone replace CMD under the image's ENTRYPOINT; neither keeps both.
        ...(command.length > 0
          ? { Entrypoint: [...command], Cmd: [...args] }
          : args.length > 0
            ? { Cmd: [...args] }
            : {}),
        Env: envList(options.env),
        ...(options.workingDir === "" ? {} : { WorkingDir: options.workingDir }),
        Labels: { ...options.labels },
        Tty: false,
        // StdinOnce: the container's stdin closes when the attached stream ends (EOF for the
        // process); without it, ending the stream leaves stdin open and the process never exits.
        OpenStdin: options.openStdin,
        StdinOnce: options.openStdin,
        AttachStdin: options.openStdin,
        AttachStdout: true,
        AttachStderr: true,
        HostConfig: {
          SecurityOpt: ["no-new-privileges"],
          CapDrop: ["ALL"],
          NanoCpus: Math.round(options.limits.cpuMillis * 1e6),
          Memory: options.limits.memoryBytes,
          MemorySwap: options.limits.memoryBytes, // the same as Memory: no swap
          PidsLimit: options.limits.pids,
          NetworkMode: options.network,
          Binds: binds,
          // The Executor reads the output over the attach stream; the engine's own copy is for
          // `docker logs` on a kept container, capped so that a long-lived agent (all of a stream
          // agent's protocol traffic goes through its stdout) cannot fill the host's disk.
          LogConfig: { Type: "json-file", Config: { "max-size": "10m", "max-file": "1" } },
        },
      });
      return new DockerContainer(this, container, options.name, options.openStdin);
    } catch (err) {
      throw this.error(err, { image: options.image, creating: options.name });
    }
  }

  async listContainers(labels: Readonly<Record<string, string>>): Promise<ContainerSummary[]> {
    try {
      const found = await this.docker.listContainers({
        all: true,
        filters: { label: Object.entries(labels).map(([k, v]) => `${k}=${v}`) },
      });
      return found.map((c) => ({
        id: c.Id,
        name: (c.Names[0] ?? "").replace(/^\//, ""),
        labels: { ...c.Labels },
        running: c.State === "running",
      }));
    } catch (err) {
      throw this.error(err, {});
    }
  }

  async openContainer(id: string): Promise<RuntimeContainer> {
    const container = this.docker.getContainer(id);
    try {
      const info = await container.inspect();
      return new DockerContainer(this, container, info.Name.replace(/^\//, ""), false, true);
    } catch (err) {
      throw this.error(err, { container: id });
    }
  }

  close(): Promise<void> {
    // dockerode opens a connection per request: nothing is held between calls.
    return Promise.resolve();
  }

  /** The engine, for the containers this runtime made. */
  get engine(): Docker {
    return this.docker;
  }

  /**
   * A mount as a bind `source:target:rw`. Refuses relative paths, paths Binds cannot express (a
   * colon) and any source that is, or contains, a Docker socket: a container that can reach the
   * engine controls the host.
   */
  private bind(mount: Mount): string {
    for (const [field, path] of [
      ["source", mount.source],
      ["target", mount.target],
    ] as const) {
      if (!isAbsolute(path) || path.includes(":")) {
        throw new InvalidArgumentError(
          `mount ${field} "${path}" must be an absolute path without ":"`,
          { field: `mounts.${field}` },
        );
      }
    }
    const sources = new Set([resolve(mount.source), realPath(mount.source)]);
    const sockets = [...dockerSockets, ...(this.socketPath ? [this.socketPath] : [])];
    for (const socket of sockets.flatMap((s) => [s, realPath(s)])) {
      for (const source of sources) {
        if (socket === source || socket.startsWith(source === "/" ? "/" : `${source}/`)) {
          throw new InvalidArgumentError(
            `mount source "${mount.source}" would expose the Docker socket ${socket} to the container: containers never get the engine`,
            { field: "mounts.source" },
          );
        }
      }
    }
    return `${mount.source}:${mount.target}:rw`;
  }

  /** The one place Docker's failures become the kernel's errors (see `toRuntimeError`). */
  error(err: unknown, about: ErrorSubject): unknown {
    return toRuntimeError(err, about, this.where);
  }
}

/**
 * Connects to the Docker engine at `socketPath` (default: DOCKER_HOST, else
 * /var/run/docker.sock); undefined when none answers a ping within 2 s.
 */
export async function connectDocker(
  options: { socketPath?: string } = {},
): Promise<DockerRuntime | undefined> {
  const { socketPath } = options;
  const docker = socketPath === undefined ? new Docker() : new Docker({ socketPath });
  const modem = docker.modem as { socketPath?: unknown };
  const usedSocket = typeof modem.socketPath === "string" ? modem.socketPath : undefined;
  const where = usedSocket ?? process.env.DOCKER_HOST ?? "the default Docker host";
  const timeout = new AbortController();
  const answered = await Promise.race([
    docker.ping().then(
      () => true,
      () => false,
    ),
    delay(pingTimeoutMs, false, { signal: timeout.signal }).catch(() => false),
  ]);
  timeout.abort();
  return answered ? new DockerRuntime(docker, where, usedSocket) : undefined;
}

/** What a failed call was about, to name it in the error. */
interface ErrorSubject {
  image?: string;
  container?: string;
  /** The name of the container being created: a conflict (409) means the name is taken. */
  creating?: string;
}

/** Socket-level failures: no engine behind the socket (or it just went away). */
const unreachable = new Set(["ECONNREFUSED", "ENOENT", "ECONNRESET", "EPIPE", "EACCES"]);

/**
 * Maps a dockerode failure to the kernel's error: engine unreachable → UnavailableError, no such
 * image → NotFoundError saying to build it, no such container → NotFoundError, name taken on
 * create → AlreadyExistsError, other conflicts → FailedPreconditionError, a refused parameter
 * (400) → InvalidArgumentError. Anything else is returned unchanged (an internal error).
 */
function toRuntimeError(err: unknown, about: ErrorSubject, where: string): unknown {
  const { statusCode, code, message } = dockerFailure(err);
  if (statusCode === undefined && code !== undefined && unreachable.has(code)) {
    return new UnavailableError(
      `the Docker engine does not answer at ${where} (${code}): start dockerd (bash scripts/setup.sh), or set EXECUTOR_RUNTIME=local`,
      { cause: err },
    );
  }
  const container = about.creating ?? about.container ?? "?";
  switch (statusCode) {
    case 404:
      if (about.image !== undefined && (/no such image/i.test(message) || !about.creating)) {
        return new NotFoundError(
          `image "${about.image}" is not present on the Docker engine: build it locally (e.g. bash scripts/build-images.sh); images are never pulled, since no registry may be reachable`,
          { field: "image", cause: err },
        );
      }
      return new NotFoundError(`container "${container}" does not exist (any more): ${message}`, {
        cause: err,
      });
    case 409:
      if (about.creating !== undefined) {
        return new AlreadyExistsError(`container name "${about.creating}" is already in use`, {
          field: "name",
          cause: err,
        });
      }
      return new FailedPreconditionError(`container "${container}": ${message}`, { cause: err });
    case 400:
      return new InvalidArgumentError(`the Docker engine refused it: ${message}`, { cause: err });
    default:
      return err;
  }
}

/** The HTTP status, socket error code and Docker's own message of a dockerode failure. */
function dockerFailure(err: unknown): {
  statusCode: number | undefined;
  code: string | undefined;
  message: string;
} {
  const e = (err ?? {}) as {
    statusCode?: unknown;
    code?: unknown;
    json?: { message?: unknown } | null;
    message?: unknown;
  };
  const json = e.json?.message;
  return {
    statusCode: typeof e.statusCode === "number" ? e.statusCode : undefined,
    code: typeof e.code === "string" ? e.code : undefined,
    message: String(typeof json === "string" ? json : (e.message ?? err)).trim(),
  };
}

/** True for the failures `kill` and `remove` treat as "already done". */
function alreadyGone(err: unknown, conflicts: RegExp): boolean {
  const { statusCode, message } = dockerFailure(err);
  return statusCode === 404 || (statusCode === 409 && conflicts.test(message));
}

class DockerContainer implements RuntimeContainer {
  readonly id: string;
  private io: Promise<ProcessIo> | undefined;
  private exited: Promise<ExitInfo> | undefined;

  constructor(
    private readonly runtime: DockerRuntime,
    private readonly container: Docker.Container,
    readonly name: string,
    private readonly openStdin: boolean,
    /** True for a container opened after the fact (already started by someone else). */
    private started = false,
  ) {
    this.id = container.id;
  }

  attach(): Promise<ProcessIo> {
    this.io ??= this.attachOnce().catch((err: unknown) => {
      this.io = undefined;
      throw err;
    });
    return this.io;
  }

  private async attachOnce(): Promise<ProcessIo> {
    let socket: Readable & NodeJS.WritableStream;
    try {
      // hijack: the engine hands over the raw connection (HTTP upgrade), so stdin can be written
      // to it and half-closed, which closes the container's stdin (StdinOnce).
      socket = (await this.container.attach({
        stream: true,
        stdin: this.openStdin,
        stdout: true,
        stderr: true,
        hijack: true,
      })) as Readable & NodeJS.WritableStream;
    } catch (err) {
      throw this.error(err);
    }
    const { stdout, stderr } = demux(socket);
    let stdin: PassThrough | undefined;
    if (this.openStdin) {
      // A stream of our own, so that destroying it never cuts the output; ending it half-closes
      // the connection. Writes after the process exited fail on the socket, quietly (demux
      // listens for the socket's errors).
      stdin = new PassThrough();
      stdin.pipe(socket);
    }
    return { stdin, stdout, stderr };
  }

  async start(): Promise<void> {
    try {
      await this.container.start();
    } catch (err) {
      if (dockerFailure(err).statusCode !== 304) throw this.error(err);
      // 304: already started.
    }
    this.started = true;
  }

  wait(): Promise<ExitInfo> {
    if (!this.started) {
      return Promise.reject(
        new FailedPreconditionError(`container "${this.name}" was never started`),
      );
    }
    this.exited ??= this.waitOnce().catch((err: unknown) => {
      this.exited = undefined; // a failed wait (engine restart) may be retried
      throw err;
    });
    return this.exited;
  }

  private async waitOnce(): Promise<ExitInfo> {
    let exitCode: number;
    try {
      // Returns at once when it has already exited (condition "not-running").
      const result = (await this.container.wait()) as { StatusCode: number };
      exitCode = result.StatusCode;
    } catch (err) {
      throw this.error(err);
    }
    // Docker records OOMKilled in the state, not in the wait result.
    const state = await this.container.inspect().then(
      (info) => info.State,
      () => undefined, // removed meanwhile: how it ended is all we know
    );
    return { exitCode, oomKilled: state?.OOMKilled ?? false };
  }

  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    try {
      await this.container.kill({ signal });
    } catch (err) {
      if (!alreadyGone(err, /is not running/i)) {
        throw this.error(err);
      }
    }
  }

  async remove(): Promise<void> {
    try {
      // v: its anonymous volumes go with it.
      await this.container.remove({ force: true, v: true });
    } catch (err) {
      if (!alreadyGone(err, /already in progress/i)) {
        throw this.error(err);
      }
    }
  }

  async inspect(): Promise<{ running: boolean; exit: ExitInfo | undefined }> {
    let state: Docker.ContainerInspectInfo["State"];
    try {
      state = (await this.container.inspect()).State;
    } catch (err) {
      throw this.error(err);
    }
    const ended = state.Status === "exited" || state.Status === "dead";
    return {
      running: state.Running,
      exit:
        !state.Running && ended
          ? { exitCode: state.ExitCode, oomKilled: state.OOMKilled }
          : undefined,
    };
  }

  async exec(options: ExecOptions): Promise<RuntimeProcess> {
    const startedMs = Date.now();
    let socket: Readable;
    let exec: Docker.Exec;
    try {
      exec = await this.container.exec({
        Cmd: [...options.command],
        Env: envList(options.env),
        ...(options.workingDir === "" ? {} : { WorkingDir: options.workingDir }),
        AttachStdin: false,
        AttachStdout: true,
        AttachStderr: true,
        Tty: false,
      });
      socket = await exec.start({ hijack: true, stdin: false });
    } catch (err) {
      throw this.error(err);
    }
    const { stdout, stderr, ended } = demux(socket);
    return new DockerProcess(this, exec, { stdin: undefined, stdout, stderr }, ended, startedMs);
  }

  /** A failure about this container as the kernel's error. */
  error(err: unknown): unknown {
    return this.runtime.error(err, { container: this.name });
  }

  /** Whether the engine logged an OOM kill in this container since `sinceMs`. */
  async oomSince(sinceMs: number): Promise<boolean> {
    try {
      const events = await this.runtime.engine.getEvents({
        // Seconds, fractions allowed; a second of slack before the start for clock rounding.
        // `until` makes the engine send what it has and close the stream.
        since: sinceMs / 1000 - 1,
        until: Date.now() / 1000,
        filters: { container: [this.id], event: ["oom"] },
      });
      const chunks: Buffer[] = [];
      for await (const chunk of events as AsyncIterable<Buffer>) chunks.push(chunk);
      return Buffer.concat(chunks).toString("utf8").trim() !== "";
    } catch {
      return false;
    }
  }

  /** Host pid of a process, if it is visible here and really runs in this container. */
  async ownsPid(pid: number): Promise<boolean> {
    if (pid <= 0) return false;
    try {
      // The cgroup path names the container (cgroupfs and systemd drivers, v1 and v2). A pid
      // from another pid namespace (the Executor itself in a container) fails this check rather
      // than signalling an unrelated process of ours.
      return (await readFile(`/proc/${pid}/cgroup`, "utf8")).includes(this.id);
    } catch {
      return false;
    }
  }
}

/** A process started by `docker exec`. */
class DockerProcess implements RuntimeProcess {
  private exited: Promise<ExitInfo> | undefined;

  constructor(
    private readonly container: DockerContainer,
    private readonly exec: Docker.Exec,
    readonly io: ProcessIo,
    private readonly ended: Promise<void>,
    private readonly startedMs: number,
  ) {}

  wait(): Promise<ExitInfo> {
    this.exited ??= this.waitOnce().catch((err: unknown) => {
      this.exited = undefined;
      throw err;
    });
    return this.exited;
  }

  private async waitOnce(): Promise<ExitInfo> {
    // The engine closes the output once the process has exited and its output is copied; the
    // exit code shows in inspect a moment later at most.
    await this.ended;
    for (let pause = 5; ; pause = Math.min(pause * 2, 200)) {
      const info = await this.inspectExec();
      if (!info.Running) {
        const exitCode = info.ExitCode ?? -1;
        // Docker keeps OOMKilled for the main process only; an exec's OOM kill shows as an
        // "oom" event of the container, worth looking for when it died of SIGKILL.
        const oomKilled =
          exitCode === sigkillExit && (await this.container.oomSince(this.startedMs));
        return { exitCode, oomKilled };
      }
      await delay(pause);
    }
  }

  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    let info = await this.inspectExec();
    // Docker may report a starting exec as running before it has a pid: give it a moment.
    for (let i = 0; i < 20 && info.Running && info.Pid <= 0; i++) {
      await delay(25);
      info = await this.inspectExec();
    }
    if (!info.Running) return;
    // Docker has no API to signal an exec'd process: signal its host pid when this process can
    // see it (same pid namespace, enough privilege).
    if (await this.container.ownsPid(info.Pid)) {
      try {
        process.kill(info.Pid, signal);
        return;
      } catch {
        // EPERM, or it just exited: fall through
      }
    }
    // The check fails too when the process has just exited (its /proc entry is gone): then there
    // is nothing to stop, and the agent must not be killed for it.
    if (!(await this.inspectExec()).Running) return;
    // Not reachable alone: the signal goes to the container's main process, so the agent goes
    // down with the exec (executor.proto, CancelTask: "If a warm task cannot be stopped alone
    // ..., its agent is killed").
    await this.container.kill(signal);
  }

  private async inspectExec(): Promise<Docker.ExecInspectInfo> {
    try {
      return await this.exec.inspect();
    } catch (err) {
      throw this.container.error(err);
    }
  }
}

/**
 * Splits Docker's multiplexed stream (frames of an 8-byte header — stream 1 stdout, 2 stderr,
 * size big-endian at 4 — and the payload) into stdout and stderr. Both end when the source ends,
 * closes or fails; `ended` resolves then. Backpressure is kept: the source pauses while a reader
 * lags more than `outputHighWaterMark` behind.
 */
function demux(source: Readable): {
  stdout: PassThrough;
  stderr: PassThrough;
  ended: Promise<void>;
} {
  const stdout = new PassThrough({ highWaterMark: outputHighWaterMark });
  const stderr = new PassThrough({ highWaterMark: outputHighWaterMark });
  let pending: Buffer = Buffer.alloc(0);
  let raw = false; // not multiplexed after all (a TTY stream): everything is stdout
  const write = (target: PassThrough, payload: Buffer) => {
    if (payload.length > 0 && !target.write(payload)) {
      source.pause();
      target.once("drain", () => source.resume());
    }
  };
  source.on("data", (chunk: Buffer) => {
    if (raw) return write(stdout, chunk);
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    while (pending.length >= 8) {
      const kind = pending[0];
      if (kind !== 0 && kind !== 1 && kind !== 2) {
        raw = true;
        write(stdout, pending);
        pending = Buffer.alloc(0);
        return;
      }
      const size = pending.readUInt32BE(4);
      if (pending.length < 8 + size) break;
      write(kind === 2 ? stderr : stdout, pending.subarray(8, 8 + size));
      pending = pending.subarray(8 + size);
    }
  });
  const ended = new Promise<void>((resolveEnded) => {
    let done = false;
    // Once: "end" and "close" both come, and a second end() builds an error (with its stack)
    // that nobody reads, on every exec.
    const finish = () => {
      if (done) return;
      done = true;
      stdout.end();
      stderr.end();
      resolveEnded();
    };
    source.once("end", finish);
    source.once("close", finish);
    source.on("error", finish); // ECONNRESET, EPIPE on stdin after the exit: the output is over
  });
  return { stdout, stderr, ended };
}

function envList(env: Readonly<Record<string, string>>): string[] {
  return Object.entries(env).map(([k, v]) => `${k}=${v}`);
}

/** Docker's Entrypoint/Cmd: null, a list, or (old images) a shell string. */
function stringList(value: string | string[] | null | undefined): string[] {
  if (value === null || value === undefined) return [];
  return typeof value === "string" ? ["/bin/sh", "-c", value] : [...value];
}

/** The path with symlinks resolved, or as given when it does not exist. */
function realPath(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return resolve(path);
  }
}
