import { createHash } from "node:crypto";
import type { StepDef } from "./definition.js";
import type { InlinePool } from "./ports.js";

/**
 * The id of a step's inline pool: `<workflow>--<step>`, or, when that passes the Pool service's
 * 128 characters, `wfpool-` and a digest of both. Deterministic, so a restarted service finds
 * the pool it created.
 */
export function inlinePoolId(workflowId: string, stepId: string): string {
  const plain = `${workflowId}--${stepId}`;
  if (plain.length <= 128) return plain;
  return `wfpool-${createHash("sha256").update(`${workflowId}\n${stepId}`).digest("hex").slice(0, 40)}`;
}

/** The pool a step with an inline pool_policy runs on; undefined for other steps. */
export function inlinePoolOf(workflowId: string, s: StepDef): InlinePool | undefined {
  if (s.pool.kind !== "inline") return undefined;
  const stream = s.pool.agentMode === "stream";
  return {
    poolId: inlinePoolId(workflowId, s.id),
    image: s.image,
    command: stream ? s.command : s.pool.agentCommand,
    args: stream ? s.args : [],
    limits: s.limits,
    network: s.network,
    mode: s.pool.agentMode,
    policy: s.pool.policy,
  };
}
