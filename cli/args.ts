import { create } from "@bufbuild/protobuf";
import { DurationSchema, type Duration } from "@bufbuild/protobuf/wkt";
import { CliError, exit } from "./client.js";

const units: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 };

/** Seconds of `500ms`, `90s`, `30m`, `2h`, `1d`, `1h30m` or a bare number of seconds; else undefined. */
export function durationSeconds(text: string): number | undefined {
  const t = text.trim();
  if (/^\d+(?:\.\d+)?$/.test(t)) return Number(t);
  if (!/^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+$/.test(t)) return undefined;
  let seconds = 0;
  for (const m of t.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g)) {
    seconds += Number(m[1]) * (units[m[2] as string] as number);
  }
  return Number(seconds.toFixed(9));
}

/** A command-line duration as a protobuf Duration; bad input is a one-line error (exit 2). */
export function parseDuration(text: string, option: string): Duration {
  const seconds = durationSeconds(text);
  if (seconds === undefined) {
    throw new CliError(
      `${option}: "${text}" is not a duration (use e.g. 90s, 30m, 2h, 1h30m, 500ms, or seconds)`,
      exit.badInput,
    );
  }
  const whole = Math.floor(seconds);
  return create(DurationSchema, {
    seconds: BigInt(whole),
    nanos: Math.round((seconds - whole) * 1e9),
  });
}

/** A whole number of at least `min`; bad input is a one-line error (exit 2). */
export function parseCount(text: string, option: string, min = 0): number {
  const n = Number(text);
  if (!/^\s*\d+\s*$/.test(text) || !Number.isSafeInteger(n) || n < min) {
    throw new CliError(
      `${option}: "${text}" is not a whole number (at least ${min})`,
      exit.badInput,
    );
  }
  return n;
}

/** A number (integer or fractional, may be negative); bad input is a one-line error (exit 2). */
export function parseNumber(text: string, what: string): number {
  const n = Number(text);
  if (text.trim() === "" || !Number.isFinite(n)) {
    throw new CliError(`${what}: "${text}" is not a number`, exit.badInput);
  }
  return n;
}
