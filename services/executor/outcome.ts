import type { JsonValue } from "@bufbuild/protobuf";
import type { MailboxOutput } from "./mailbox.js";
import type { TaskStatus } from "./task.js";

/** What ended a process-based (cold or exec) task. */
export interface ProcessEnd {
  /** undefined when no process exited (it never started). */
  exitCode: number | undefined;
  oomKilled: boolean;
  timedOut: boolean;
  /** Set when the task was cancelled: the reason given. */
  cancelReason: string | undefined;
  /** The Executor could not run it: why. */
  runError: string | undefined;
  mailbox: MailboxOutput;
  stdout: Buffer;
  stderr: Buffer;
  memoryBytes: number;
  timeoutMs: number;
}

/**
 * Most arrays and objects a result may nest inside one another. protobuf-es (like C++ and Java)
 * decodes binary at most 100 messages deep, and each level of a google.protobuf.Value takes two
 * (Value, then ListValue or Struct): a result nesting 49 levels already makes the GetTask,
 * ListTasks and RunTask responses holding it undecodable by such gRPC clients (jsonToValue's own
 * limit, 99, is far past that). 32 leaves the Workflow service room to wrap results in its own
 * messages and in the next step's input.
 */
export const maxResultDepth = 32;

export const resultTooDeep =
  `the result nests deeper than ${maxResultDepth} levels of arrays and objects; ` +
  "return a flatter result (or pass the deep part as a JSON string)";

/**
 * Whether `value` nests more than `max` arrays and objects inside one another. Walks without
 * recursion: JSON.parse takes any depth, the call stack does not.
 */
export function nestsDeeperThan(value: JsonValue, max: number): boolean {
  if (value === null || typeof value !== "object") return false;
  // Each entry: an array or object, and how many arrays and objects hold it.
  const open: Array<[JsonValue, number]> = [[value, 0]];
  for (let next = open.pop(); next !== undefined; next = open.pop()) {
    const [v, around] = next;
    if (around + 1 > max) return true;
    // Only arrays and objects are queued: a large flat result costs no entry per element.
    for (const child of Array.isArray(v) ? v : Object.values(v as object)) {
      if (child !== null && typeof child === "object") open.push([child as JsonValue, around + 1]);
    }
  }
  return false;
}

export interface Decided {
  status: TaskStatus;
  result: JsonValue | undefined;
  error: string;
}

/**
 * The contract's rules for how a cold or exec task ended (docs/agent-protocol.md, "Results
 * and failures"), in order: cancelled, timed out, OOM-killed, could not run, a result or error
 * file that is not a regular file, non-zero exit, an error file, then the result (the result
 * file, else the last line of stdout if it is JSON; either fails the task when it nests deeper
 * than maxResultDepth).
 */
export function decideOutcome(end: ProcessEnd): Decided {
  const failed = (status: TaskStatus, error: string): Decided => ({
    status,
    result: undefined,
    error,
  });
  const agentError = end.mailbox.error?.trim();
  if (end.cancelReason !== undefined) {
    return failed("cancelled", `cancelled${end.cancelReason ? `: ${end.cancelReason}` : ""}`);
  }
  if (end.timedOut) return failed("timed_out", `timed out after ${formatMs(end.timeoutMs)}`);
  if (end.oomKilled) {
    return failed(
      "oom_killed",
      `killed for passing its memory limit of ${formatBytes(end.memoryBytes)}`,
    );
  }
  if (end.runError !== undefined) return failed("failed", end.runError);
  if (end.mailbox.refused !== undefined) return failed("failed", end.mailbox.refused);
  if (end.exitCode !== undefined && end.exitCode !== 0) {
    const why = agentError || lastLine(end.stderr) || lastLine(end.stdout);
    return failed("failed", `exited with code ${end.exitCode}${why ? `: ${why}` : ""}`);
  }
  if (agentError) return failed("failed", agentError);
  if (end.mailbox.resultTooLarge) {
    return failed(
      "failed",
      "the result file is larger than 4 MiB; put large results in the workflow state",
    );
  }
  const succeeded = (result: JsonValue): Decided =>
    nestsDeeperThan(result, maxResultDepth)
      ? failed("failed", resultTooDeep)
      : { status: "succeeded", result, error: "" };
  if (end.mailbox.result !== undefined && end.mailbox.result.trim() !== "") {
    let result: JsonValue;
    try {
      result = JSON.parse(end.mailbox.result) as JsonValue;
    } catch {
      return failed("failed", `the result file is not JSON: ${excerpt(end.mailbox.result)}`);
    }
    return succeeded(result);
  }
  const line = lastLine(end.stdout, Infinity);
  if (line !== "") {
    let result: JsonValue;
    try {
      result = JSON.parse(line) as JsonValue;
    } catch {
      return { status: "succeeded", result: undefined, error: "" }; // plain text: no result
    }
    return succeeded(result);
  }
  return { status: "succeeded", result: undefined, error: "" };
}

/** The last non-empty line of some output, trimmed and capped at `max` characters. */
export function lastLine(output: Buffer, max = 2000): string {
  const text = output.toString("utf8").trimEnd();
  const line = text.slice(text.lastIndexOf("\n") + 1).trim();
  return line.length > max ? line.slice(0, max) + "…" : line;
}

export function excerpt(text: string, max = 200): string {
  const t = text.trim();
  return JSON.stringify(t.length > max ? t.slice(0, max) + "…" : t);
}

export function formatMs(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

export function formatBytes(n: number): string {
  const MiB = 1024 * 1024;
  return n % MiB === 0 ? `${n / MiB} MiB` : `${n} bytes`;
}
