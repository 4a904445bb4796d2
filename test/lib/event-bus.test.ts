import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { afterEach, describe, expect, inject, it, vi } from "vitest";
import {
  StateChangedSchema,
  StateOperation,
  type StateChanged,
} from "../../gen/agentainer/state/v1/state_pb.js";
import { subjectMatches, type BusMessage, type EventBus } from "../../lib/events/event-bus.js";
import { InProcessEventBus } from "../../lib/events/in-process-event-bus.js";
import { NatsEventBus } from "../../lib/events/nats-event-bus.js";
import { publishEvent, subscribeEvents } from "../../lib/events/typed.js";
import { connectEventBus, connectRedis } from "../../lib/infra.js";
import { jsonToValue } from "../../lib/json-value.js";
import { createLogger } from "../../lib/logger.js";

const logger = createLogger({ name: "event-bus-test", level: "silent" });
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const bytes = (text: string): Uint8Array => encoder.encode(text);
const text = (message: BusMessage): string => decoder.decode(message.data);

/** A handler that records the messages it receives as "subject=payload". */
function recorder(): { handler: (m: BusMessage) => void; seen: string[] } {
  const seen: string[] = [];
  return { handler: (m) => seen.push(`${m.subject}=${text(m)}`), seen };
}

/** A subject nobody else uses, so tests sharing the NATS server never see each other's events. */
function uniqueSubject(): string {
  return `test.${randomUUID()}`;
}

describe("subjectMatches", () => {
  it("matches an identical subject", () => {
    expect(subjectMatches("a.b.c", "a.b.c")).toBe(true);
  });

  it("does not match a subject differing in one token", () => {
    expect(subjectMatches("a.b.c", "a.x.c")).toBe(false);
  });

  it("does not match when the subject is longer or shorter than a literal pattern", () => {
    expect(subjectMatches("a.b", "a.b.c")).toBe(false);
    expect(subjectMatches("a.b.c", "a.b")).toBe(false);
  });

  it("does not match a token that only starts like the pattern's token", () => {
    expect(subjectMatches("a.b", "a.bc")).toBe(false);
  });

  it("lets * stand for exactly one token anywhere", () => {
    expect(subjectMatches("a.*.c", "a.b.c")).toBe(true);
    expect(subjectMatches("*.b.c", "a.b.c")).toBe(true);
    expect(subjectMatches("a.b.*", "a.b.c")).toBe(true);
    expect(subjectMatches("*", "a")).toBe(true);
  });

  it("does not let * stand for zero or two tokens", () => {
    expect(subjectMatches("a.*", "a")).toBe(false);
    expect(subjectMatches("a.*", "a.b.c")).toBe(false);
    expect(subjectMatches("a.*.c", "a.c")).toBe(false);
  });

  it("lets a trailing > stand for one or more tokens", () => {
    expect(subjectMatches("a.>", "a.b")).toBe(true);
    expect(subjectMatches("a.>", "a.b.c.d")).toBe(true);
    expect(subjectMatches(">", "a")).toBe(true);
    expect(subjectMatches(">", "a.b.c")).toBe(true);
  });

  it("does not let > stand for zero tokens", () => {
    expect(subjectMatches("a.>", "a")).toBe(false);
    expect(subjectMatches("a.b.>", "a.b")).toBe(false);
  });

  it("does not match > when the tokens before it differ", () => {
    expect(subjectMatches("a.>", "b.c")).toBe(false);
    expect(subjectMatches("a.*.>", "a.b")).toBe(false);
    expect(subjectMatches("a.*.>", "a.b.c")).toBe(true);
  });

  it("matches the suite's own subjects", () => {
    expect(
      subjectMatches(
        "agentainer.state.workflow.changed.>",
        "agentainer.state.workflow.changed.wf-1",
      ),
    ).toBe(true);
    expect(
      subjectMatches(
        "agentainer.state.workflow.changed.*",
        "agentainer.state.workflow.changed.wf-1",
      ),
    ).toBe(true);
    expect(
      subjectMatches(
        "agentainer.state.workflow.changed.wf-1",
        "agentainer.state.workflow.changed.wf-2",
      ),
    ).toBe(false);
  });
});

