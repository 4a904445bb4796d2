import { randomUUID } from "node:crypto";
import type { Readable, Writable } from "node:stream";
import type { JsonValue } from "@bufbuild/protobuf";
import { LineSplitter } from "./lines.js";
import {
  decode,
  encode,
  maxLineBytes,
  ProtocolError,
  type FromAgent,
  type ToAgent,
} from "./protocol.js";
import type { StateReply } from "./state-relay.js";

/** How a task on a stream agent ended, as the session saw it. */
export type StreamTaskEnd =
  | { kind: "result"; result: JsonValue }
  | { kind: "error"; error: string }
  /** The agent broke the protocol; it must not get another task. */
  | { kind: "broken"; reason: string }
  /** The agent's stdout ended (its process exited). */
  | { kind: "closed" };

export interface StreamTaskHandlers {
  onLog(message: string): void;
  onState(request: Record<string, JsonValue>): Promise<StateReply>;
}

type TaskMessage = Extract<ToAgent, { type: "task" }>;

/**
 * Most state requests of one agent served at once. While that many are in flight the Executor
 * reads no further line of its stdout (the pipe fills and the agent's writes wait), so a flood
 * of requests holds at most this many, and an SDK agent's Promise.all over many calls still
 * completes, in turns.
 */
export const maxStateRequestsInFlight = 16;

/**
 * Most bytes the Executor may have written to an agent's stdin that it has not read. Past them,
 * at the next message, the agent is broken: it does not read its replies.
 */
export const maxUnreadStdinBytes = 8 * 1024 * 1024;

/**
 * One stream agent's conversation over its stdin and stdout: waits for its "ready", runs one
 * task at a time, answers its state requests, pings it. A line that breaks the protocol, or an
 * agent leaving more than maxUnreadStdinBytes of its stdin unread, ends the current task as
 * "broken" and marks the session broken for good.
 */
export class StreamSession {
  /** Stdout's lines; it stops while maxStateRequestsInFlight are served, and once broken. */
  private readonly lines = new LineSplitter(
    maxLineBytes,
    (line) => this.onLine(line),
    (head) =>
      this.breakWithProtocol(
        new ProtocolError(`a line on stdout is longer than ${maxLineBytes} bytes`, head),
      ),
    () => this.broken !== undefined || this.statesInFlight >= maxStateRequestsInFlight,
  );
  /** The rest of a chunk of stdout, left while maxStateRequestsInFlight are (stdout is paused). */
  private unread: Buffer | undefined;
  private statesInFlight = 0;
  private readyWaiter: { resolve: () => void; reject: (e: Error) => void } | undefined;
  private isReady = false;
  private current:
    | { taskId: string; handlers: StreamTaskHandlers; settle: (end: StreamTaskEnd) => void }
    | undefined;
  /** Tasks that ended without the agent's answer (cancelled, timed out): late lines are ignored. */
  private readonly abandoned = new Set<string>();
  private readonly pings = new Map<string, () => void>();
  private closedReason: string | undefined;
  /** Set when the agent broke the protocol or stopped reading its stdin: why. */
  broken: string | undefined;

  constructor(
    private readonly stdin: Writable,
    private readonly stdout: Readable,
    /** Called once when the agent breaks (the protocol, or its stdin), also between tasks. */
    private readonly onBroken: (why: string) => void = () => undefined,
  ) {
    stdin.on("error", () => undefined); // the agent went away; stdout's end reports it
    stdout.on("data", (chunk: Buffer) => this.onData(chunk));
    stdout.once("end", () => this.onClose("its stdout ended"));
    stdout.once("close", () => this.onClose("its stdout closed"));
  }

  /** Resolves on the agent's "ready"; rejects when it breaks the protocol or its stdout ends. */
  ready(): Promise<void> {
    if (this.isReady) return Promise.resolve();
    if (this.broken !== undefined) return Promise.reject(new Error(this.broken));
    if (this.closedReason !== undefined) return Promise.reject(new Error(this.closedReason));
    return new Promise((resolve, reject) => (this.readyWaiter = { resolve, reject }));
  }

  /** Sends a task and resolves with how it ended. One task at a time. */
  run(task: TaskMessage, handlers: StreamTaskHandlers): Promise<StreamTaskEnd> {
    if (this.current !== undefined) throw new Error("the session already runs a task");
    if (this.broken !== undefined) return Promise.resolve({ kind: "broken", reason: this.broken });
    if (this.closedReason !== undefined) return Promise.resolve({ kind: "closed" });
    return new Promise((resolve) => {
      this.current = {
        taskId: task.task_id,
        handlers,
        settle: (end) => {
          this.current = undefined;
          resolve(end);
        },
      };
      this.send(task);
    });
  }

  /** Asks the agent to stop the task; the task stays current until it answers or is abandoned. */
  cancel(taskId: string, reason: string): void {
    this.send({ type: "cancel", task_id: taskId, reason });
  }

  /** Ends the current task without waiting for the agent (timeout, cancel past its grace). */
  abandon(taskId: string, end: StreamTaskEnd): void {
    if (this.current?.taskId !== taskId) return;
    this.abandoned.add(taskId);
    this.current.settle(end);
  }

