import { fileURLToPath } from "node:url";
import type { Redis } from "ioredis";
import { AlreadyExistsError, FailedPreconditionError, NotFoundError } from "../../lib/errors.js";
import { loadScripts, type ScriptRunner } from "../../lib/redis/scripts.js";
import type {
  JobRecord,
  RunChange,
  RunStore,
  StepRecord,
  StoredEvent,
  WorkflowRecord,
} from "./run-store.js";

export const defaultRunKeyPrefix = "agentainer:workflow:";

const scriptNames = ["create", "claim", "apply"] as const;
type ScriptName = (typeof scriptNames)[number];

/** The record's fields, each kept as its own hash field (JSON text; "" for undefined). */
const recordFields = [
  "workflowId",
  "name",
  "labels",
  "request",
  "status",
  "statusMessage",
  "createMs",
  "startMs",
  "endMs",
  "result",
  "resultOmitted",
] as const;

function encodeField(name: string, value: unknown): string {
  if (value === undefined) return "";
  if (name === "request")
    return JSON.stringify(Buffer.from(value as Uint8Array).toString("base64"));
  return JSON.stringify(value);
}

function decodeRecord(raw: Record<string, string>): WorkflowRecord {
  const get = (name: string): unknown => {
    const text = raw[name];
    return text === undefined || text === "" ? undefined : JSON.parse(text);
  };
  return {
    workflowId: get("workflowId") as string,
    name: get("name") as string,
    labels: (get("labels") ?? {}) as Record<string, string>,
    request: new Uint8Array(Buffer.from((get("request") as string | undefined) ?? "", "base64")),
    status: get("status") as WorkflowRecord["status"],
    statusMessage: (get("statusMessage") ?? "") as string,
    createMs: get("createMs") as number,
    startMs: get("startMs") as number | undefined,
    endMs: get("endMs") as number | undefined,
    result: get("result") as WorkflowRecord["result"],
    ...(get("resultOmitted") === true ? { resultOmitted: true } : {}),
  };
}

function encodeEvent(e: { timeMs: number; data: Uint8Array }): string {
  return JSON.stringify({ t: e.timeMs, d: Buffer.from(e.data).toString("base64") });
}

/** Job records carry `undefined`s; JSON drops them, and reading puts them back as absent. */
const jobField = (stepId: string, index: number) => `${stepId}:${index}`;

/**
 * Workflow runs in Redis. Per workflow, under one hash tag (`{wf:<id>}`): a hash of the record
 * and its claim (owner, fencing token, claim expiry), a hash of step records, a hash of job
 * records (field `<step>:<index>`), a list of events (index = sequence - 1), and a hash of MAP
 * item pages (field `<step>:<page>`, JSON text). Every change is
 * one Lua script that checks the token and the expectations first (scripts/).
 */
