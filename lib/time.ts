import { create } from "@bufbuild/protobuf";
import {
  DurationSchema,
  TimestampSchema,
  type Duration,
  type Timestamp,
} from "@bufbuild/protobuf/wkt";
import { InvalidArgumentError } from "./errors.js";

/** google.protobuf.Duration to milliseconds; unset is 0. Rejects negative or malformed values. */
export function durationToMs(d: Duration | undefined, field: string): number {
  if (d === undefined) return 0;
  const ms = Number(d.seconds) * 1000 + d.nanos / 1e6;
  if (
    !Number.isFinite(ms) ||
    ms < 0 ||
    (d.seconds > 0n && d.nanos < 0) ||
    (d.seconds < 0n && d.nanos > 0)
  ) {
    throw new InvalidArgumentError(`${field} must be a non-negative duration`, { field });
  }
  return ms;
}

export function msToDuration(ms: number): Duration {
  const seconds = Math.floor(ms / 1000);
  return create(DurationSchema, {
    seconds: BigInt(seconds),
    nanos: Math.round((ms - seconds * 1000) * 1e6),
  });
}

export function msToTimestamp(ms: number): Timestamp {
  const seconds = Math.floor(ms / 1000);
  return create(TimestampSchema, {
    seconds: BigInt(seconds),
    nanos: Math.round((ms - seconds * 1000) * 1e6),
  });
}

export function timestampToMs(t: Timestamp): number {
  return Number(t.seconds) * 1000 + Math.floor(t.nanos / 1e6);
}
