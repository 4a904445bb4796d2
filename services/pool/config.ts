import { z } from "zod";
import { commonConfigSchema, env } from "../../lib/config.js";
import { defaultPoolKeyPrefix } from "./redis-store.js";

/** The Pool service's environment variables; names are the env names, defaults in the schema. */
export const poolConfigSchema = commonConfigSchema.extend({
  /** Port of the gRPC/Connect server. */
  PORT: env.port(7072),
  /** Base URL of the Executor that creates, checks and destroys the agents. */
  EXECUTOR_URL: env.url(["http:", "https:"]),
  /** Largest max_size a pool may have. */
  POOL_MAX_SIZE_LIMIT: env.positiveInt(256),
  /** How long an Acquire waits for an agent when it does not say (ms). */
  POOL_ACQUIRE_DEFAULT_WAIT_MS: env.positiveInt(60_000),
  /** How often the reconcile loop runs (ms). */
  POOL_RECONCILE_INTERVAL_MS: env.positiveInt(1000),
  /** Prefix of every Redis key of the service. */
  POOL_REDIS_PREFIX: z.string().default(defaultPoolKeyPrefix),
  /** How long the Executor may take to make an agent READY (ms). */
  POOL_AGENT_STARTUP_TIMEOUT_MS: env.positiveInt(30_000),
});

export type PoolConfig = z.infer<typeof poolConfigSchema>;
