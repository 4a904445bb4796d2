import type { ProcessEnd } from "../../services/executor/outcome.js";

/** How a cold or exec task ended, for decideOutcome: exit 0 and nothing else, unless `over`. */
export const processEnd = (over: Partial<ProcessEnd> = {}): ProcessEnd => ({
  exitCode: 0,
  oomKilled: false,
  timedOut: false,
  cancelReason: undefined,
  runError: undefined,
  mailbox: { result: undefined, resultTooLarge: false, error: undefined },
  stdout: Buffer.alloc(0),
  stderr: Buffer.alloc(0),
  memoryBytes: 64 * 1024 * 1024,
  timeoutMs: 30_000,
  ...over,
});

/** A stream protocol "task" message with id `id`. */
export const taskMessage = (id: string) => ({
  type: "task" as const,
  task_id: id,
  workflow_id: "wf",
  step_id: "s",
  attempt: 1,
  index: 0,
  env: {},
  input: null,
});
