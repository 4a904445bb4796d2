import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { once } from "node:events";
import { constants } from "node:os";
import { PassThrough } from "node:stream";
import { AlreadyExistsError, InvalidArgumentError, NotFoundError } from "../../../lib/errors.js";
import type {
  ContainerOptions,
  ContainerRuntime,
  ContainerSummary,
  ExecOptions,
  ExitInfo,
  ImageInfo,
  ProcessIo,
  RuntimeContainer,
  RuntimeProcess,
} from "./runtime.js";

/**
 * The runtime for machines without a Docker engine: a "container" is a child process on the host
 * running the command (the image is ignored), with the host's PATH plus the given environment.
 * NO ISOLATION: no limits, no network separation, no filesystem separation; mounts are not made
 * (the Executor passes host paths instead). The Executor logs this loudly at start.
 */
export class LocalRuntime implements ContainerRuntime {
  readonly kind = "local";
  readonly isolated = false;
  private readonly containers = new Map<string, LocalContainer>();

  getImage(): Promise<ImageInfo> {
    // No images here: every image "exists" and supplies no defaults.
    return Promise.resolve({
      id: "",
      entrypoint: [],
      cmd: [],
      workingDir: "",
      sizeBytes: 0,
      createdMs: undefined,
    });
  }

  createContainer(options: ContainerOptions): Promise<RuntimeContainer> {
    for (const c of this.containers.values()) {
      if (c.name === options.name) {
        return Promise.reject(new AlreadyExistsError(`process name "${options.name}" is in use`));
      }
    }
    const argv = [...options.command, ...options.args];
    if (argv.length === 0 || argv[0] === "") {
      return Promise.reject(
        new InvalidArgumentError(
          "the local-process runtime has no image to take a command from: give command or args",
          { field: "command" },
        ),
      );
    }
    const container = new LocalContainer(options, argv, () => this.containers.delete(container.id));
    this.containers.set(container.id, container);
    return Promise.resolve(container);
  }

  listContainers(labels: Readonly<Record<string, string>>): Promise<ContainerSummary[]> {
    const wanted = Object.entries(labels);
    return Promise.resolve(
      [...this.containers.values()]
        .filter((c) => wanted.every(([k, v]) => c.options.labels[k] === v))
        .map((c) => ({
          id: c.id,
          name: c.name,
          labels: { ...c.options.labels },
          running: c.running,
        })),
    );
  }

  openContainer(id: string): Promise<RuntimeContainer> {
    // Child processes do not outlive the Executor: there is never anything to adopt.
    const c = this.containers.get(id);
    return c
      ? Promise.resolve(c)
      : Promise.reject(
          new NotFoundError(`no process "${id}" (processes do not survive a restart)`),
        );
  }

  async close(): Promise<void> {
    await Promise.all([...this.containers.values()].map((c) => c.remove()));
  }
}

/** Env for a child: the host's PATH (so commands resolve) and nothing else of the host's. */
function childEnv(...layers: Array<Readonly<Record<string, string>>>): NodeJS.ProcessEnv {
  return Object.assign(
    { PATH: process.env.PATH ?? "/usr/bin:/bin" },
    ...layers,
  ) as NodeJS.ProcessEnv;
}

/** Exit code as a shell reports it: the code, or 128 + the signal's number. */
function exitInfo(code: number | null, signal: NodeJS.Signals | null): ExitInfo {
  const bySignal = signal === null ? undefined : constants.signals[signal];
  return { exitCode: code ?? 128 + (bySignal ?? 9), oomKilled: false };
}