describe("InProcessEventBus", () => {
  let bus: InProcessEventBus;
  afterEach(async () => {
    await bus.close();
  });

  it("delivers a message after publish returns, not during it", async () => {
    bus = new InProcessEventBus();
    const { handler, seen } = recorder();
    bus.subscribe("a.b", handler);
    bus.publish("a.b", bytes("1"));
    expect(seen).toEqual([]);
    await bus.flush();
    expect(seen).toEqual(["a.b=1"]);
  });

  it("delivers in publish order, across subjects", async () => {
    bus = new InProcessEventBus();
    const { handler, seen } = recorder();
    bus.subscribe(">", handler);
    for (let i = 0; i < 20; i++) bus.publish(i % 2 === 0 ? "even" : "odd", bytes(String(i)));
    await bus.flush();
    expect(seen).toEqual(
      Array.from({ length: 20 }, (_, i) => `${i % 2 === 0 ? "even" : "odd"}=${i}`),
    );
  });

  it("delivers messages published by a handler after the ones already queued", async () => {
    bus = new InProcessEventBus();
    const { handler, seen } = recorder();
    bus.subscribe("out.*", handler);
    bus.subscribe("in", (m) => bus.publish("out.echo", m.data));
    bus.publish("in", bytes("x"));
    bus.publish("out.direct", bytes("y"));
    await bus.flush();
    expect(seen).toEqual(["out.direct=y", "out.echo=x"]);
  });

  it("delivers to wildcard subscriptions only the subjects they match", async () => {
    bus = new InProcessEventBus();
    const star = recorder();
    const tail = recorder();
    const exact = recorder();
    bus.subscribe("orders.*", star.handler);
    bus.subscribe("orders.>", tail.handler);
    bus.subscribe("orders.new", exact.handler);
    bus.publish("orders.new", bytes("1"));
    bus.publish("orders.eu.new", bytes("2"));
    bus.publish("orders", bytes("3"));
    bus.publish("invoices.new", bytes("4"));
    await bus.flush();
    expect(star.seen).toEqual(["orders.new=1"]);
    expect(tail.seen).toEqual(["orders.new=1", "orders.eu.new=2"]);
    expect(exact.seen).toEqual(["orders.new=1"]);
  });

  it("delivers one message to every matching subscriber", async () => {
    bus = new InProcessEventBus();
    const first = recorder();
    const second = recorder();
    bus.subscribe("a", first.handler);
    bus.subscribe("a", second.handler);
    bus.publish("a", bytes("1"));
    await bus.flush();
    expect(first.seen).toEqual(["a=1"]);
    expect(second.seen).toEqual(["a=1"]);
  });

  it("hands the subscriber the published bytes unchanged", async () => {
    bus = new InProcessEventBus();
    const received: Uint8Array[] = [];
    bus.subscribe("bin", (m) => received.push(m.data));
    bus.publish("bin", new Uint8Array([0, 255, 1, 128]));
    await bus.flush();
    expect(received).toEqual([new Uint8Array([0, 255, 1, 128])]);
  });

  it("stops delivering to a handler once it unsubscribes, and keeps delivering to others", async () => {
    bus = new InProcessEventBus();
    const leaving = recorder();
    const staying = recorder();
    const subscription = bus.subscribe("a", leaving.handler);
    bus.subscribe("a", staying.handler);
    bus.publish("a", bytes("1"));
    await bus.flush();
    subscription.unsubscribe();
    bus.publish("a", bytes("2"));
    await bus.flush();
    expect(leaving.seen).toEqual(["a=1"]);
    expect(staying.seen).toEqual(["a=1", "a=2"]);
  });

  it("does not deliver a message still queued when the handler unsubscribed", async () => {
    bus = new InProcessEventBus();
    const { handler, seen } = recorder();
    const subscription = bus.subscribe("a", handler);
    bus.publish("a", bytes("1"));
    subscription.unsubscribe();
    await bus.flush();
    expect(seen).toEqual([]);
  });

  it("accepts unsubscribe twice", async () => {
    bus = new InProcessEventBus();
    const { handler, seen } = recorder();
    const subscription = bus.subscribe("a", handler);
    subscription.unsubscribe();
    subscription.unsubscribe();
    bus.publish("a", bytes("1"));
    await bus.flush();
    expect(seen).toEqual([]);
  });

  it("delivers nothing after close: neither queued messages nor later publishes", async () => {
    bus = new InProcessEventBus();
    const { handler, seen } = recorder();
    bus.subscribe(">", handler);
    bus.publish("a", bytes("queued"));
    await bus.close();
    bus.publish("a", bytes("after"));
    bus.subscribe(">", handler);
    bus.publish("a", bytes("after-resubscribe"));
    await bus.flush();
    expect(seen).toEqual([]);
  });

  it("flush resolves once every message published before it was delivered", async () => {
    bus = new InProcessEventBus();
    const { handler, seen } = recorder();
    bus.subscribe("a", handler);
    for (let i = 0; i < 100; i++) bus.publish("a", bytes(String(i)));
    await bus.flush();
    expect(seen).toHaveLength(100);
  });

  it("flush resolves with nothing published", async () => {
    bus = new InProcessEventBus();
    await expect(bus.flush()).resolves.toBeUndefined();
  });
});