  /** Round trip of a ping; resolves false when no pong comes within `timeoutMs`. */
  ping(timeoutMs: number): Promise<boolean> {
    if (this.broken !== undefined || this.closedReason !== undefined) return Promise.resolve(false);
    const id = randomUUID();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pings.delete(id);
        resolve(false);
      }, timeoutMs);
      this.pings.set(id, () => {
        clearTimeout(timer);
        resolve(true);
      });
      this.send({ type: "ping", id });
    });
  }

  /** Ends the agent's stdin: a well-behaved agent exits. */
  close(): void {
    this.stdin.end();
  }

  /** State requests being served now (at most maxStateRequestsInFlight). */
  get stateRequestsInFlight(): number {
    return this.statesInFlight;
  }

  private send(message: ToAgent): void {
    if (this.closedReason !== undefined || this.broken !== undefined) return;
    const unread = this.stdin.writableLength;
    if (unread > maxUnreadStdinBytes) {
      this.breakWith(
        `the agent does not read its stdin: ${unread} bytes the Executor wrote to it are unread, ` +
          `more than ${maxUnreadStdinBytes}; read every line of stdin as it comes ` +
          "(state results, pings, cancels), even while a task runs",
      );
      return;
    }
    this.stdin.write(encode(message));
  }

  private onData(chunk: Buffer): void {
    if (this.broken !== undefined) return; // nothing more is read from a broken agent
    // Nothing comes while stdout is paused; should a chunk come anyway, it goes after the rest.
    this.unread = this.unread === undefined ? chunk : Buffer.concat([this.unread, chunk]);
    this.readLines();
  }

  /** Reads the lines of `unread`, pausing stdout when maxStateRequestsInFlight are served. */
  private readLines(): void {
    const chunk = this.unread;
    if (chunk === undefined) return;
    this.unread = undefined;
    const rest = this.lines.push(chunk);
    if (rest === undefined || this.broken !== undefined) return;
    this.unread = rest; // read once a state request is answered
    this.stdout.pause();
  }

  private onLine(line: string): void {
    if (line.trim() === "" || this.broken !== undefined) return;
    let message: FromAgent;
    try {
      message = decode(line);
    } catch (err) {
      if (err instanceof ProtocolError) this.breakWithProtocol(err);
      return;
    }
    this.dispatch(message, line);
  }

  private dispatch(m: FromAgent, line: string): void {
    if (m.type === "ready") {
      if (this.isReady) return; // a restarted loop may announce itself again: harmless
      this.isReady = true;
      this.readyWaiter?.resolve();
      this.readyWaiter = undefined;
      return;
    }
    if (m.type === "pong") {
      this.pings.get(m.id)?.();
      this.pings.delete(m.id);
      return;
    }
    const current = this.current;
    if (current === undefined || current.taskId !== m.task_id) {
      if (this.abandoned.has(m.task_id)) return; // late words about a task already ended
      this.breakWithProtocol(
        new ProtocolError(
          `a "${m.type}" message names task "${m.task_id}", which is not the agent's current task`,
          line,
        ),
      );
      return;
    }
    switch (m.type) {
      case "result":
        current.settle({ kind: "result", result: m.result });
        return;
      case "error":
        current.settle({ kind: "error", error: m.error });
        return;
      case "log":
        current.handlers.onLog(m.message);
        return;
      case "heartbeat":
        return;
      case "state":
        this.serveState(current.handlers, m);
        return;
    }
  }

  private serveState(handlers: StreamTaskHandlers, m: Extract<FromAgent, { type: "state" }>): void {
    this.statesInFlight++;
    void handlers
      .onState(m.request)
      .catch((err: unknown): StateReply => ({
        ok: false,
        code: "INTERNAL",
        error: `the state request failed: ${err instanceof Error ? err.message : String(err)}`,
      }))
      .then((reply) => {
        this.statesInFlight--;
        this.send({ type: "state_result", request_id: m.request_id, ...reply });
        if (this.unread === undefined || this.statesInFlight >= maxStateRequestsInFlight) return;
        this.readLines();
        if (this.unread === undefined) this.stdout.resume();
      });
  }

  private breakWithProtocol(err: ProtocolError): void {
    const excerpt = err.line.length > 200 ? err.line.slice(0, 200) + "…" : err.line;
    this.breakWith(`agent sent malformed output: ${err.reason}: ${JSON.stringify(excerpt)}`);
  }

  /** Marks the agent broken for good (once): the current task ends "broken", nothing more is read. */
  private breakWith(why: string): void {
    if (this.broken !== undefined) return;
    this.broken = why;
    this.unread = undefined;
    this.lines.reset();
    this.stdout.resume(); // its output is dropped from now on; let the pipe drain
    this.readyWaiter?.reject(new Error(this.broken));
    this.readyWaiter = undefined;
    this.current?.settle({ kind: "broken", reason: this.broken });
    this.onBroken(this.broken);
  }

  private onClose(reason: string): void {
    if (this.closedReason !== undefined) return;
    this.closedReason = reason;
    this.readyWaiter?.reject(new Error(reason));
    this.readyWaiter = undefined;
    this.current?.settle({ kind: "closed" });
  }
}
