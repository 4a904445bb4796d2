import { fileURLToPath } from "node:url";
import type { Redis } from "ioredis";
import { loadScripts, type ScriptRunner } from "../../lib/redis/scripts.js";
import { storeErrors, typeNeeds } from "./store-errors.js";
import { defaultKeyPrefix, stateKeys } from "./keys.js";
import type { Limits, StateMeta, StateStore, StoredValue, Versioned } from "./store.js";

const scriptNames = [
  "create",
  "describe",
  "expire",
  "drop",
  "get",
  "get-all",
  "set",
  "delete",
  "put-all",
  "delete-all",
  "increment",
  "append",
  "add-to-set",
  "compare-and-swap",
] as const;
type ScriptName = (typeof scriptNames)[number];
type Reply = Array<string | number | null>;

/** The State store in Redis: one Lua script per operation (scripts/), keys from keys.ts. */
export class RedisStateStore implements StateStore {
  private readonly scripts: ScriptRunner<ScriptName>;

  constructor(
    redis: Redis,
    private readonly prefix: string = defaultKeyPrefix,
  ) {
    const folder = fileURLToPath(new URL("./scripts/", import.meta.url));
    this.scripts = loadScripts(redis, folder, scriptNames);
  }

  async create(workflowId: string, limits: Limits, nowMs: number) {
    const r = await this.call("create", workflowId, [
      limits.maxWorkflowBytes,
      limits.maxValueBytes,
      nowMs,
    ]);
    return { created: r[0] === 1, meta: toMeta(workflowId, r) };
  }

  async describe(workflowId: string) {
    return toMeta(workflowId, await this.call("describe", workflowId, []));
  }

  async expire(workflowId: string, ttlMs: number, nowMs: number) {
    await this.call("expire", workflowId, [ttlMs, nowMs]);
    return this.describe(workflowId);
  }

  async drop(workflowId: string): Promise<Versioned | undefined> {
    const r = await this.call("drop", workflowId, []);
    return r[0] === 1 ? { version: Number(r[1]) } : undefined;
  }

  async get(workflowId: string, key: string) {
    const r = await this.call("get", workflowId, [key]);
    return { version: Number(r[1]), json: r[2] === null ? undefined : String(r[2]) };
  }

  async getAll(workflowId: string) {
    const r = await this.call("get-all", workflowId, []);
    const entries: Array<[string, string]> = [];
    for (let i = 2; i < r.length; i += 2) entries.push([String(r[i]), String(r[i + 1])]);
    return { version: Number(r[1]), entries };
  }

  async set(workflowId: string, key: string, value: StoredValue) {
    const r = await this.call("set", workflowId, [key, value.json, value.length], key);
    return { version: Number(r[1]) };
  }

  async delete(workflowId: string, key: string) {
    const r = await this.call("delete", workflowId, [key]);
    return { version: Number(r[1]), existed: r[0] === 1 };
  }

  async putAll(workflowId: string, entries: ReadonlyArray<[string, StoredValue]>) {
    const args = entries.flatMap(([key, v]) => [key, v.json, v.length]);
    const r = await this.call("put-all", workflowId, args, "values");
    return { version: Number(r[1]) };
  }

  async deleteAll(workflowId: string) {
    const r = await this.call("delete-all", workflowId, []);
    return { version: Number(r[1]), deletedCount: r[0] === 1 ? Number(r[2]) : 0 };
  }

  async increment(workflowId: string, key: string, delta: number) {
    const r = await this.call("increment", workflowId, [key, String(delta)], key);
    return { version: Number(r[1]), json: String(r[2]) };
  }

  async append(workflowId: string, key: string, elements: readonly string[]) {
    const r = await this.call(
      "append",
      workflowId,
      [key, elements.length, elements.join(",")],
      key,
    );
    return { version: Number(r[1]), length: Number(r[2]), json: String(r[3]) };
  }

  async addToSet(workflowId: string, key: string, member: string) {
    const r = await this.call("add-to-set", workflowId, [key, member], key);
    return { added: r[0] === 1, version: Number(r[1]), size: Number(r[2]), json: String(r[3]) };
  }

  async compareAndSwap(
    workflowId: string,
    key: string,
    expected: string | undefined,
    next: StoredValue,
  ) {
    const args = [key, expected === undefined ? "0" : "1", expected ?? "", next.json, next.length];
    const r = await this.call("compare-and-swap", workflowId, args, key);
    if (r[0] === 1) return { swapped: true, version: Number(r[1]), current: next.json };
    return {
      swapped: false,
      version: Number(r[1]),
      current: r[2] === null ? undefined : String(r[2]),
    };
  }

  /** Runs a script and turns its error codes into domain errors (the only place that knows them). */
  private async call(
    name: ScriptName,
    workflowId: string,
    args: ReadonlyArray<string | number>,
    field = "value",
  ): Promise<Reply> {
    const k = stateKeys(this.prefix, workflowId);
    const reply = (await this.scripts.run(name, [k.meta, k.data, k.len], args)) as Reply;
    const code = reply[0];
    switch (code) {
      case -1:
        throw storeErrors.noState(workflowId);
      case -2:
        throw storeErrors.valueTooLarge(field, Number(reply[1]), Number(reply[2]));
      case -3:
        throw storeErrors.workflowTooLarge(workflowId, field, Number(reply[1]), Number(reply[2]));
      case -4:
        throw storeErrors.wrongType(String(args[0]), String(reply[1]), operationNeeds(name));
      case -5:
        throw storeErrors.notFinite(String(args[0]), String(args[1]));
      default:
        return reply;
    }
  }
}

function operationNeeds(name: ScriptName): string {
  if (name === "increment") return typeNeeds.increment;
  if (name === "append") return typeNeeds.append;
  if (name === "add-to-set") return typeNeeds.addToSet;
  return "this operation does not apply to that type";
}

function toMeta(workflowId: string, r: Reply): StateMeta {
  return {
    workflowId,
    version: Number(r[1]),
    usedBytes: Number(r[2]),
    limits: { maxWorkflowBytes: Number(r[3]), maxValueBytes: Number(r[4]) },
    createTimeMs: Number(r[5]),
    expireTimeMs: r[6] === "" || r[6] === null ? undefined : Number(r[6]),
    keyCount: Number(r[7]),
  };
}
