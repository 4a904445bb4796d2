/** What one running step asks of the workflow's task slots. */
export interface StepDemand {
  stepId: string;
  /** Tasks ready to launch (not counting those waiting for a retry delay). */
  waiting: number;
  /** Tasks launched and not yet ended. */
  running: number;
  /** The step's own cap (max_workers); 0 means none. */
  maxWorkers: number;
  /** The pool's max_size for a POOLED step; undefined for COLD. */
  poolSize?: number;
}

/**
 * Shares the workflow's free slots (max_parallel minus running tasks) among its running steps,
 * round-robin one slot at a time starting after `cursor` (the index of the step served last), so
 * no step starves another; a step never passes its max_workers or its pool's max_size. Returns
 * the step id of each slot handed out, in order, and the cursor for the next round.
 */
export function planDispatch(
  demands: readonly StepDemand[],
  maxParallel: number,
  cursor: number,
): { picks: string[]; cursor: number } {
  const running = demands.reduce((n, d) => n + d.running, 0);
  let free = Math.max(0, maxParallel - running);
  const given = new Array<number>(demands.length).fill(0);
  const picks: string[] = [];
  let at = cursor;
  let idleRounds = 0;
  while (free > 0 && demands.length > 0 && idleRounds < demands.length) {
    at = (at + 1) % demands.length;
    const d = demands[at] as StepDemand;
    const g = given[at] as number;
    const cap = Math.min(d.maxWorkers > 0 ? d.maxWorkers : Infinity, d.poolSize ?? Infinity);
    if (g < d.waiting && d.running + g < cap) {
      given[at] = g + 1;
      picks.push(d.stepId);
      free--;
      idleRounds = 0;
    } else {
      idleRounds++;
    }
  }
  return {
    picks,
    cursor: picks.length > 0 ? lastIndexOf(demands, picks[picks.length - 1] as string) : cursor,
  };
}

function lastIndexOf(demands: readonly StepDemand[], stepId: string): number {
  return demands.findIndex((d) => d.stepId === stepId);
}
