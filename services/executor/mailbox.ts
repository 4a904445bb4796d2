import { closeSync, constants, readSync } from "node:fs";
import { chmod, lstat, mkdir, rm } from "node:fs/promises";
import { Socket } from "node:net";
import { join } from "node:path";
import type { Logger } from "../../lib/logger.js";
import { contractEnv, inlineInputBytes, mailboxFiles, maxResultBytes } from "./contract.js";
import type { FifoStock } from "./fifo-stock.js";
import {
  isFifo,
  openFifo,
  readHead,
  removeEntry,
  replaceFile,
  type HeadRead,
} from "./mailbox-files.js";
import { LineSplitter } from "./lines.js";
import { maxLineBytes } from "./protocol.js";
import type { StateReply } from "./state-relay.js";

/** Who the mailbox currently serves: the task whose state requests it relays. */
export interface MailboxTask {
  workflowId: string;
  /** Canonical JSON of the task's input. */
  inputJson: string;
}

/** Answers one state request for the bound workflow (state-relay.ts, with the client bound). */
export type StateHandler = (workflowId: string, request: unknown) => Promise<StateReply>;

/** What the agent left in the mailbox after a task. */
export interface MailboxOutput {
  /** Text of the result file; undefined when the agent wrote none (or too much). */
  result: string | undefined;
  /** The result file passed maxResultBytes; it was not read. */
  resultTooLarge: boolean;
  /** Text of the error file (at most its first maxErrorBytes); undefined when none. */
  error: string | undefined;
  /**
   * Set when the agent left something other than a regular file where the result or error file
   * belongs (a symbolic link, say): what was there. It was not read; the task fails with this.
   */
  refused?: string;
}

/** Most bytes of an error file that reach the user. */
const maxErrorBytes = 64 * 1024;

/**
 * A task's (or an exec agent's) mailbox: a host directory, mounted into the container, holding
 * the input file, the result and error files the agent may write, and two named pipes over which
 * a plain shell script can make state operations (docs/agent-protocol.md). The Executor holds
 * both pipes open read-write, so opening them never blocks either side and replies wait in the
 * pipe until the agent reads them. One request at a time per mailbox, a line at most 8 MiB.
 */
export class Mailbox {
  private requests: Socket | undefined;
  private replies: Socket | undefined;
  private task: MailboxTask | undefined;
  private closed = false;
  /** Request lines read and not yet answered, oldest first; undefined: one was too long. */
  private queued: Array<string | undefined> = [];
  private serving = false;
  /** Something was read from the request pipe since it was opened. */
  private requestsRead = false;
  private readonly splitter = new LineSplitter(
    maxRequestBytes,
    (line) => this.enqueue(line),
    () => this.enqueue(undefined),
  );

  private constructor(
    readonly dir: string,
    private readonly handle: StateHandler,
    private readonly logger: Logger,
  ) {}

