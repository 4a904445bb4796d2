import { create } from "@bufbuild/protobuf";
import { StructSchema, ValueSchema } from "@bufbuild/protobuf/wkt";
import { describe, expect, inject, it } from "vitest";
import { commonConfigSchema, ConfigError, env, loadConfig } from "../../lib/config.js";
import { InProcessEventBus } from "../../lib/events/in-process-event-bus.js";
import { NatsEventBus } from "../../lib/events/nats-event-bus.js";
import { connectEventBus, connectRedis, redactUrl } from "../../lib/infra.js";
import { canonicalJson, valueToJson } from "../../lib/json-value.js";
import { createLogger } from "../../lib/logger.js";

const silent = createLogger({ name: "test", level: "silent" });

describe("a subscriber that throws", () => {
  it("does not stop other handlers or later messages on the in-process bus", async () => {
    const errors: string[] = [];
    const bus = new InProcessEventBus((err) => errors.push(String(err)));
    const seen: string[] = [];
    bus.subscribe("t.a", () => {
      throw new Error("boom");
    });
    bus.subscribe("t.a", (m) => seen.push(new TextDecoder().decode(m.data)));
    bus.publish("t.a", new TextEncoder().encode("1"));
    bus.publish("t.a", new TextEncoder().encode("2"));
    await bus.flush();
    expect(seen).toEqual(["1", "2"]);
    expect(errors).toEqual(["Error: boom", "Error: boom"]);
  });

  it("does not break the NATS connection", async () => {
    const bus = await NatsEventBus.connect(inject("natsUrl"), silent);
    const subject = `t.${Date.now()}.${Math.random().toString(36).slice(2)}`;
    const seen: string[] = [];
    bus.subscribe(subject, () => {
      throw new Error("boom");
    });
    bus.subscribe(subject, (m) => seen.push(new TextDecoder().decode(m.data)));
    await bus.flush();
    bus.publish(subject, new TextEncoder().encode("1"));
    bus.publish(subject, new TextEncoder().encode("2"));
    await bus.flush();
    await expect.poll(() => seen).toEqual(["1", "2"]);
    await bus.close();
  });
});

describe("connection errors", () => {
  it("never show a password", async () => {
    expect(redactUrl("redis://user:s3cret@host:6379/0")).toBe("redis://***@host:6379/0");
    const redisErr = await connectRedis("redis://:s3cret@127.0.0.1:1", silent).catch(
      (e: Error) => e,
    );
    expect(String(redisErr)).toContain("cannot reach Redis at redis://***@127.0.0.1:1");
    expect(String(redisErr)).not.toContain("s3cret");
    const natsErr = await connectEventBus("nats://u:s3cret@127.0.0.1:1", silent, "t").catch(
      (e: Error) => e,
    );
    expect(String(natsErr)).toContain("nats://***@127.0.0.1:1");
    expect(String(natsErr)).not.toContain("s3cret");
  });
});

describe("a JSON field named __proto__", () => {
  it("stays an ordinary key", () => {
    const inner = create(StructSchema, {
      fields: { ["__proto__"]: create(ValueSchema, { kind: { case: "numberValue", value: 1 } }) },
    });
    const value = create(ValueSchema, { kind: { case: "structValue", value: inner } });
    const json = valueToJson(value, "value");
    expect(Object.keys(json as object)).toEqual(["__proto__"]);
    expect(canonicalJson(json)).toBe('{"__proto__":1}');
  });
});

describe("configuration numbers", () => {
  const schema = commonConfigSchema.extend({ PORT: env.port(7073), N: env.positiveInt(5) });
  it("treats a whitespace-only variable as unset", () => {
    expect(loadConfig(schema, { PORT: "  ", N: " " })).toMatchObject({ PORT: 7073, N: 5 });
  });
  it("accepts plain digits only", () => {
    for (const bad of ["0x10", "1e3", "-1", "1.5", "70000"]) {
      expect(() => loadConfig(schema, { PORT: bad })).toThrow(ConfigError);
    }
    expect(loadConfig(schema, { PORT: " 8080 " }).PORT).toBe(8080);
  });
});
