import type { FailedPreconditionError } from "../../lib/errors.js";
import { storeErrors, typeNeeds } from "./store-errors.js";
import { canonicalJson, type JsonValue } from "../../lib/json-value.js";
import type { Limits, StateMeta, StateStore, StoredValue, Versioned } from "./store.js";

interface Entry {
  version: number;
  usedBytes: number;
  limits: Limits;
  createTimeMs: number;
  expireTimeMs: number | undefined;
  data: Map<string, string>;
  lengths: Map<string, number>;
}

const bytes = (s: string) => Buffer.byteLength(s, "utf8");

/**
 * The State store of the one-process mode: every operation runs synchronously between two
 * awaits, so it is atomic on Node's single thread. Expired states vanish when next touched.
 * Mirrors RedisStateStore exactly (same contract tests), including its error messages.
 */
export class InMemoryStateStore implements StateStore {
  private readonly states = new Map<string, Entry>();

  create(workflowId: string, limits: Limits, nowMs: number) {
    let entry = this.find(workflowId, nowMs);
    const created = entry === undefined;
    if (entry === undefined) {
      entry = {
        version: 0,
        usedBytes: 0,
        limits: { ...limits },
        createTimeMs: nowMs,
        expireTimeMs: undefined,
        data: new Map(),
        lengths: new Map(),
      };
      this.states.set(workflowId, entry);
    }
    return Promise.resolve({ created, meta: toMeta(workflowId, entry) });
  }

  describe(workflowId: string, nowMs: number) {
    return this.run(() => toMeta(workflowId, this.require(workflowId, nowMs)));
  }

  expire(workflowId: string, ttlMs: number, nowMs: number) {
    return this.run(() => {
      const e = this.require(workflowId, nowMs);
      e.expireTimeMs = ttlMs > 0 ? nowMs + ttlMs : undefined;
      e.version++;
      return toMeta(workflowId, e);
    });
  }

  drop(workflowId: string, nowMs: number): Promise<Versioned | undefined> {
    const e = this.find(workflowId, nowMs);
    if (e === undefined) return Promise.resolve(undefined);
    this.states.delete(workflowId);
    return Promise.resolve({ version: e.version + 1 });
  }

  get(workflowId: string, key: string, nowMs: number) {
    return this.run(() => {
      const e = this.require(workflowId, nowMs);
      return { version: e.version, json: e.data.get(key) };
    });
  }

  getAll(workflowId: string, nowMs: number) {
    return this.run(() => {
      const e = this.require(workflowId, nowMs);
      return { version: e.version, entries: [...e.data.entries()] };
    });
  }

  set(workflowId: string, key: string, value: StoredValue, nowMs: number) {
    return this.run(() => {
      const e = this.require(workflowId, nowMs);
      const delta = checkLimits(workflowId, e, key, value.json, e.data.get(key), key);
      write(e, key, value.json, value.length);
      return { version: commit(e, delta) };
    });
  }

  delete(workflowId: string, key: string, nowMs: number) {
    return this.run(() => {
      const e = this.require(workflowId, nowMs);
      const old = e.data.get(key);
      if (old === undefined) return { version: e.version, existed: false };
      e.data.delete(key);
      e.lengths.delete(key);
      return { version: commit(e, -(bytes(old) + bytes(key))), existed: true };
    });
  }

  putAll(workflowId: string, entries: ReadonlyArray<[string, StoredValue]>, nowMs: number) {
    return this.run(() => {
      const e = this.require(workflowId, nowMs);
      let total = 0;
      for (const [key, value] of entries) {
        total += checkLimits(workflowId, e, key, value.json, e.data.get(key), "values", total);
      }
      for (const [key, value] of entries) write(e, key, value.json, value.length);
      return { version: commit(e, total) };
    });
  }

  deleteAll(workflowId: string, nowMs: number) {
    return this.run(() => {
      const e = this.require(workflowId, nowMs);
      const deletedCount = e.data.size;
      if (deletedCount === 0) return { version: e.version, deletedCount };
      e.data.clear();
      e.lengths.clear();
      return { version: commit(e, -e.usedBytes), deletedCount };
    });
  }

  increment(workflowId: string, key: string, delta: number, nowMs: number) {
    return this.run(() => {
      const e = this.require(workflowId, nowMs);
      const old = e.data.get(key);
      if (old !== undefined && jsonType(old) !== "number") {
        throw wrongType(key, old, typeNeeds.increment);
      }
      const n = (old === undefined ? 0 : Number(old)) + delta;
      if (!Number.isFinite(n)) {
        throw storeErrors.notFinite(key, delta);
      }
      const json = JSON.stringify(n);
      const d = checkLimits(workflowId, e, key, json, old, key);
      write(e, key, json, -1);
      return { version: commit(e, d), json };
    });
  }

