import type { JsonValue } from "@bufbuild/protobuf";
import { maxJsonDepth, nestsDeeperThan } from "../../lib/json-value.js";
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
 * Most arrays and objects a result may nest inside one another: the limit of every JSON value
 * (lib/json-value.ts, maxJsonDepth, says why). A result deeper than that fails its own task
 * rather than every response that would carry it.
 */
export const maxResultDepth = maxJsonDepth;

export const resultTooDeep =
  `the result nests deeper than ${maxResultDepth} levels of arrays and objects; ` +
  "return a flatter result (or pass the deep part as a JSON string)";

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
