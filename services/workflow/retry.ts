import { InvalidArgumentError } from "../../lib/errors.js";
import { durationToMs } from "../../lib/time.js";
import { Backoff, type RetryPolicy } from "../../gen/agentainer/workflow/v1/definition_pb.js";

/** A validated retry policy (see RetryPolicy in definition.proto). */
export interface Retry {
  maxAttempts: number;
  backoff: "exponential" | "linear" | "constant";
  initialDelayMs: number;
  maxDelayMs: number;
  jitter: number;
}

export const noRetry: Retry = {
  maxAttempts: 1,
  backoff: "exponential",
  initialDelayMs: 1000,
  maxDelayMs: 300_000,
  jitter: 0,
};

/** Checks a RetryPolicy and fills its defaults; errors name `<field>.<name>`. */
export function retryFromProto(p: RetryPolicy | undefined, field: string): Retry {
  if (p === undefined) return noRetry;
  const maxAttempts = p.maxAttempts === 0 ? 1 : p.maxAttempts;
  if (maxAttempts > 100) {
    throw new InvalidArgumentError(`${field}.max_attempts is ${maxAttempts}; at most 100`, {
      field: `${field}.max_attempts`,
    });
  }
  const backoff =
    p.backoff === Backoff.UNSPECIFIED || p.backoff === Backoff.EXPONENTIAL
      ? "exponential"
      : p.backoff === Backoff.LINEAR
        ? "linear"
        : p.backoff === Backoff.CONSTANT
          ? "constant"
          : undefined;
  if (backoff === undefined) {
    throw new InvalidArgumentError(
      `${field}.backoff holds an unknown value ${String(p.backoff)}; use EXPONENTIAL, LINEAR or CONSTANT`,
      { field: `${field}.backoff` },
    );
  }
  const initialDelayMs =
    p.initialDelay === undefined ? 1000 : durationToMs(p.initialDelay, `${field}.initial_delay`);
  const maxDelayMs =
    p.maxDelay === undefined ? 300_000 : durationToMs(p.maxDelay, `${field}.max_delay`);
  if (maxDelayMs < initialDelayMs) {
    throw new InvalidArgumentError(
      `${field}.max_delay (${maxDelayMs} ms) is shorter than initial_delay (${initialDelayMs} ms)`,
      { field: `${field}.max_delay` },
    );
  }
  if (!(p.jitter >= 0 && p.jitter <= 1)) {
    throw new InvalidArgumentError(`${field}.jitter is ${p.jitter}; use 0 to 1`, {
      field: `${field}.jitter`,
    });
  }
  return { maxAttempts, backoff, initialDelayMs, maxDelayMs, jitter: p.jitter };
}

/**
 * The delay before attempt `attempt + 1`, after attempt `attempt` (from 1) failed: per the
 * backoff, capped at max_delay, then randomised down by up to `jitter` of itself. `random`
 * is uniform in [0, 1).
 */
export function retryDelayMs(
  r: Retry,
  attempt: number,
  random: () => number = Math.random,
): number {
  const n = Math.max(1, attempt);
  const base =
    r.backoff === "constant"
      ? r.initialDelayMs
      : r.backoff === "linear"
        ? r.initialDelayMs * n
        : r.initialDelayMs * 2 ** Math.min(n - 1, 60);
  const capped = Math.min(base, r.maxDelayMs);
  return Math.round(capped * (1 - r.jitter * random()));
}
