import { z } from "zod";
import { commonConfigSchema, env } from "../../lib/config.js";
import { defaultKeyPrefix } from "./keys.js";

/** The State service's environment variables; names are the env names, defaults in the schema. */
export const stateConfigSchema = commonConfigSchema.extend({
  /** Port of the gRPC/Connect server. */
  PORT: env.port(7073),
  /** Default and maximum bytes of one workflow's state (keys plus canonical JSON values). */
  STATE_MAX_WORKFLOW_BYTES: env.positiveInt(10 * 1024 * 1024),
  /** Default and maximum bytes of one value. */
  STATE_MAX_VALUE_BYTES: env.positiveInt(1024 * 1024),
  /** Values larger than this travel in change events as value_omitted. */
  STATE_EVENT_MAX_VALUE_BYTES: env.positiveInt(64 * 1024),
  /** Changes one Watch stream buffers for a slow client before it resynchronises. */
  STATE_WATCH_BUFFER: env.positiveInt(10_000),
  /** Prefix of every Redis key of the service. */
  STATE_REDIS_PREFIX: z.string().default(defaultKeyPrefix),
});

export type StateConfig = z.infer<typeof stateConfigSchema>;