  /**
   * Creates the directory (its parent must exist) and its pipes and starts serving state
   * requests. With `reuse`, the directory may exist (an adopted agent's): it must be a real
   * directory, not a link; otherwise it must not exist yet, so no earlier content is reused.
   * The pipes come from `fifos`.
   */
  static async create(
    dir: string,
    handle: StateHandler,
    logger: Logger,
    fifos: FifoStock,
    reuse = false,
  ): Promise<Mailbox> {
    try {
      await mkdir(dir, { mode: 0o777 });
    } catch (err) {
      if (!reuse || (err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      if (!(await lstat(dir)).isDirectory()) throw new Error(`${dir} is not a directory`);
    }
    await chmod(dir, 0o777); // agents may run as any user; mode is cut by the umask otherwise
    const box = new Mailbox(dir, handle, logger);
    const req = join(dir, mailboxFiles.stateRequest);
    const res = join(dir, mailboxFiles.stateResponse);
    for (const pipe of [req, res]) {
      // A directory a previous Executor process left (an adopted agent's) keeps its pipes: the
      // container has them mounted, so they must be reused, not replaced.
      if (reuse && isFifo(pipe)) continue;
      // Renamed over whatever an agent put there instead (renaming replaces a link or a file at
      // once, so an agent racing it cannot win); a new directory nobody has seen holds nothing.
      if (reuse) removeEntry(pipe); // a directory, which rename does not replace
      await fifos.moveTo(pipe);
    }
    box.openRequests();
    box.replies = openPipe(res, false);
    return box;
  }

  /** Env vars pointing at the mailbox, given where it appears to the process. */
  env(visibleDir: string, task: MailboxTask): Record<string, string> {
    const env: Record<string, string> = {
      [contractEnv.inputFile]: join(visibleDir, mailboxFiles.input),
      [contractEnv.resultFile]: join(visibleDir, mailboxFiles.result),
      [contractEnv.errorFile]: join(visibleDir, mailboxFiles.error),
      [contractEnv.stateRequest]: join(visibleDir, mailboxFiles.stateRequest),
      [contractEnv.stateResponse]: join(visibleDir, mailboxFiles.stateResponse),
    };
    if (Buffer.byteLength(task.inputJson) <= inlineInputBytes)
      env[contractEnv.input] = task.inputJson;
    return env;
  }

  /**
   * Binds the mailbox to a task: writes its input, makes empty result and error files, and
   * drops any reply an earlier task left unread, so the new task never reads another's reply.
   * Each file is made anew (mailbox-files.ts): whatever an earlier task left under those names,
   * a link to a host file say, is removed, never written through.
   */
  async bind(task: MailboxTask): Promise<void> {
    this.forgetRequests();
    drainPipe(join(this.dir, mailboxFiles.stateResponse));
    this.task = task;
    await replaceFile(join(this.dir, mailboxFiles.input), task.inputJson + "\n");
    await replaceFile(join(this.dir, mailboxFiles.result), "");
    await replaceFile(join(this.dir, mailboxFiles.error), "");
  }

  /**
   * Reads what the agent wrote, then unbinds: later state requests are refused. Only regular
   * files are read: anything else under those names is reported in `refused`.
   */
  async collect(): Promise<MailboxOutput> {
    this.task = undefined;
    this.forgetRequests();
    const result = await readHead(join(this.dir, mailboxFiles.result), maxResultBytes);
    const error = await readHead(join(this.dir, mailboxFiles.error), maxErrorBytes);
    const refused = [
      refusal(mailboxFiles.result, contractEnv.resultFile, result),
      refusal(mailboxFiles.error, contractEnv.errorFile, error),
    ].filter((r) => r !== undefined);
    return {
      result: result.kind === "text" && !result.truncated ? result.text : undefined,
      resultTooLarge: result.kind === "text" && result.truncated,
      error: error.kind === "text" ? error.text : undefined,
      ...(refused.length > 0 ? { refused: refused.join("; ") } : {}),
    };
  }

  /** Stops serving and removes the directory. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.task = undefined;
    this.requests?.destroy();
    this.replies?.destroy();
    await rm(this.dir, { recursive: true, force: true });
  }

  private openRequests(): void {
    const requests = openPipe(join(this.dir, mailboxFiles.stateRequest), true);
    this.requestsRead = false;
    requests.on("data", (chunk: Buffer) => {
      if (this.requests !== requests) return; // a socket replaced while it still had data
      this.requestsRead = true;
      this.splitter.push(chunk);
    });
    this.requests = requests;
  }

  /**
   * Queues a request line. Requests are answered one at a time, in order; while
   * `maxQueuedRequests` wait, the pipe is not read, so a writer that floods it blocks in its
   * write instead of filling the Executor's memory.
   */
  private enqueue(line: string | undefined): void {
    if (line !== undefined && line.trim() === "") return;
    this.queued.push(line);
    if (this.queued.length >= maxQueuedRequests) this.requests?.pause();
    void this.pump();
  }

  private async pump(): Promise<void> {
    if (this.serving) return;
    this.serving = true;
    try {
      while (this.queued.length > 0 && !this.closed) {
        const line = this.queued.shift();
        if (this.queued.length < maxQueuedRequests) this.requests?.resume();
        await this.serve(line);
      }
    } finally {
      this.serving = false;
    }
  }

  /** Answers one request, and resolves once the reply has left for the pipe. */
  private async serve(line: string | undefined): Promise<void> {
    const task = this.task;
    // Between tasks nobody may ask: a leftover background process of an ended task gets no
    // reply (it would wait in the pipe for the next task to read as its own).
    if (task === undefined) return;
    let request: unknown;
    try {
      request = line === undefined ? undefined : JSON.parse(line);
    } catch {
      request = undefined;
    }
    const reply: StateReply =
      line === undefined
        ? { ok: false, code: "INVALID_ARGUMENT", error: tooLongError }
        : request === undefined
          ? { ok: false, code: "INVALID_ARGUMENT", error: "a state request is one line of JSON" }
          : await this.handle(task.workflowId, request);
    const replies = this.replies;
    if (this.closed || this.task !== task || replies === undefined) return;
    // Waiting for the write keeps at most one reply buffered here when the agent does not read
    // its replies (then its pipe is full): the next request waits, and the pipe fills behind it.
    await new Promise<void>((resolve) => {
      replies.write(JSON.stringify(reply) + "\n", (err) => {
        if (err && !replies.destroyed) {
          this.logger.warn({ err, dir: this.dir }, "could not write a state reply");
        }
        resolve();
      });
    });
  }

  /**
   * Drops every request of the task that was bound, read or not, and a reply still waiting to
   * be written: it must not reach the next task. The reply pipe's socket is opened anew when it
   * holds unwritten data (the kernel's side is drained by `bind`).
   */
  private forgetRequests(): void {
    this.queued = [];
    this.splitter.reset();
    if (this.requestsRead) {
      // What the socket read ahead, and what waits in the pipe, was the earlier task's.
      this.requests?.destroy();
      drainPipe(join(this.dir, mailboxFiles.stateRequest));
      if (!this.closed) this.openRequests();
    }
    const replies = this.replies;
    if (replies !== undefined && (replies.writableLength > 0 || replies.writableNeedDrain)) {
      replies.destroy(); // the waiting write's callback fires with an error: serve() returns
      this.replies = this.closed
        ? undefined
        : openPipe(join(this.dir, mailboxFiles.stateResponse), false);
    }
  }
}

/** Longest state request line read from the pipe (the stream protocol's line limit). */
const maxRequestBytes = maxLineBytes;
const tooLongError = `a state request is one line of JSON of at most ${maxRequestBytes} bytes`;
/** Request lines read ahead of the one being answered. */
const maxQueuedRequests = 16;

/** Opens a named pipe read-write and non-blocking (never blocks on Linux) as a socket. */
function openPipe(path: string, readable: boolean): Socket {
  // A raw fd (not a FileHandle, which would close it again when collected): the socket owns it.
  const fd = openFifo(path, constants.O_RDWR);
  const socket = new Socket({ fd, readable, writable: !readable });
  socket.on("error", () => undefined); // closed with the mailbox
  return socket;
}

/** Where drained bytes go: discarded, so one buffer serves every mailbox. */
const drainBuffer = Buffer.allocUnsafe(65536);

/** Reads and discards whatever is buffered in a named pipe (never blocks). */
function drainPipe(path: string): void {
  let fd: number | undefined;
  try {
    fd = openFifo(path, constants.O_RDONLY); // throws if the agent put something else there
    while (readSync(fd, drainBuffer, 0, drainBuffer.length, null) > 0) {
      // discard
    }
  } catch {
    // EAGAIN: nothing (more) buffered; or no pipe there (the agent's state requests then fail)
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

function refusal(name: string, envName: string, found: HeadRead): string | undefined {
  if (found.kind !== "refused") return undefined;
  return `the agent left ${found.what} where its ${name} belongs (${envName}); only a regular file is read there`;
}
