// PoolManager on fakes: an Acquire whose caller goes away while its lease is being stored gives
// the agent back at once instead of leaving a lease nobody holds until its expiry.
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { AgentMode } from "../../gen/agentainer/executor/v1/executor_pb.js";
import { AgentTemplateSchema, PoolPolicySchema } from "../../gen/agentainer/pool/v1/pool_pb.js";
import { createLogger } from "../../lib/logger.js";
import type { AgentBackend } from "../../services/pool/backend.js";
import { InMemoryPoolStore } from "../../services/pool/memory-store.js";
import { PoolManager } from "../../services/pool/pool-manager.js";
import { policyFromProto } from "../../services/pool/policy.js";
import type { PoolSnapshot } from "../../services/pool/store.js";
import { templateFromProto, templateKey } from "../../services/pool/template.js";
import { eventually } from "../support/await.js";

const backend: AgentBackend = {
  create: async () => ({ containerId: "c" }),
  check: async () => ({ healthy: true, detail: "", state: "ready" }),
  destroy: async () => {},
  listPooled: async () => [],
  onExited: () => () => {},
};

/** A store whose saves can be held, to stand in for a slow Redis write. */
class HeldStore extends InMemoryPoolStore {
  hold: Promise<void> | undefined;
  override async save(snapshot: PoolSnapshot): Promise<void> {
    await this.hold;
    return super.save(snapshot);
  }
}

describe("an Acquire that ends while its lease is stored", () => {
  it("returns the agent to the pool and fails the call, leaving no lease behind", async () => {
    const store = new HeldStore();
    const pools = new PoolManager({
      backend,
      store,
      listener: { agentChanged: () => {}, poolChanged: () => {} },
      logger: createLogger({ name: "test", level: "silent" }),
      reconcileIntervalMs: 20,
    });
    const template = templateFromProto(
      create(AgentTemplateSchema, { image: "img", command: ["sleep"], mode: AgentMode.EXEC }),
    );
    const policy = policyFromProto(
      create(PoolPolicySchema, { minSize: 1, maxSize: 1, warmUp: true }),
      "exec",
      16,
    );
    await pools.create("p", template, templateKey(template), policy);
    await eventually(() => pools.get("p").agents.size === 1 && idle(pools) === 1);

    let free!: () => void;
    store.hold = new Promise((r) => (free = r));
    const ended = new AbortController();
    const call = pools.acquire("p", "h", 0, 60_000, ended.signal);
    await new Promise((r) => setTimeout(r, 20));
    ended.abort(); // the caller goes away while the lease is being saved
    free();
    await expect(call).rejects.toThrow(/the Acquire call ended/);
    // Back to idle (after the health check a release without an outcome gets), not leased.
    await eventually(() => idle(pools) === 1);
    // The agent is a hit for the next caller.
    const next = await pools.acquire("p", "h2", 0, 60_000, new AbortController().signal);
    expect(next.hit).toBe(true);
    await pools.close();
  });
});

function idle(pools: PoolManager): number {
  return [...pools.get("p").agents.values()].filter((a) => a.state === "idle").length;
}
