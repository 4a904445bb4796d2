import { Redis } from "ioredis";
import type { EventBus } from "./events/event-bus.js";
import { InProcessEventBus } from "./events/in-process-event-bus.js";
import { NatsEventBus } from "./events/nats-event-bus.js";
import type { Logger } from "./logger.js";

/**
 * Connects to Redis and waits until it answers, so a wrong REDIS_URL fails at start with the
 * address in the message rather than on the first request.
 */
export async function connectRedis(url: string, logger: Logger): Promise<Redis> {
  const redis = new Redis(url, {
    lazyConnect: true,
    maxRetriesPerRequest: 3,
    enableAutoPipelining: true,
  });
  redis.on("error", (err: Error) => logger.warn({ err: err.message }, "redis connection error"));
  try {
    await redis.connect();
    await redis.ping();
  } catch (err) {
    redis.disconnect();
    throw new Error(
      `cannot reach Redis at ${redactUrl(url)}: ${(err as Error).message}; start redis-server or fix REDIS_URL`,
      {
        cause: err,
      },
    );
  }
  logger.info({ redis: redactUrl(url) }, "connected to Redis");
  return redis;
}

/** NATS when a URL is given, else the in-process bus (one-process mode). */
export async function connectEventBus(
  url: string | undefined,
  logger: Logger,
  name: string,
): Promise<EventBus> {
  if (url === undefined) {
    logger.info("NATS_URL not set: events stay inside this process");
    return new InProcessEventBus();
  }
  try {
    return await NatsEventBus.connect(url, logger, name);
  } catch (err) {
    throw new Error(
      `cannot reach NATS at ${redactUrl(url)}: ${(err as Error).message}; start nats-server or fix NATS_URL`,
      {
        cause: err,
      },
    );
  }
}

/** A URL with any user and password replaced by `***`, for logs and error messages. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/[^@/]*@/, "//***@");
}