export class RedisRunStore implements RunStore {
  private readonly scripts: ScriptRunner<ScriptName>;

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string = defaultRunKeyPrefix,
  ) {
    const folder = fileURLToPath(new URL("./scripts/", import.meta.url));
    this.scripts = loadScripts(redis, folder, scriptNames);
  }

  private keys(workflowId: string) {
    const base = `${this.prefix}{wf:${workflowId}}`;
    return {
      wf: `${base}:wf`,
      steps: `${base}:steps`,
      jobs: `${base}:jobs`,
      events: `${base}:events`,
      items: `${base}:items`,
    };
  }

  private get index(): string {
    return `${this.prefix}workflows`;
  }

  async create(
    record: WorkflowRecord,
    events: ReadonlyArray<{ timeMs: number; data: Uint8Array }> = [],
  ): Promise<void> {
    const k = this.keys(record.workflowId);
    const pairs = recordFields.flatMap((f) => [f, encodeField(f, record[f])]);
    const created = await this.scripts.run(
      "create",
      [k.wf, this.index],
      [record.workflowId, recordFields.length, ...pairs, ...events.map(encodeEvent)],
    );
    if (created !== 1) {
      throw new AlreadyExistsError(`workflow "${record.workflowId}" already exists`, {
        field: "workflow_id",
      });
    }
  }

  async get(workflowId: string): Promise<WorkflowRecord> {
    const raw = await this.redis.hgetall(this.keys(workflowId).wf);
    if (raw.workflowId === undefined) {
      throw new NotFoundError(`no workflow "${workflowId}"`, { field: "workflow_id" });
    }
    return decodeRecord(raw);
  }

  async list(): Promise<WorkflowRecord[]> {
    const ids = await this.redis.smembers(this.index);
    const records = await Promise.all(
      ids.map((id) =>
        this.redis
          .hgetall(this.keys(id).wf)
          .then((raw) => (raw.workflowId ? decodeRecord(raw) : undefined)),
      ),
    );
    return records.filter((r): r is WorkflowRecord => r !== undefined);
  }

  async steps(workflowId: string): Promise<StepRecord[]> {
    const raw = await this.redis.hvals(this.keys(workflowId).steps);
    return raw.map((s) => JSON.parse(s) as StepRecord);
  }

  async jobs(
    workflowId: string,
    stepId: string,
    fromIndex: number,
    limit: number,
  ): Promise<JobRecord[]> {
    if (limit <= 0) return [];
    const fields = Array.from({ length: limit }, (_, i) => jobField(stepId, fromIndex + i));
    const raw = await this.redis.hmget(this.keys(workflowId).jobs, ...fields);
    return raw.filter((j): j is string => j !== null).map((j) => JSON.parse(j) as JobRecord);
  }

  async itemPage(workflowId: string, stepId: string, page: number): Promise<string | undefined> {
    const text = await this.redis.hget(this.keys(workflowId).items, `${stepId}:${page}`);
    return text ?? undefined;
  }

  async events(workflowId: string, afterSequence: number, limit: number): Promise<StoredEvent[]> {
    if (limit <= 0) return [];
    const from = Math.max(0, afterSequence);
    const raw = await this.redis.lrange(this.keys(workflowId).events, from, from + limit - 1);
    return raw.map((text, i) => {
      const e = JSON.parse(text) as { t: number; d: string };
      return {
        sequence: from + i + 1,
        timeMs: e.t,
        data: new Uint8Array(Buffer.from(e.d, "base64")),
      };
    });
  }

  async lastSequence(workflowId: string): Promise<number> {
    const k = this.keys(workflowId);
    const [[, exists], [, length]] = (await this.redis
      .multi()
      .exists(k.wf)
      .llen(k.events)
      .exec()) as [[Error | null, number], [Error | null, number]];
    if (exists === 0)
      throw new NotFoundError(`no workflow "${workflowId}"`, { field: "workflow_id" });
    return length;
  }

  async claim(
    workflowId: string,
    owner: string,
    ttlMs: number,
    nowMs: number,
  ): Promise<number | undefined> {
    const r = Number(
      await this.scripts.run("claim", [this.keys(workflowId).wf], [owner, ttlMs, nowMs]),
    );
    if (r === -1) throw new NotFoundError(`no workflow "${workflowId}"`, { field: "workflow_id" });
    return r === 0 ? undefined : r;
  }

  async apply(
    workflowId: string,
    token: number,
    change: RunChange,
  ): Promise<{ applied: boolean; lastSequence: number }> {
    const k = this.keys(workflowId);
    const args: Array<string | number> = [token];
    const expect = change.expect ?? [];
    args.push(expect.length);
    for (const e of expect) args.push(jobField(e.stepId, e.index), e.attempt, e.status);
    const wf = Object.entries(change.workflow ?? {});
    args.push(wf.length);
    for (const [f, v] of wf) args.push(f, encodeField(f, v));
    const steps = change.steps ?? [];
    args.push(steps.length);
    for (const s of steps) args.push(s.stepId, JSON.stringify(s));
    const jobs = change.jobs ?? [];
    args.push(jobs.length);
    for (const j of jobs) args.push(jobField(j.stepId, j.index), JSON.stringify(j));
    const events = change.events ?? [];
    args.push(events.length);
    for (const e of events) args.push(encodeEvent(e));
    const pages = change.itemPages ?? [];
    args.push(pages.length);
    for (const p of pages) args.push(`${p.stepId}:${p.page}`, p.items);
    const r = (await this.scripts.run(
      "apply",
      [k.wf, k.steps, k.jobs, k.events, k.items],
      args,
    )) as number[];
    const code = Number(r[0]);
    if (code === -1)
      throw new NotFoundError(`no workflow "${workflowId}"`, { field: "workflow_id" });
    if (code === -2) {
      throw new FailedPreconditionError(
        `workflow "${workflowId}" is driven by another owner now (token ${r[1]}, not ${token})`,
      );
    }
    return { applied: code === 1, lastSequence: Number(r[1]) };
  }

  async delete(workflowId: string): Promise<boolean> {
    const k = this.keys(workflowId);
    const [[, removed]] = (await this.redis
      .multi()
      .del(k.wf, k.steps, k.jobs, k.events, k.items)
      .srem(this.index, workflowId)
      .exec()) as [[Error | null, number], [Error | null, number]];
    return removed > 0;
  }
}
