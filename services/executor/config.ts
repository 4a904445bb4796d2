import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { z } from "zod";
import { commonConfigSchema, env } from "../../lib/config.js";

const MiB = 1024 * 1024;

/** The Executor's environment variables; names are the env names, defaults in the schema. */
export const executorConfigSchema = commonConfigSchema.extend({
  /** Port of the gRPC/Connect server. */
  PORT: env.port(7074),
  /** docker: the Docker engine (fails at start if it does not answer); local: child processes,
   * no isolation; auto: Docker when an engine answers, else local (said loudly). */
  EXECUTOR_RUNTIME: z
    .enum(["auto", "docker", "local"], { message: "must be auto, docker or local" })
    .default("auto"),
  /** Docker engine socket. */
  DOCKER_SOCKET: z.string().default("/var/run/docker.sock"),
  /** Name of this Executor node, on every container's labels and in events. */
  EXECUTOR_NODE_ID: z
    .string()
    .regex(/^[A-Za-z0-9_.-]{1,64}$/, "must be 1 to 64 characters of A-Z a-z 0-9 _ . -")
    .default(
      hostname()
        .replace(/[^A-Za-z0-9_.-]/g, "-")
        .slice(0, 64) || "executor",
    ),
  /** Where task files (input, result, state pipes) live; mounted into containers at /agentainer.
   * When the Executor itself runs in a container, this must be the same path on the host. */
  EXECUTOR_WORK_DIR: z.string().default(join(tmpdir(), "agentainer-executor")),
  /** Base URL of the State service that agents' state operations are relayed to. Unset: agents
   * get UNAVAILABLE for state operations (the one-process mode passes a transport instead). */
  STATE_URL: env.url(["http:", "https:"]),
  EXECUTOR_DEFAULT_CPU_MILLIS: env.positiveInt(1000),
  EXECUTOR_DEFAULT_MEMORY_BYTES: env.positiveInt(512 * MiB),
  EXECUTOR_DEFAULT_PIDS: env.positiveInt(512),
  /** Default task timeout in milliseconds (1 h). */
  EXECUTOR_DEFAULT_TASK_TIMEOUT_MS: env.positiveInt(60 * 60 * 1000),
  /** Largest task input, in bytes of canonical JSON. */
  EXECUTOR_MAX_INPUT_BYTES: env.positiveInt(4 * MiB),
  /** Output kept per task and stream (the tail). */
  EXECUTOR_MAX_OUTPUT_BYTES: env.positiveInt(1 * MiB),
  /** How long ended tasks stay queryable, in milliseconds (24 h). */
  EXECUTOR_TASK_RETENTION_MS: env.positiveInt(24 * 60 * 60 * 1000),
  /** Most ended tasks kept; past it the oldest are forgotten before their time. */
  EXECUTOR_TASK_RETENTION_MAX: env.positiveInt(100_000),
  /** Most bytes of output the ended tasks keep in all; past it the oldest are forgotten. */
  EXECUTOR_TASK_RETENTION_BYTES: env.positiveInt(256 * MiB),
  /** Allow NETWORK_MODE_HOST. */
  EXECUTOR_ALLOW_HOST_NETWORK: z
    .enum(["true", "false"], { message: "must be true or false" })
    .default("false")
    .transform((v) => v === "true"),
});

export type ExecutorConfig = z.infer<typeof executorConfigSchema>;