describe("NatsEventBus (real nats-server)", () => {
  const natsUrl = inject("natsUrl");
  const opened: EventBus[] = [];
  async function open(): Promise<NatsEventBus> {
    const bus = await NatsEventBus.connect(natsUrl, logger, "event-bus-test");
    opened.push(bus);
    return bus;
  }
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((bus) => bus.close()));
  });

  /** Subscribes and waits until the server knows the subscription, so no later publish is missed. */
  async function subscribed(bus: NatsEventBus, subject: string): Promise<string[]> {
    const { handler, seen } = recorder();
    bus.subscribe(subject, handler);
    await bus.flush();
    return seen;
  }

  it("delivers a published message to a subscriber on another connection", async () => {
    const subject = uniqueSubject();
    const publisher = await open();
    const subscriber = await open();
    const seen = await subscribed(subscriber, subject);
    publisher.publish(subject, bytes("hello"));
    await publisher.flush();
    await vi.waitFor(() => expect(seen).toEqual([`${subject}=hello`]));
  });

  it("delivers messages from one connection in publish order", async () => {
    const subject = uniqueSubject();
    const publisher = await open();
    const subscriber = await open();
    const seen = await subscribed(subscriber, subject);
    for (let i = 0; i < 50; i++) publisher.publish(subject, bytes(String(i)));
    await publisher.flush();
    await vi.waitFor(() => expect(seen).toHaveLength(50));
    expect(seen).toEqual(Array.from({ length: 50 }, (_, i) => `${subject}=${i}`));
  });

  it("delivers to a subscriber on the publishing connection once flush resolves", async () => {
    const subject = uniqueSubject();
    const bus = await open();
    const seen = await subscribed(bus, subject);
    bus.publish(subject, bytes("self"));
    await bus.flush();
    expect(seen).toEqual([`${subject}=self`]);
  });

  it("delivers to wildcard subscriptions the subjects they match, with the concrete subject", async () => {
    const base = uniqueSubject();
    const publisher = await open();
    const subscriber = await open();
    const star = await subscribed(subscriber, `${base}.*`);
    const tail = await subscribed(subscriber, `${base}.>`);
    publisher.publish(`${base}.one`, bytes("1"));
    publisher.publish(`${base}.one.two`, bytes("2"));
    publisher.publish(base, bytes("3"));
    await publisher.flush();
    await vi.waitFor(() => expect(tail).toHaveLength(2));
    await subscriber.flush();
    expect(tail).toEqual([`${base}.one=1`, `${base}.one.two=2`]);
    expect(star).toEqual([`${base}.one=1`]);
  });

  it("hands the subscriber the published bytes unchanged", async () => {
    const subject = uniqueSubject();
    const bus = await open();
    const received: Uint8Array[] = [];
    bus.subscribe(subject, (m) => received.push(m.data));
    await bus.flush();
    bus.publish(subject, new Uint8Array([0, 255, 1, 128]));
    await bus.flush();
    expect(received.map((d) => Array.from(d))).toEqual([[0, 255, 1, 128]]);
  });

  it("stops delivering to a handler once it unsubscribes", async () => {
    const subject = uniqueSubject();
    const publisher = await open();
    const subscriber = await open();
    const leaving = recorder();
    const subscription = subscriber.subscribe(subject, leaving.handler);
    const staying = await subscribed(subscriber, subject);
    publisher.publish(subject, bytes("1"));
    await publisher.flush();
    await vi.waitFor(() => expect(staying).toEqual([`${subject}=1`]));
    subscription.unsubscribe();
    subscription.unsubscribe();
    await subscriber.flush();
    publisher.publish(subject, bytes("2"));
    await publisher.flush();
    await vi.waitFor(() => expect(staying).toEqual([`${subject}=1`, `${subject}=2`]));
    await subscriber.flush();
    expect(leaving.seen).toEqual([`${subject}=1`]);
  });

  it("delivers everything published before close (close drains)", async () => {
    const subject = uniqueSubject();
    const publisher = await NatsEventBus.connect(natsUrl, logger, "draining-publisher");
    const subscriber = await open();
    const seen = await subscribed(subscriber, subject);
    for (let i = 0; i < 200; i++) publisher.publish(subject, bytes(String(i)));
    await publisher.close();
    await vi.waitFor(() => expect(seen).toHaveLength(200));
    expect(seen.at(-1)).toBe(`${subject}=199`);
  });

  it("stops delivering to its own subscribers after close", async () => {
    const subject = uniqueSubject();
    const publisher = await open();
    const closing = await NatsEventBus.connect(natsUrl, logger, "closing-subscriber");
    const closedSeen = await subscribed(closing, subject);
    const control = await open();
    const controlSeen = await subscribed(control, subject);
    await closing.close();
    publisher.publish(subject, bytes("after-close"));
    await publisher.flush();
    await vi.waitFor(() => expect(controlSeen).toEqual([`${subject}=after-close`]));
    expect(closedSeen).toEqual([]);
  });

  it("does not throw when publishing after close, and close can be called again", async () => {
    const bus = await NatsEventBus.connect(natsUrl, logger, "closed");
    await bus.close();
    expect(() => bus.publish(uniqueSubject(), bytes("lost"))).not.toThrow();
    await expect(bus.close()).resolves.toBeUndefined();
  });
});

