import { AsyncQueue } from "../../lib/async-queue.js";
import { InvalidArgumentError } from "../../lib/errors.js";
import { canonicalJson, type JsonValue } from "../../lib/json-value.js";
import type { KeyChange, StateChange, StateChangeFeed, StateOperation } from "./changes.js";
import type { Limits, StateMeta, StateStore, StoredValue } from "./store.js";
import { checkKey, checkWorkflowId, maxTtlMs } from "./validate.js";

export interface StateDeps {
  store: StateStore;
  feed: StateChangeFeed;
  /** Milliseconds since the epoch; tests pass a controllable clock. */
  now: () => number;
  /** Server-wide limits: the defaults, and the most a workflow may ask for. */
  limits: Limits;
  /** Most changes a Watch buffers for a slow client before it resynchronises with a snapshot. */
  watchBufferSize?: number;
}

export interface WatchOptions {
  keys: readonly string[];
  sendInitial: boolean;
  signal: AbortSignal;
}

export type StateManager = ReturnType<typeof createStateManager>;

const parse = (json: string): JsonValue => JSON.parse(json) as JsonValue;

function stored(value: JsonValue): StoredValue {
  return { json: canonicalJson(value), length: Array.isArray(value) ? value.length : -1 };
}

/**
 * The State domain: validation, the atomic operations (delegated to the store, which runs each
 * as one atomic step), change announcements after every successful write, and Watch.
 */
