import { hostname } from "node:os";
import { randomBytes } from "node:crypto";
import { z } from "zod";
import { commonConfigSchema, env } from "../../lib/config.js";
import { defaultRunKeyPrefix } from "./redis-run-store.js";

/** The Workflow service's environment variables; names are the env names, defaults in the schema. */
export const workflowConfigSchema = commonConfigSchema.extend({
  /** Port of the gRPC/Connect server. */
  PORT: env.port(7071),
  /** The Executor that runs the tasks. */
  EXECUTOR_URL: env.url(["http:", "https:"]),
  /** The Pool service that leases warm agents. */
  POOL_URL: env.url(["http:", "https:"]),
  /** The State service that keeps each workflow's state. */
  STATE_URL: env.url(["http:", "https:"]),
  /** How long a run's claim lasts unrenewed: a crashed instance's runs resume after it (ms). */
  WORKFLOW_CLAIM_TTL_MS: env.positiveInt(15_000),
  /** Lease time to live asked of the Pool; leases are renewed at a third of it (ms). */
  WORKFLOW_LEASE_TTL_MS: env.positiveInt(60_000),
  /** How long a pooled task waits for an agent before its attempt fails (ms). */
  WORKFLOW_ACQUIRE_WAIT_MS: env.positiveInt(300_000),
  /** Most consecutive tasks of a step one leased agent serves before it goes back to its pool. */
  WORKFLOW_LEASE_MAX_TASKS: env.positiveInt(1000),
  /** Longest a step keeps one lease across tasks before giving the agent back (ms). */
  WORKFLOW_LEASE_MAX_AGE_MS: env.positiveInt(30_000),
  /** Progress events of a run are coalesced to one per this interval (ms). */
  WORKFLOW_PROGRESS_INTERVAL_MS: env.positiveInt(250),
  /** Most items of a MAP step. */
  WORKFLOW_MAX_MAP_ITEMS: env.positiveInt(1_000_000),
  /**
   * Largest step output assembled whole (JSON bytes): a wider MAP or PARALLEL step's output stays
   * in its jobs (read them with ListJobs), and a REDUCE over larger results fails.
   */
  WORKFLOW_MAX_OUTPUT_BYTES: env.positiveInt(4 * 1024 * 1024),
  /** Largest inline pool (the Pool service's POOL_MAX_SIZE_LIMIT). */
  WORKFLOW_POOL_MAX_SIZE_LIMIT: env.positiveInt(256),
  /** Prefix of every Redis key of the service. */
  WORKFLOW_REDIS_PREFIX: z.string().default(defaultRunKeyPrefix),
  /** This instance's name in run claims; unique per process (hostname, pid and random). */
  WORKFLOW_INSTANCE_ID: z
    .string()
    .min(1)
    .default(() => `${hostname()}-${process.pid}-${randomBytes(3).toString("hex")}`),
});

export type WorkflowConfig = z.infer<typeof workflowConfigSchema>;
