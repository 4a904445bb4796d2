// vitest globalSetup: one real redis-server and one real nats-server for the whole run, on free
// loopback ports, provided to tests as `inject("redisUrl")` / `inject("natsUrl")`. REDIS_URL and
// NATS_URL, when set, are used instead. A missing binary fails the run: tests are never skipped.
import type { TestProject } from "vitest/node";
import { startNatsServer, startRedisServer, type RunningServer } from "./support/servers.js";

export default async function setup({ provide }: TestProject): Promise<() => Promise<void>> {
  const started: RunningServer[] = [];
  const stopAll = async (): Promise<void> => {
    await Promise.all(started.map((server) => server.stop()));
  };
  try {
    const redisUrl =
      nonEmpty(process.env.REDIS_URL) ?? (await keep(started, startRedisServer())).url;
    const natsUrl = nonEmpty(process.env.NATS_URL) ?? (await keep(started, startNatsServer())).url;
    provide("redisUrl", redisUrl);
    provide("natsUrl", natsUrl);
  } catch (error) {
    await stopAll();
    throw error;
  }
  return stopAll;
}

async function keep(
  list: RunningServer[],
  starting: Promise<RunningServer>,
): Promise<RunningServer> {
  const server = await starting;
  list.push(server);
  return server;
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === "" ? undefined : value;
}
