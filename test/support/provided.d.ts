// Values the global setup (test/global-setup.ts) provides to every test file: `inject("redisUrl")`.
import "vitest";

declare module "vitest" {
  export interface ProvidedContext {
    /** `redis://127.0.0.1:<port>` of the run's redis-server, or REDIS_URL when set. */
    redisUrl: string;
    /** `nats://127.0.0.1:<port>` of the run's nats-server (JetStream on), or NATS_URL when set. */
    natsUrl: string;
  }
}
