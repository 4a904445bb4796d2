import type { Readable, Writable } from "node:stream";

/**
 * The container runtime seam: everything the Executor asks of Docker (runtime/docker.ts, the
 * only file that imports dockerode) or of the local-process stand-in (runtime/local.ts). Domain
 * code sees only these types. Errors are the kernel's (lib/errors.ts): NotFoundError for a
 * missing image or container, UnavailableError when the engine does not answer.
 */
export interface ContainerRuntime {
  /** "docker", or "local" (child processes on the host: no isolation at all). */
  readonly kind: "docker" | "local";
  /** False for the local-process runtime: limits, network and hardening are not applied. */
  readonly isolated: boolean;
  /** Describes an image present locally. NotFoundError naming it when absent; never pulls. */
  getImage(image: string): Promise<ImageInfo>;
  /**
   * Creates (does not start) a container. The name must be unique; `createContainer` fails
   * with AlreadyExistsError when it is taken, so callers can pick another.
   */
  createContainer(options: ContainerOptions): Promise<RuntimeContainer>;
  /** Containers (running or not) carrying every given label, for adoption and leak checks. */
  listContainers(labels: Readonly<Record<string, string>>): Promise<ContainerSummary[]>;
  /**
   * A handle on an existing, started container (one a previous Executor process made), for
   * adoption after a restart. Its streams cannot be attached again. NotFoundError when gone.
   */
  openContainer(id: string): Promise<RuntimeContainer>;
  /** Releases connections and child processes the runtime itself holds. */
  close(): Promise<void>;
}

export interface ImageInfo {
  /** `sha256:...`; empty on the local runtime. */
  id: string;
  entrypoint: string[];
  cmd: string[];
  workingDir: string;
  sizeBytes: number;
  /** Build time in ms since the epoch; undefined when unknown. */
  createdMs: number | undefined;
}

export interface Limits {
  /** Thousandths of a core (quota); > 0. */
  cpuMillis: number;
  /** Bytes, swap included (no swap beyond it); > 0. */
  memoryBytes: number;
  /** Most processes and threads; > 0. */
  pids: number;
}

export type Network = "none" | "bridge" | "host";

/** A host directory made visible inside the container (read-write) at `target`. */
export interface Mount {
  source: string;
  target: string;
}

export interface ContainerOptions {
  name: string;
  image: string;
  /** Replaces ENTRYPOINT; empty keeps the image's. */
  command: string[];
  /** Replaces CMD; empty keeps the image's when command is empty too. */
  args: string[];
  env: Readonly<Record<string, string>>;
  /** Absolute path; empty keeps the image's. */
  workingDir: string;
  limits: Limits;
  network: Network;
  labels: Readonly<Record<string, string>>;
  mounts: readonly Mount[];
  /**
   * Open the main process's stdin and let `attach` write to it (stream agents). The stdin
   * closes when the attached stream ends, so the process sees EOF.
   */
  openStdin: boolean;
}

/** How a process ended. */
export interface ExitInfo {
  exitCode: number;
  /** Killed by the kernel for passing the memory limit. */
  oomKilled: boolean;
}

/** The standard streams of a started process; stdout and stderr end when it exits. */
export interface ProcessIo {
  /** Present only when the process was given an open stdin. */
  stdin: Writable | undefined;
  stdout: Readable;
  stderr: Readable;
}

export interface RuntimeContainer {
  readonly id: string;
  readonly name: string;
  /**
   * Connects to the main process's streams. Call once, before `start`, so no output is lost.
   */
  attach(): Promise<ProcessIo>;
  start(): Promise<void>;
  /** Resolves when the main process has exited (at once if it already has). */
  wait(): Promise<ExitInfo>;
  /** Sends a signal to the main process (default SIGKILL). No error if it has exited. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Removes the container (killing it first if it runs). No error if it is gone. */
  remove(): Promise<void>;
  /** Whether the main process runs, and how it ended if it does not. */
  inspect(): Promise<{ running: boolean; exit: ExitInfo | undefined }>;
  /** Starts another process in the running container (`docker exec`). */
  exec(options: ExecOptions): Promise<RuntimeProcess>;
}

export interface ExecOptions {
  command: string[];
  env: Readonly<Record<string, string>>;
  /** Absolute path; empty keeps the container's. */
  workingDir: string;
}

/** A process started by `exec`: its streams, its end, and a way to stop it. */
export interface RuntimeProcess {
  readonly io: ProcessIo;
  /** Resolves with the exit code once it has exited and its output has been read. */
  wait(): Promise<ExitInfo>;
  /** Signals the process (default SIGKILL); no error if it has exited. */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export interface ContainerSummary {
  id: string;
  name: string;
  labels: Record<string, string>;
  running: boolean;
}