export function createStateManager(deps: StateDeps) {
  const { store, feed, now } = deps;

  function announce(
    workflowId: string,
    version: number,
    operation: StateOperation,
    changes: KeyChange[],
  ): void {
    feed.publish({ workflowId, version, operation, changes, timeMs: now() });
  }
  const setTo = (key: string, json: string): KeyChange => ({
    key,
    json,
    deleted: false,
    omitted: false,
  });

  function resolveLimits(requested: Partial<Limits>): Limits {
    const pick = (asked: number | undefined, max: number, field: string) => {
      if (asked === undefined || asked === 0) return max;
      if (!Number.isSafeInteger(asked) || asked < 0 || asked > max) {
        throw new InvalidArgumentError(
          `${field} must be between 1 and ${max} bytes (0 for the default); got ${asked}`,
          {
            field,
          },
        );
      }
      return asked;
    };
    const maxWorkflowBytes = pick(
      requested.maxWorkflowBytes,
      deps.limits.maxWorkflowBytes,
      "limits.max_workflow_bytes",
    );
    const maxValueBytes = pick(
      requested.maxValueBytes,
      deps.limits.maxValueBytes,
      "limits.max_value_bytes",
    );
    return { maxWorkflowBytes, maxValueBytes: Math.min(maxValueBytes, maxWorkflowBytes) };
  }

  async function snapshot(workflowId: string, keys: ReadonlySet<string>): Promise<StateChange> {
    const all = await store.getAll(workflowId, now());
    const changes = all.entries
      .filter(([key]) => keys.size === 0 || keys.has(key))
      .map(([key, json]) => setTo(key, json));
    return { workflowId, version: all.version, operation: "snapshot", changes, timeMs: now() };
  }

  return {
    async createWorkflowState(
      workflowId: string,
      limits: Partial<Limits>,
    ): Promise<{ meta: StateMeta; created: boolean }> {
      checkWorkflowId(workflowId);
      const result = await store.create(workflowId, resolveLimits(limits), now());
      if (result.created) announce(workflowId, result.meta.version, "create_workflow_state", []);
      return result;
    },

    async describeWorkflowState(workflowId: string): Promise<StateMeta> {
      checkWorkflowId(workflowId);
      return store.describe(workflowId, now());
    },

    async expireWorkflowState(workflowId: string, ttlMs: number): Promise<StateMeta> {
      checkWorkflowId(workflowId);
      if (!Number.isFinite(ttlMs) || ttlMs < 0 || ttlMs > maxTtlMs) {
        throw new InvalidArgumentError(
          `ttl must be between 0 (no expiry) and 366 days; got ${ttlMs} ms`,
          {
            field: "ttl",
          },
        );
      }
      const meta = await store.expire(workflowId, Math.ceil(ttlMs), now());
      announce(workflowId, meta.version, "expire_workflow_state", []);
      return meta;
    },

    async deleteWorkflowState(workflowId: string): Promise<boolean> {
      checkWorkflowId(workflowId);
      const dropped = await store.drop(workflowId, now());
      if (dropped) announce(workflowId, dropped.version, "delete_workflow_state", []);
      return dropped !== undefined;
    },

    async get(
      workflowId: string,
      key: string,
    ): Promise<{ value: JsonValue | undefined; version: number }> {
      checkWorkflowId(workflowId);
      checkKey(key);
      const r = await store.get(workflowId, key, now());
      return { value: r.json === undefined ? undefined : parse(r.json), version: r.version };
    },

    async getAll(
      workflowId: string,
    ): Promise<{ values: Record<string, JsonValue>; version: number }> {
      checkWorkflowId(workflowId);
      const r = await store.getAll(workflowId, now());
      const values = Object.create(null) as Record<string, JsonValue>;
      for (const [key, json] of r.entries) values[key] = parse(json);
      return { values, version: r.version };
    },

    async set(workflowId: string, key: string, value: JsonValue): Promise<number> {
      checkWorkflowId(workflowId);
      checkKey(key);
      const v = stored(value);
      const { version } = await store.set(workflowId, key, v, now());
      announce(workflowId, version, "set", [setTo(key, v.json)]);
      return version;
    },

    async delete(workflowId: string, key: string): Promise<{ version: number; existed: boolean }> {
      checkWorkflowId(workflowId);
      checkKey(key);
      const r = await store.delete(workflowId, key, now());
      if (r.existed)
        announce(workflowId, r.version, "delete", [
          { key, json: undefined, deleted: true, omitted: false },
        ]);
      return r;
    },

    async putAll(workflowId: string, values: Readonly<Record<string, JsonValue>>): Promise<number> {
      checkWorkflowId(workflowId);
      const entries = Object.entries(values).map(([key, value]): [string, StoredValue] => {
        checkKey(key, `values.${key}`);
        return [key, stored(value)];
      });
      if (entries.length === 0) {
        throw new InvalidArgumentError("values is empty; give at least one key to write", {
          field: "values",
        });
      }
      const { version } = await store.putAll(workflowId, entries, now());
      announce(
        workflowId,
        version,
        "put_all",
        entries.map(([key, v]) => setTo(key, v.json)),
      );
      return version;
    },

    async deleteAll(workflowId: string): Promise<{ version: number; deletedCount: number }> {
      checkWorkflowId(workflowId);
      const r = await store.deleteAll(workflowId, now());
      if (r.deletedCount > 0) announce(workflowId, r.version, "delete_all", []);
      return r;
    },

    async increment(
      workflowId: string,
      key: string,
      delta = 1,
    ): Promise<{ value: number; version: number }> {
      checkWorkflowId(workflowId);
      checkKey(key);
      if (!Number.isFinite(delta)) {
        throw new InvalidArgumentError(`delta must be a finite number; got ${delta}`, {
          field: "delta",
        });
      }
      const r = await store.increment(workflowId, key, delta, now());
      announce(workflowId, r.version, "increment", [setTo(key, r.json)]);
      return { value: Number(r.json), version: r.version };
    },

    async appendToList(
      workflowId: string,
      key: string,
      values: readonly JsonValue[],
    ): Promise<{ length: number; version: number }> {
      checkWorkflowId(workflowId);
      checkKey(key);
      if (values.length === 0) {
        throw new InvalidArgumentError("values is empty; give at least one value to append", {
          field: "values",
        });
      }
      const r = await store.append(workflowId, key, values.map(canonicalJson), now());
      announce(workflowId, r.version, "append_to_list", [setTo(key, r.json)]);
      return { length: r.length, version: r.version };
    },

    async addToSet(
      workflowId: string,
      key: string,
      member: JsonValue,
    ): Promise<{ added: boolean; size: number; version: number }> {
      checkWorkflowId(workflowId);
      checkKey(key);
      const r = await store.addToSet(workflowId, key, canonicalJson(member), now());
      if (r.added) announce(workflowId, r.version, "add_to_set", [setTo(key, r.json)]);
      return { added: r.added, size: r.size, version: r.version };
    },

    async compareAndSwap(
      workflowId: string,
      key: string,
      expected: JsonValue | undefined,
      next: JsonValue,
    ): Promise<{ swapped: boolean; current: JsonValue | undefined; version: number }> {
      checkWorkflowId(workflowId);
      checkKey(key);
      const v = stored(next);
      const r = await store.compareAndSwap(
        workflowId,
        key,
        expected === undefined ? undefined : canonicalJson(expected),
        v,
        now(),
      );
      if (r.swapped) announce(workflowId, r.version, "compare_and_swap", [setTo(key, v.json)]);
      return {
        swapped: r.swapped,
        current: r.current === undefined ? undefined : parse(r.current),
        version: r.version,
      };
    },

    /**
     * Changes to one workflow's state in version order. Subscribes before reading, so nothing
     * between the snapshot and the first change is missed; a gap in versions (a lost event, or
     * a client too slow for the buffer) is answered with a fresh snapshot.
     */
    async *watch(workflowId: string, options: WatchOptions): AsyncGenerator<StateChange> {
      checkWorkflowId(workflowId);
      options.keys.forEach((k, i) => checkKey(k, `keys[${i}]`));
      const keys = new Set(options.keys);
      const queue = new AsyncQueue<StateChange>(deps.watchBufferSize ?? 10_000);
      const subscription = feed.subscribe(workflowId, (change) => queue.push(change));
      try {
        const first = await snapshot(workflowId, keys);
        let last = first.version;
        if (options.sendInitial) yield first;
        for await (const next of queue.drain(options.signal)) {
          if (next.kind === "overflow") {
            const fresh = await snapshot(workflowId, keys);
            last = fresh.version;
            yield fresh;
            continue;
          }
          const change = next.item;
          if (change.version <= last) continue;
          if (change.version > last + 1 && change.operation !== "delete_workflow_state") {
            const fresh = await snapshot(workflowId, keys).catch(() => undefined);
            if (fresh !== undefined && fresh.version >= change.version) {
              last = fresh.version;
              yield fresh;
              continue;
            }
          }
          last = change.version;
          const relevant =
            keys.size === 0 ? change.changes : change.changes.filter((c) => keys.has(c.key));
          if (relevant.length > 0 || change.changes.length === 0)
            yield { ...change, changes: relevant };
          if (change.operation === "delete_workflow_state") return;
        }
      } finally {
        subscription.unsubscribe();
      }
    },
  };
}