describe("typed events (publishEvent / subscribeEvents)", () => {
  const change: StateChanged = create(StateChangedSchema, {
    workflowId: "wf-typed",
    version: 42n,
    operation: StateOperation.PUT_ALL,
    changes: [
      { key: "answer", value: jsonToValue({ n: 42, tags: ["a", "b"], ok: true, none: null }) },
      { key: "gone", deleted: true },
      { key: "huge", valueOmitted: true },
    ],
    time: timestampFromMs(1_700_000_000_123),
  });

  function roundTrip(bus: EventBus, subject: string, pattern: string) {
    const received: { message: StateChanged; subject: string }[] = [];
    const errors: unknown[] = [];
    subscribeEvents(
      bus,
      pattern,
      StateChangedSchema,
      (message, from) => received.push({ message, subject: from }),
      (err) => errors.push(err),
    );
    return {
      received,
      errors,
      publish: () => publishEvent(bus, subject, StateChangedSchema, change),
    };
  }

  it("round-trips a protobuf message over the in-process bus", async () => {
    const bus = new InProcessEventBus();
    const { received, errors, publish } = roundTrip(
      bus,
      "agentainer.test.changed.wf-typed",
      "agentainer.test.changed.*",
    );
    publish();
    await bus.flush();
    expect(errors).toEqual([]);
    expect(received).toHaveLength(1);
    expect(received[0]?.subject).toBe("agentainer.test.changed.wf-typed");
    expect(received[0]?.message).toEqual(change);
    expect(received[0]?.message.version).toBe(42n);
    await bus.close();
  });

  it("round-trips a protobuf message over NATS", async () => {
    const bus = await NatsEventBus.connect(inject("natsUrl"), logger, "typed");
    const subject = uniqueSubject();
    const { received, errors, publish } = roundTrip(bus, subject, subject);
    await bus.flush();
    publish();
    await bus.flush();
    await bus.close();
    expect(errors).toEqual([]);
    expect(received.map((r) => r.message)).toEqual([change]);
  });

  it("routes bytes that do not decode to onError with the subject, not to the handler", async () => {
    const bus = new InProcessEventBus();
    const handled: StateChanged[] = [];
    const errors: { err: unknown; subject: string }[] = [];
    subscribeEvents(
      bus,
      "events.>",
      StateChangedSchema,
      (message) => handled.push(message),
      (err, subject) => errors.push({ err, subject }),
    );
    bus.publish("events.garbage", new Uint8Array([0xff, 0xff, 0xff, 0xff]));
    publishEvent(bus, "events.good", StateChangedSchema, change);
    await bus.flush();
    expect(errors).toHaveLength(1);
    expect(errors[0]?.subject).toBe("events.garbage");
    expect(errors[0]?.err).toBeInstanceOf(Error);
    expect(handled).toEqual([change]);
    await bus.close();
  });

  it("drops undecodable bytes silently when no onError is given", async () => {
    const bus = new InProcessEventBus();
    const handled: StateChanged[] = [];
    subscribeEvents(bus, "events.>", StateChangedSchema, (message) => handled.push(message));
    bus.publish("events.garbage", new Uint8Array([0xff, 0xff, 0xff, 0xff]));
    publishEvent(bus, "events.good", StateChangedSchema, change);
    await bus.flush();
    expect(handled).toEqual([change]);
    await bus.close();
  });

  it("stops delivering after the returned subscription is unsubscribed", async () => {
    const bus = new InProcessEventBus();
    const handled: StateChanged[] = [];
    const subscription = subscribeEvents(bus, "events.>", StateChangedSchema, (m) =>
      handled.push(m),
    );
    subscription.unsubscribe();
    publishEvent(bus, "events.good", StateChangedSchema, change);
    await bus.flush();
    expect(handled).toEqual([]);
    await bus.close();
  });
});

