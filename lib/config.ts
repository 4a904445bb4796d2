import { z } from "zod";

/** Thrown at start when the environment is invalid; names every bad variable at once. */
export class ConfigError extends Error {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(
      `invalid configuration (${problems.length} problem${problems.length === 1 ? "" : "s"}):\n` +
        problems.map((p) => `  - ${p}`).join("\n"),
    );
    this.name = "ConfigError";
    this.problems = problems;
  }
}

/**
 * Parses environment variables with a zod object schema whose keys are the variable names.
 * Empty strings count as unset, so `FOO=` falls back to the default.
 */
export function loadConfig<S extends z.ZodObject>(
  schema: S,
  env: Readonly<Record<string, string | undefined>>,
): z.infer<S> {
  const input: Record<string, string> = {};
  for (const key of Object.keys(schema.shape)) {
    const value = env[key];
    if (value !== undefined && value.trim() !== "") input[key] = value.trim();
  }
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    const name = issue.path.join(".") || "(environment)";
    const got = typeof issue.path[0] === "string" ? input[issue.path[0]] : undefined;
    return `${name}: ${issue.message}${got === undefined ? "" : ` (got "${got}")`}`;
  });
  throw new ConfigError(problems);
}

/** Digits only (no signs, hex, exponents or fractions), as a number. */
function decimal(message: string) {
  return z
    .string()
    .regex(/^\d+$/, message)
    .transform((s) => Number(s));
}

/** Reusable schema pieces for env vars. */
export const env = {
  port: (fallback: number) =>
    decimal("must be a port number, 0 to 65535")
      .pipe(z.number().max(65535, "must be a port number, 0 to 65535"))
      .default(fallback),
  positiveInt: (fallback: number) =>
    decimal("must be a whole number greater than 0")
      .pipe(z.number().positive("must be a whole number greater than 0"))
      .default(fallback),
  logLevel: () =>
    z
      .enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"], {
        message: "must be one of fatal, error, warn, info, debug, trace, silent",
      })
      .default("info"),
  url: (protocols: readonly string[]) =>
    z
      .string()
      .refine(
        (value) => {
          try {
            return protocols.includes(new URL(value).protocol);
          } catch {
            return false;
          }
        },
        { message: `must be a URL starting with ${protocols.map((p) => p + "//").join(" or ")}` },
      )
      .optional(),
};

/** The variables every service reads. */
export const commonConfigSchema = z.object({
  HOST: z.string().default("0.0.0.0"),
  LOG_LEVEL: env.logLevel(),
  REDIS_URL: env.url(["redis:", "rediss:"]),
  NATS_URL: env.url(["nats:", "tls:"]),
  SHUTDOWN_TIMEOUT_MS: env.positiveInt(10_000),
  /** When set, every call but gRPC health needs `authorization: Bearer <token>`, and the service
   * sends it to the services it calls: give the whole mesh the same value. */
  AGENTAINER_API_TOKEN: z
    .string()
    .regex(/^[\x21-\x7e]{16,512}$/, "must be 16 to 512 printable ASCII characters without spaces")
    .optional(),
});
