import { describe, expect, it } from "vitest";
import { z } from "zod";
import { commonConfigSchema, ConfigError, env, loadConfig } from "../../lib/config.js";
import { stateConfigSchema } from "../../services/state/config.js";

/** Runs loadConfig and returns the ConfigError it throws; fails the test when it does not throw. */
function configError(schema: z.ZodObject, vars: Record<string, string | undefined>): ConfigError {
  try {
    loadConfig(schema, vars);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error("expected loadConfig to throw a ConfigError");
}

describe("loadConfig", () => {
  describe("with an empty environment", () => {
    it("applies every default of the common schema and leaves the optional URLs unset", () => {
      expect(loadConfig(commonConfigSchema, {})).toEqual({
        HOST: "0.0.0.0",
        LOG_LEVEL: "info",
        SHUTDOWN_TIMEOUT_MS: 10_000,
      });
    });

    it("applies the defaults of a service schema extending the common one", () => {
      const config = loadConfig(stateConfigSchema, {});
      expect(config).toEqual({
        HOST: "0.0.0.0",
        LOG_LEVEL: "info",
        SHUTDOWN_TIMEOUT_MS: 10_000,
        PORT: 7073,
        STATE_MAX_WORKFLOW_BYTES: 10 * 1024 * 1024,
        STATE_MAX_VALUE_BYTES: 1024 * 1024,
        STATE_EVENT_MAX_VALUE_BYTES: 64 * 1024,
        STATE_WATCH_BUFFER: 10_000,
        STATE_REDIS_PREFIX: "agentainer:state:",
      });
      expect(config.REDIS_URL).toBeUndefined();
      expect(config.NATS_URL).toBeUndefined();
    });
  });

  describe("with empty strings", () => {
    it("treats them as unset, so the defaults apply", () => {
      const config = loadConfig(stateConfigSchema, {
        PORT: "",
        LOG_LEVEL: "",
        REDIS_URL: "",
        NATS_URL: "",
        SHUTDOWN_TIMEOUT_MS: "",
        STATE_REDIS_PREFIX: "",
      });
      expect(config.PORT).toBe(7073);
      expect(config.LOG_LEVEL).toBe("info");
      expect(config.REDIS_URL).toBeUndefined();
      expect(config.NATS_URL).toBeUndefined();
      expect(config.SHUTDOWN_TIMEOUT_MS).toBe(10_000);
      expect(config.STATE_REDIS_PREFIX).toBe("agentainer:state:");
    });

    it("treats undefined entries as unset too", () => {
      expect(loadConfig(stateConfigSchema, { PORT: undefined }).PORT).toBe(7073);
    });
  });

  describe("with valid values", () => {
    it("coerces numeric variables from their text", () => {
      const config = loadConfig(stateConfigSchema, {
        PORT: "8080",
        SHUTDOWN_TIMEOUT_MS: "2500",
        STATE_WATCH_BUFFER: "7",
      });
      expect(config.PORT).toBe(8080);
      expect(config.SHUTDOWN_TIMEOUT_MS).toBe(2500);
      expect(config.STATE_WATCH_BUFFER).toBe(7);
    });

    it("accepts port 0 (any free port) and 65535", () => {
      expect(loadConfig(stateConfigSchema, { PORT: "0" }).PORT).toBe(0);
      expect(loadConfig(stateConfigSchema, { PORT: "65535" }).PORT).toBe(65535);
    });

    it("accepts every URL scheme a variable allows and keeps the URL as written", () => {
      const config = loadConfig(commonConfigSchema, {
        REDIS_URL: "rediss://user:pw@redis.internal:6380/2",
        NATS_URL: "tls://nats.internal:4222",
      });
      expect(config.REDIS_URL).toBe("rediss://user:pw@redis.internal:6380/2");
      expect(config.NATS_URL).toBe("tls://nats.internal:4222");
      expect(
        loadConfig(commonConfigSchema, { REDIS_URL: "redis://127.0.0.1:6379" }).REDIS_URL,
      ).toBe("redis://127.0.0.1:6379");
      expect(loadConfig(commonConfigSchema, { NATS_URL: "nats://127.0.0.1:4222" }).NATS_URL).toBe(
        "nats://127.0.0.1:4222",
      );
    });

    it("accepts every log level", () => {
      for (const level of ["fatal", "error", "warn", "info", "debug", "trace", "silent"]) {
        expect(loadConfig(commonConfigSchema, { LOG_LEVEL: level }).LOG_LEVEL).toBe(level);
      }
    });

    it("reads only the variables of the schema and ignores the rest of the environment", () => {
      const config = loadConfig(commonConfigSchema, { HOST: "127.0.0.1", PATH: "/usr/bin" });
      expect(config.HOST).toBe("127.0.0.1");
      expect(config).not.toHaveProperty("PATH");
    });
  });

  describe("with invalid values", () => {
    it("names every bad variable in one ConfigError, each with the offending value", () => {
      const err = configError(stateConfigSchema, {
        PORT: "http",
        REDIS_URL: "http://localhost:6379",
        STATE_WATCH_BUFFER: "-5",
        LOG_LEVEL: "loud",
        NATS_URL: "not a url",
        SHUTDOWN_TIMEOUT_MS: "1.5",
      });
      expect(err.problems).toHaveLength(6);
      expect([...err.problems].sort()).toEqual(
        [
          'PORT: must be a port number, 0 to 65535 (got "http")',
          'REDIS_URL: must be a URL starting with redis:// or rediss:// (got "http://localhost:6379")',
          'STATE_WATCH_BUFFER: must be a whole number greater than 0 (got "-5")',
          'LOG_LEVEL: must be one of fatal, error, warn, info, debug, trace, silent (got "loud")',
          'NATS_URL: must be a URL starting with nats:// or tls:// (got "not a url")',
          'SHUTDOWN_TIMEOUT_MS: must be a whole number greater than 0 (got "1.5")',
        ].sort(),
      );
      for (const problem of err.problems) expect(err.message).toContain(problem);
      expect(err.message).toMatch(/^invalid configuration \(6 problems\):/);
      expect(err.name).toBe("ConfigError");
    });

    it("says '1 problem' in the singular", () => {
      const err = configError(stateConfigSchema, { PORT: "70000" });
      expect(err.problems).toEqual(['PORT: must be a port number, 0 to 65535 (got "70000")']);
      expect(err.message).toBe(
        'invalid configuration (1 problem):\n  - PORT: must be a port number, 0 to 65535 (got "70000")',
      );
    });

    it("rejects a negative port", () => {
      expect(configError(stateConfigSchema, { PORT: "-1" }).problems).toEqual([
        'PORT: must be a port number, 0 to 65535 (got "-1")',
      ]);
    });

    it("rejects zero where a positive integer is required", () => {
      expect(configError(stateConfigSchema, { STATE_MAX_VALUE_BYTES: "0" }).problems).toEqual([
        'STATE_MAX_VALUE_BYTES: must be a whole number greater than 0 (got "0")',
      ]);
    });

    it("rejects text where a positive integer is required", () => {
      expect(configError(stateConfigSchema, { STATE_MAX_VALUE_BYTES: "1MB" }).problems).toEqual([
        'STATE_MAX_VALUE_BYTES: must be a whole number greater than 0 (got "1MB")',
      ]);
    });

    it("rejects a REDIS_URL with a NATS scheme and a NATS_URL with a Redis scheme", () => {
      const err = configError(commonConfigSchema, {
        REDIS_URL: "nats://127.0.0.1:4222",
        NATS_URL: "redis://127.0.0.1:6379",
      });
      expect(err.problems).toHaveLength(2);
      expect(err.message).toContain("REDIS_URL: must be a URL starting with redis:// or rediss://");
      expect(err.message).toContain('(got "nats://127.0.0.1:4222")');
      expect(err.message).toContain("NATS_URL: must be a URL starting with nats:// or tls://");
      expect(err.message).toContain('(got "redis://127.0.0.1:6379")');
    });
  });

  describe("with a schema built from the env helpers", () => {
    const schema = commonConfigSchema.extend({
      WORKER_PORT: env.port(9000),
      WORKER_CONCURRENCY: env.positiveInt(4),
      WORKER_NAME: z.string().default("worker"),
    });

    it("returns typed values with the extension's defaults", () => {
      const config = loadConfig(schema, { WORKER_CONCURRENCY: "16" });
      const port: number = config.WORKER_PORT;
      const concurrency: number = config.WORKER_CONCURRENCY;
      expect(port).toBe(9000);
      expect(concurrency).toBe(16);
      expect(config.WORKER_NAME).toBe("worker");
      expect(config.LOG_LEVEL).toBe("info");
    });

    it("reports bad common and extension variables together", () => {
      const err = configError(schema, {
        WORKER_PORT: "99999",
        WORKER_CONCURRENCY: "-2",
        REDIS_URL: "localhost:6379",
      });
      expect(err.problems.map((p) => p.split(":")[0]).sort()).toEqual([
        "REDIS_URL",
        "WORKER_CONCURRENCY",
        "WORKER_PORT",
      ]);
      expect(err.message).toContain('(got "99999")');
      expect(err.message).toContain('(got "-2")');
      expect(err.message).toContain('(got "localhost:6379")');
    });
  });
});
