import { createHash } from "node:crypto";
import { AgentMode } from "../../gen/agentainer/executor/v1/executor_pb.js";
import type { AgentTemplate } from "../../gen/agentainer/pool/v1/pool_pb.js";
import { InvalidArgumentError } from "../../lib/errors.js";
import { checkId } from "../../lib/ids.js";
import { canonicalJson, type JsonValue } from "../../lib/json-value.js";
import { agentModeToProto, networkFromProto, networkToProto } from "../executor/convert.js";
import { checkArgv, checkEnv, checkImage, checkWorkingDir } from "../executor/validate.js";

/**
 * A pool's AgentTemplate with its defaults resolved (mode exec, network none). Zero limits stay
 * zero: they mean the Executor's defaults, which the Pool does not know, so a template with
 * `cpuMillis: 0` and one naming the Executor's default explicitly are different templates.
 */
export interface Template {
  image: string;
  command: string[];
  args: string[];
  /** Keys in sorted order. */
  env: Record<string, string>;
  workingDir: string;
  /** 0 = the Executor's default, kept as 0. */
  limits: { cpuMillis: number; memoryBytes: number; pids: number };
  network: "none" | "bridge" | "host";
  mode: "exec" | "stream";
}

function modeFromProto(m: AgentMode, field: string): Template["mode"] {
  switch (m) {
    case AgentMode.UNSPECIFIED:
    case AgentMode.EXEC:
      return "exec";
    case AgentMode.STREAM:
      return "stream";
    default:
      throw new InvalidArgumentError(
        `${field} holds an unknown agent mode ${String(m)}; use AGENT_MODE_EXEC or AGENT_MODE_STREAM`,
        { field },
      );
  }
}

/** A ResourceLimits field: 0 (the Executor's default) or a positive whole number. */
function limit(v: bigint | undefined, field: string): number {
  const n = v ?? 0n;
  if (n < 0n || n > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new InvalidArgumentError(
      `${field} is ${n}; use 0 (the Executor's default) to ${Number.MAX_SAFE_INTEGER}`,
      { field },
    );
  }
  return Number(n);
}

/** Checks a request's AgentTemplate and resolves its defaults. */
export function templateFromProto(t: AgentTemplate | undefined): Template {
  if (t === undefined) {
    throw new InvalidArgumentError("template is required", { field: "template" });
  }
  checkImage(t.image, "template.image");
  checkArgv(t.command, "template.command", false);
  checkArgv(t.args, "template.args", false);
  checkEnv(t.env, "template.env");
  checkWorkingDir(t.workingDir, "template.working_dir");
  return {
    image: t.image,
    command: [...t.command],
    args: [...t.args],
    env: Object.fromEntries(Object.entries(t.env).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))),
    workingDir: t.workingDir,
    limits: {
      cpuMillis: limit(t.limits?.cpuMillis, "template.limits.cpu_millis"),
      memoryBytes: limit(t.limits?.memoryBytes, "template.limits.memory_bytes"),
      pids: limit(t.limits?.pids, "template.limits.pids"),
    },
    network: networkFromProto(t.network, "template.network"),
    mode: modeFromProto(t.mode, "template.mode"),
  };
}

/**
 * The template as sent back (Pool.template): defaults resolved, enums never UNSPECIFIED. A plain
 * init object, so it also serves as an ExecutorService AgentSpec (the same fields).
 */
export function templateToProto(t: Template) {
  return {
    image: t.image,
    command: [...t.command],
    args: [...t.args],
    env: { ...t.env },
    workingDir: t.workingDir,
    limits: {
      cpuMillis: BigInt(t.limits.cpuMillis),
      memoryBytes: BigInt(t.limits.memoryBytes),
      pids: BigInt(t.limits.pids),
    },
    network: networkToProto[t.network],
    mode: agentModeToProto[t.mode],
  };
}

/**
 * Pool.template_key: hex SHA-256 of the resolved template's canonical JSON (object keys sorted,
 * so env insertion order does not matter). Equal keys, same template.
 */
export function templateKey(t: Template): string {
  const json: JsonValue = {
    image: t.image,
    command: t.command,
    args: t.args,
    env: t.env,
    workingDir: t.workingDir,
    limits: {
      cpuMillis: t.limits.cpuMillis,
      memoryBytes: t.limits.memoryBytes,
      pids: t.limits.pids,
    },
    network: t.network,
    mode: t.mode,
  };
  return createHash("sha256").update(canonicalJson(json)).digest("hex");
}

/** The id of a pool created without one: `tpl-` and the first 20 hex digits of its template key. */
export function poolIdFor(t: Template): string {
  return `tpl-${templateKey(t).slice(0, 20)}`;
}

/** A pool id: 1 to 128 characters of [A-Za-z0-9_-]. */
export function checkPoolId(id: string, field = "pool_id"): void {
  checkId(id, field);
}
