/**
 * What the State domain needs from storage. Values cross this boundary as canonical JSON text
 * (lib/json-value.ts `canonicalJson`), so stores compare and measure them without parsing.
 * Every write is atomic, checks the limits before changing anything, and bumps the workflow's
 * version by one exactly when it changes something. Implementations: RedisStateStore (Lua
 * scripts) and InMemoryStateStore; both pass test/state/store-contract.ts.
 *
 * Stores throw the domain errors of lib/errors.ts: NotFoundError (no state for the workflow),
 * FailedPreconditionError (wrong type), ResourceExhaustedError (a limit), InvalidArgumentError
 * (an increment that leaves the finite numbers).
 */
export interface StoredValue {
  /** Canonical JSON text. */
  readonly json: string;
  /** Element count when the value is an array, else -1. */
  readonly length: number;
}

export interface Limits {
  readonly maxWorkflowBytes: number;
  readonly maxValueBytes: number;
}

export interface StateMeta {
  readonly workflowId: string;
  readonly version: number;
  readonly keyCount: number;
  readonly usedBytes: number;
  readonly limits: Limits;
  readonly createTimeMs: number;
  /** Absent when no expiry is scheduled. */
  readonly expireTimeMs: number | undefined;
}

export interface Versioned {
  /** The workflow's state version after the call. */
  readonly version: number;
}

export interface StateStore {
  create(
    workflowId: string,
    limits: Limits,
    nowMs: number,
  ): Promise<{ meta: StateMeta; created: boolean }>;
  describe(workflowId: string, nowMs: number): Promise<StateMeta>;
  /** ttlMs 0 removes a scheduled expiry. */
  expire(workflowId: string, ttlMs: number, nowMs: number): Promise<StateMeta>;
  /** Returns the version the deletion would have had, or undefined when there was no state. */
  drop(workflowId: string, nowMs: number): Promise<Versioned | undefined>;

  get(
    workflowId: string,
    key: string,
    nowMs: number,
  ): Promise<Versioned & { json: string | undefined }>;
  getAll(
    workflowId: string,
    nowMs: number,
  ): Promise<Versioned & { entries: Array<[string, string]> }>;
  set(workflowId: string, key: string, value: StoredValue, nowMs: number): Promise<Versioned>;
  delete(workflowId: string, key: string, nowMs: number): Promise<Versioned & { existed: boolean }>;
  putAll(
    workflowId: string,
    entries: ReadonlyArray<[string, StoredValue]>,
    nowMs: number,
  ): Promise<Versioned>;
  deleteAll(workflowId: string, nowMs: number): Promise<Versioned & { deletedCount: number }>;

  /** `json` is the new value's text. */
  increment(
    workflowId: string,
    key: string,
    delta: number,
    nowMs: number,
  ): Promise<Versioned & { json: string }>;
  /** `elements` are canonical JSON texts, at least one. */
  append(
    workflowId: string,
    key: string,
    elements: readonly string[],
    nowMs: number,
  ): Promise<Versioned & { length: number; json: string }>;
  addToSet(
    workflowId: string,
    key: string,
    member: string,
    nowMs: number,
  ): Promise<Versioned & { added: boolean; size: number; json: string }>;
  /** `expected` undefined means "the key must be absent". `current` is the value after the call. */
  compareAndSwap(
    workflowId: string,
    key: string,
    expected: string | undefined,
    next: StoredValue,
    nowMs: number,
  ): Promise<Versioned & { swapped: boolean; current: string | undefined }>;
}