  append(workflowId: string, key: string, elements: readonly string[], nowMs: number) {
    return this.run(() => {
      const e = this.require(workflowId, nowMs);
      const old = e.data.get(key);
      const joined = elements.join(",");
      let json: string;
      let length: number;
      if (old === undefined || old === "[]") {
        json = `[${joined}]`;
        length = elements.length;
      } else if (jsonType(old) !== "array") {
        throw wrongType(key, old, typeNeeds.append);
      } else {
        json = `${old.slice(0, -1)},${joined}]`;
        length = (e.lengths.get(key) ?? (JSON.parse(old) as unknown[]).length) + elements.length;
      }
      const d = checkLimits(workflowId, e, key, json, old, key);
      write(e, key, json, length);
      return { version: commit(e, d), length, json };
    });
  }

  addToSet(workflowId: string, key: string, member: string, nowMs: number) {
    return this.run(() => {
      const e = this.require(workflowId, nowMs);
      const old = e.data.get(key);
      let json: string;
      let size: number;
      if (old === undefined || old === "[]") {
        json = `[${member}]`;
        size = 1;
      } else if (jsonType(old) !== "array") {
        throw wrongType(key, old, typeNeeds.addToSet);
      } else {
        // Stored arrays are canonical JSON, so re-encoding an element canonically gives its text.
        const elements = (JSON.parse(old) as JsonValue[]).map(canonicalJson);
        if (elements.some((x) => jsonEqual(x, member))) {
          return { added: false, version: e.version, size: elements.length, json: old };
        }
        json = `${old.slice(0, -1)},${member}]`;
        size = elements.length + 1;
      }
      const d = checkLimits(workflowId, e, key, json, old, key);
      write(e, key, json, size);
      return { added: true, version: commit(e, d), size, json };
    });
  }

  compareAndSwap(
    workflowId: string,
    key: string,
    expected: string | undefined,
    next: StoredValue,
    nowMs: number,
  ) {
    return this.run(() => {
      const e = this.require(workflowId, nowMs);
      const old = e.data.get(key);
      const match =
        expected === undefined ? old === undefined : old !== undefined && jsonEqual(old, expected);
      if (!match) return { swapped: false, version: e.version, current: old };
      const d = checkLimits(workflowId, e, key, next.json, old, key);
      write(e, key, next.json, next.length);
      return { swapped: true, version: commit(e, d), current: next.json };
    });
  }

  private find(workflowId: string, nowMs: number): Entry | undefined {
    const e = this.states.get(workflowId);
    if (e?.expireTimeMs !== undefined && e.expireTimeMs <= nowMs) {
      this.states.delete(workflowId);
      return undefined;
    }
    return e;
  }

  private require(workflowId: string, nowMs: number): Entry {
    const e = this.find(workflowId, nowMs);
    if (e === undefined) {
      throw storeErrors.noState(workflowId);
    }
    return e;
  }

  /** Runs a synchronous step, turning a throw into a rejected promise like the Redis store. */
  private run<T>(step: () => T): Promise<T> {
    try {
      return Promise.resolve(step());
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }
}

function toMeta(workflowId: string, e: Entry): StateMeta {
  return {
    workflowId,
    version: e.version,
    keyCount: e.data.size,
    usedBytes: e.usedBytes,
    limits: { ...e.limits },
    createTimeMs: e.createTimeMs,
    expireTimeMs: e.expireTimeMs,
  };
}

/** Returns the change in used bytes, or throws when a limit would be passed. */
function checkLimits(
  workflowId: string,
  e: Entry,
  key: string,
  json: string,
  old: string | undefined,
  field: string,
  pending = 0,
): number {
  const size = bytes(json);
  if (size > e.limits.maxValueBytes) {
    throw storeErrors.valueTooLarge(field, size, e.limits.maxValueBytes);
  }
  const delta = old === undefined ? size + bytes(key) : size - bytes(old);
  const after = e.usedBytes + pending + delta;
  if (after > e.limits.maxWorkflowBytes) {
    throw storeErrors.workflowTooLarge(workflowId, field, after, e.limits.maxWorkflowBytes);
  }
  return delta;
}

function write(e: Entry, key: string, json: string, length: number): void {
  e.data.set(key, json);
  if (length >= 0) e.lengths.set(key, length);
  else e.lengths.delete(key);
}

function commit(e: Entry, delta: number): number {
  e.usedBytes += delta;
  return ++e.version;
}

type JsonType = "string" | "array" | "object" | "boolean" | "null" | "number";

function jsonType(json: string): JsonType {
  switch (json[0]) {
    case '"':
      return "string";
    case "[":
      return "array";
    case "{":
      return "object";
    case "t":
    case "f":
      return "boolean";
    case "n":
      return "null";
    default:
      return "number";
  }
}

function jsonEqual(a: string, b: string): boolean {
  return (
    a === b || (jsonType(a) === "number" && jsonType(b) === "number" && Number(a) === Number(b))
  );
}

function wrongType(key: string, old: string, needs: string): FailedPreconditionError {
  return storeErrors.wrongType(key, jsonType(old), needs);
}