describe("connectEventBus", () => {
  it("gives the in-process bus when no URL is set", async () => {
    const bus = await connectEventBus(undefined, logger, "test");
    expect(bus).toBeInstanceOf(InProcessEventBus);
    await bus.close();
  });

  it("gives a working NATS bus for the server's URL", async () => {
    const bus = await connectEventBus(inject("natsUrl"), logger, "test");
    expect(bus).toBeInstanceOf(NatsEventBus);
    const subject = uniqueSubject();
    const { handler, seen } = recorder();
    bus.subscribe(subject, handler);
    await bus.flush();
    bus.publish(subject, bytes("up"));
    await bus.flush();
    expect(seen).toEqual([`${subject}=up`]);
    await bus.close();
  });

  it("rejects naming the address when nothing listens there", async () => {
    await expect(connectEventBus("nats://127.0.0.1:1", logger, "test")).rejects.toThrow(
      /cannot reach NATS at nats:\/\/127\.0\.0\.1:1.*fix NATS_URL/,
    );
  });
});

describe("connectRedis", () => {
  it("connects to the server's URL and answers commands", async () => {
    const redis = await connectRedis(inject("redisUrl"), logger);
    try {
      expect(await redis.ping()).toBe("PONG");
    } finally {
      await redis.quit();
    }
  });

  it("rejects naming the address when nothing listens there", async () => {
    await expect(connectRedis("redis://127.0.0.1:1", logger)).rejects.toThrow(
      /cannot reach Redis at redis:\/\/127\.0\.0\.1:1.*fix REDIS_URL/,
    );
  });
});