/** Starts argv in its own process group, so a kill reaches everything it started. */
function startProcess(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  cwd: string | undefined,
  withStdin: boolean,
): { child: ChildProcess; exited: Promise<ExitInfo> } {
  const [file, ...rest] = argv as [string, ...string[]];
  const child = spawn(file, rest, {
    env,
    cwd: cwd === "" ? undefined : cwd,
    detached: true,
    stdio: [withStdin ? "pipe" : "ignore", "pipe", "pipe"],
  });
  const exited = new Promise<ExitInfo>((resolve) => {
    // "close" fires after the streams have ended; "error" when the command cannot start.
    child.once("close", (code, signal) => resolve(exitInfo(code, signal)));
    child.once("error", (err: NodeJS.ErrnoException) => {
      child.stderr?.removeAllListeners("data");
      resolve({ exitCode: err.code === "ENOENT" ? 127 : 126, oomKilled: false });
    });
  });
  return { child, exited };
}

function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    child.kill(signal);
  }
}

class LocalContainer implements RuntimeContainer {
  readonly id = randomUUID();
  readonly name: string;
  private readonly io = {
    stdin: new PassThrough(),
    stdout: new PassThrough(),
    stderr: new PassThrough(),
  };
  private child: ChildProcess | undefined;
  private exited: Promise<ExitInfo> | undefined;
  private exit: ExitInfo | undefined;
  private readonly execs = new Set<ChildProcess>();

  constructor(
    readonly options: ContainerOptions,
    private readonly argv: readonly string[],
    private readonly forget: () => void,
  ) {
    this.name = options.name;
  }

  get running(): boolean {
    return this.child !== undefined && this.exit === undefined;
  }

  attach(): Promise<ProcessIo> {
    return Promise.resolve({
      stdin: this.options.openStdin ? this.io.stdin : undefined,
      stdout: this.io.stdout,
      stderr: this.io.stderr,
    });
  }

  start(): Promise<void> {
    if (this.child !== undefined) return Promise.resolve();
    const env = childEnv(this.options.env);
    const { child, exited } = startProcess(
      this.argv,
      env,
      this.options.workingDir,
      this.options.openStdin,
    );
    this.child = child;
    child.stdout?.pipe(this.io.stdout);
    child.stderr?.pipe(this.io.stderr);
    if (child.stdin) {
      this.io.stdin.pipe(child.stdin);
      child.stdin.on("error", () => undefined); // EPIPE after the process exited
    }
    this.exited = exited.then((info) => {
      this.exit = info;
      // A process that never started has no streams to end ours.
      if (child.stdout === null) this.io.stdout.end();
      if (child.stderr === null) this.io.stderr.end();
      if (child.pid === undefined) {
        this.io.stdout.end();
        this.io.stderr.end();
      }
      return info;
    });
    return Promise.resolve();
  }

  async wait(): Promise<ExitInfo> {
    if (this.exited === undefined) {
      throw new InvalidArgumentError(`process "${this.name}" was never started`);
    }
    return this.exited;
  }

  kill(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    if (this.child) signalGroup(this.child, signal);
    return Promise.resolve();
  }

  async remove(): Promise<void> {
    for (const e of this.execs) signalGroup(e, "SIGKILL");
    if (this.child && this.exit === undefined) {
      signalGroup(this.child, "SIGKILL");
      await this.exited;
    }
    this.forget();
  }

  inspect(): Promise<{ running: boolean; exit: ExitInfo | undefined }> {
    return Promise.resolve({ running: this.running, exit: this.exit });
  }

  async exec(options: ExecOptions): Promise<RuntimeProcess> {
    if (!this.running) throw new InvalidArgumentError(`process "${this.name}" is not running`);
    const env = childEnv(this.options.env, options.env);
    const cwd = options.workingDir === "" ? this.options.workingDir : options.workingDir;
    const { child, exited } = startProcess(options.command, env, cwd, false);
    this.execs.add(child);
    const done = exited.finally(() => this.execs.delete(child));
    const stdout = child.stdout ?? new PassThrough().end();
    const stderr = child.stderr ?? new PassThrough().end();
    if (child.pid === undefined) await once(child, "error").catch(() => undefined);
    return {
      io: { stdin: undefined, stdout, stderr },
      wait: () => done,
      kill: (signal: NodeJS.Signals = "SIGKILL") => {
        signalGroup(child, signal);
        return Promise.resolve();
      },
    };
  }
}
