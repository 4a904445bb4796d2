import { Redis } from "ioredis";
import { connect as netConnect } from "node:net";
import { connect, StringCodec } from "nats";
import { describe, expect, inject, it } from "vitest";
import { startRedisServer } from "./servers.js";

const codec = StringCodec();

describe("the test servers", () => {
  it("provides a redis that answers PING and keeps what it is given", async () => {
    const redis = new Redis(inject("redisUrl"), { lazyConnect: true, maxRetriesPerRequest: 1 });
    await redis.connect();
    try {
      expect(await redis.ping()).toBe("PONG");
      const key = `test:servers:${process.pid}:${Date.now()}`;
      expect(await redis.incrby(key, 41)).toBe(41);
      expect(await redis.incr(key)).toBe(42);
      await redis.del(key);
    } finally {
      redis.disconnect();
    }
  });

  it("provides a nats that routes a request to a subscriber and has JetStream on", async () => {
    const nc = await connect({ servers: inject("natsUrl"), timeout: 5_000 });
    try {
      const subject = `test.servers.${process.pid}.${Date.now()}`;
      const sub = nc.subscribe(subject, {
        callback: (error, msg) => {
          if (error === null) msg.respond(codec.encode(`echo:${codec.decode(msg.data)}`));
        },
      });
      const reply = await nc.request(subject, codec.encode("hello"), { timeout: 5_000 });
      expect(codec.decode(reply.data)).toBe("echo:hello");
      sub.unsubscribe();

      const jsm = await nc.jetstreamManager();
      const account = await jsm.getAccountInfo();
      expect(account.limits).toBeDefined();
    } finally {
      await nc.close();
    }
  });

  describe("when a test stops and restarts its own redis on the same port", () => {
    it("refuses connections while stopped and answers again after the restart", async () => {
      const first = await startRedisServer();
      const port = first.port;
      await first.stop();
      await expect(tcpConnect(port)).rejects.toMatchObject({ code: "ECONNREFUSED" });

      const second = await startRedisServer({ port });
      try {
        expect(second.url).toBe(first.url);
        const redis = new Redis(second.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
        await redis.connect();
        expect(await redis.ping()).toBe("PONG");
        redis.disconnect();
      } finally {
        await second.stop();
      }
    });
  });
});

function tcpConnect(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve();
    });
    socket.once("error", reject);
  });
}
