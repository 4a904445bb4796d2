// Helpers for benchmarks: latency percentiles, a closed-loop load runner, process CPU time.
import { readFileSync } from "node:fs";

export interface Summary {
  /** Successful calls in the measured window. */
  ok: number;
  errors: number;
  seconds: number;
  opsPerSec: number;
  /** Latencies in milliseconds. */
  p50: number;
  p99: number;
  max: number;
  /** CPU time of this whole process (user + system) per successful call, in microseconds. */
  cpuUsPerOp: number;
}

/** Nearest-rank percentile (0 < p ≤ 100) of an ascending array; NaN when empty. */
export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] ?? NaN;
}

export function summarize(
  latenciesMs: readonly number[],
  errors: number,
  seconds: number,
  cpuUs = NaN,
): Summary {
  const sorted = Float64Array.from(latenciesMs).sort();
  return {
    ok: sorted.length,
    errors,
    seconds,
    opsPerSec: seconds > 0 ? sorted.length / seconds : 0,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    max: sorted.length === 0 ? NaN : (sorted[sorted.length - 1] ?? NaN),
    cpuUsPerOp: sorted.length === 0 ? NaN : cpuUs / sorted.length,
  };
}

export interface ClosedLoopOptions {
  /** Concurrent loops; each issues its next call only after the previous one settled. */
  clients: number;
  durationMs: number;
  /** One call by loop `client`; a rejection counts as an error (the loop goes on). */
  call: (client: number) => Promise<unknown>;
}

/**
 * Runs `clients` closed loops until the deadline and measures each call with hrtime. Calls
 * still in flight at the deadline finish and count; the window ends when the last one settles.
 */
export async function closedLoop(options: ClosedLoopOptions): Promise<Summary> {
  const latencies: number[] = [];
  let errors = 0;
  let firstError: unknown;
  const cpu = process.cpuUsage();
  const start = process.hrtime.bigint();
  const deadline = start + BigInt(Math.round(options.durationMs * 1e6));
  const loop = async (client: number): Promise<void> => {
    for (let t0 = process.hrtime.bigint(); t0 < deadline; t0 = process.hrtime.bigint()) {
      try {
        await options.call(client);
        latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
      } catch (err) {
        errors++;
        firstError ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: options.clients }, (_, i) => loop(i)));
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const used = process.cpuUsage(cpu);
  if (firstError !== undefined)
    console.error(`  ${errors} failed calls; first: ${String(firstError)}`);
  return summarize(latencies, errors, seconds, used.user + used.system);
}

/** utime + stime of a process in microseconds (Linux /proc; NaN elsewhere). */
export function processCpuUs(pid: number | undefined): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
    return ((Number(fields[11]) + Number(fields[12])) * 1e6) / 100; // clock ticks (USER_HZ = 100)
  } catch {
    return NaN;
  }
}
