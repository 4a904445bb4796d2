import { randomUUID } from "node:crypto";
import {
  InvalidArgumentError,
  PermissionDeniedError,
  ResourceExhaustedError,
} from "../../lib/errors.js";
import { checkId } from "../../lib/ids.js";
import { canonicalJson, type JsonValue } from "../../lib/json-value.js";
import { checkWorkflowId } from "../state/validate.js";
import { reservedEnvPrefix, reservedLabelPrefix } from "./contract.js";
import type { Limits, Network } from "./runtime/runtime.js";
import type { TaskRef } from "./task.js";

const idPattern = /^[A-Za-z0-9_.-]{1,128}$/;
const envNamePattern = /^[A-Za-z_][A-Za-z0-9_]*$/;
const controlCharacters = /[\u0000-\u001f\u007f]/;
const maxTimeoutMs = 7 * 24 * 3600 * 1000;
const MiB = 1024 * 1024;

/** Server-side defaults and caps the checks need. */
export interface ValidationLimits {
  defaults: Limits;
  defaultTimeoutMs: number;
  maxInputBytes: number;
  allowHostNetwork: boolean;
  hostCpus: number;
  hostMemoryBytes: number;
}

export interface TaskRefInput {
  workflowId: string;
  stepId: string;
  taskId: string;
  attempt: number;
  index: number;
}

/** Checks a TaskRef and fills its defaults (a generated task id, attempt 1). */
export function checkTaskRef(ref: TaskRefInput | undefined, field = "ref"): TaskRef {
  if (ref === undefined) throw new InvalidArgumentError(`${field} is required`, { field });
  checkWorkflowId(ref.workflowId);
  if (ref.stepId === "" || ref.stepId.length > 128 || controlCharacters.test(ref.stepId)) {
    throw new InvalidArgumentError(
      `${field}.step_id must be 1 to 128 characters without control characters`,
      { field: `${field}.step_id` },
    );
  }
  if (ref.taskId !== "" && !idPattern.test(ref.taskId)) {
    throw new InvalidArgumentError(
      `${field}.task_id "${ref.taskId.slice(0, 140)}" is invalid; use 1 to 128 characters of A-Z, a-z, 0-9, _, . and -`,
      { field: `${field}.task_id` },
    );
  }
  // A task's mailbox is a directory named by its id: "." and ".." would name the mailboxes'
  // parent (every other task's files, mounted into this one, and removed with it).
  if (ref.taskId === "." || ref.taskId === "..") {
    throw new InvalidArgumentError(
      `${field}.task_id "${ref.taskId}" is invalid: "." and ".." are not ids; use other characters too`,
      { field: `${field}.task_id` },
    );
  }
  return {
    workflowId: ref.workflowId,
    stepId: ref.stepId,
    taskId: ref.taskId === "" ? `task-${randomUUID()}` : ref.taskId,
    attempt: ref.attempt === 0 ? 1 : ref.attempt,
    index: ref.index,
  };
}

export function checkAgentId(agentId: string, field = "agent_id"): void {
  checkId(agentId, field);
}

export function checkImage(image: string, field = "spec.image"): void {
  if (image.trim() === "" || controlCharacters.test(image) || /\s/.test(image)) {
    throw new InvalidArgumentError(
      image === "" ? `${field} is required` : `${field} "${image}" is not an image reference`,
      { field },
    );
  }
}

/** A command or args list: no NUL; when `command` is set its first element is not empty. */
export function checkArgv(argv: readonly string[], field: string, requireFirst: boolean): void {
  if (requireFirst && argv.length === 0) {
    throw new InvalidArgumentError(`${field} is required: the program to run and its arguments`, {
      field,
    });
  }
  if (argv.length > 0 && argv[0] === "" && field.endsWith("command")) {
    throw new InvalidArgumentError(`${field}[0] is empty; it must name the program to run`, {
      field: `${field}[0]`,
    });
  }
  argv.forEach((a, i) => {
    if (a.includes("\u0000")) {
      throw new InvalidArgumentError(`${field}[${i}] contains a NUL character`, {
        field: `${field}[${i}]`,
      });
    }
  });
}

export function checkEnv(env: Readonly<Record<string, string>>, field: string): void {
  const entries = Object.entries(env);
  if (entries.length > 1024) {
    throw new InvalidArgumentError(`${field} has ${entries.length} entries; at most 1024`, {
      field,
    });
  }
  for (const [name, value] of entries) {
    if (!envNamePattern.test(name)) {
      throw new InvalidArgumentError(
        `${field} name "${name}" is invalid; use [A-Za-z_][A-Za-z0-9_]*`,
        { field: `${field}.${name}` },
      );
    }
    if (name.toUpperCase().startsWith(reservedEnvPrefix)) {
      throw new InvalidArgumentError(
        `${field} name "${name}" is reserved: names starting with ${reservedEnvPrefix} are set by the Executor`,
        { field: `${field}.${name}` },
      );
    }
    if (value.includes("\u0000")) {
      throw new InvalidArgumentError(`${field}.${name} contains a NUL character`, {
        field: `${field}.${name}`,
      });
    }
  }
}

export function checkLabels(labels: Readonly<Record<string, string>>, field: string): void {
  const entries = Object.entries(labels);
  if (entries.length > 64) {
    throw new InvalidArgumentError(`${field} has ${entries.length} entries; at most 64`, { field });
  }
  for (const [key] of entries) {
    if (key === "" || controlCharacters.test(key)) {
      throw new InvalidArgumentError(`${field} has an empty or unprintable key`, { field });
    }
    if (key.startsWith(reservedLabelPrefix)) {
      throw new InvalidArgumentError(
        `${field} key "${key}" is reserved: keys starting with "${reservedLabelPrefix}" are set by the Executor`,
        { field: `${field}.${key}` },
      );
    }
  }
}

export function checkWorkingDir(dir: string, field: string): void {
  if (dir !== "" && (!dir.startsWith("/") || dir.includes("\u0000"))) {
    throw new InvalidArgumentError(`${field} "${dir}" must be an absolute path`, { field });
  }
}

/** Fills zero limits with the defaults and checks the ranges documented in executor.proto. */
export function checkLimits(
  given: Partial<Limits> | undefined,
  v: ValidationLimits,
  field: string,
): Limits {
  const cpuMillis = given?.cpuMillis || v.defaults.cpuMillis;
  const memoryBytes = given?.memoryBytes || v.defaults.memoryBytes;
  const pids = given?.pids || v.defaults.pids;
  const maxCpu = v.hostCpus * 1000;
  if (!Number.isInteger(cpuMillis) || cpuMillis < 10 || cpuMillis > maxCpu) {
    throw new InvalidArgumentError(
      `${field}.cpu_millis is ${cpuMillis}; use 10 to ${maxCpu} (thousandths of a core, this host has ${v.hostCpus} cores), or 0 for the default`,
      { field: `${field}.cpu_millis` },
    );
  }
  if (!Number.isInteger(memoryBytes) || memoryBytes < 6 * MiB || memoryBytes > v.hostMemoryBytes) {
    throw new InvalidArgumentError(
      `${field}.memory_bytes is ${memoryBytes}; use 6291456 (6 MiB) to ${v.hostMemoryBytes} (this host's memory), or 0 for the default`,
      { field: `${field}.memory_bytes` },
    );
  }
  if (!Number.isInteger(pids) || pids < 1 || pids > 4194304) {
    throw new InvalidArgumentError(
      `${field}.pids is ${pids}; use 1 to 4194304, or 0 for the default`,
      {
        field: `${field}.pids`,
      },
    );
  }
  return { cpuMillis, memoryBytes, pids };
}

export function checkTimeout(ms: number, v: ValidationLimits, field: string): number {
  if (ms > maxTimeoutMs) {
    throw new InvalidArgumentError(`${field} is longer than 7 days`, { field });
  }
  return ms === 0 ? v.defaultTimeoutMs : ms;
}

export function checkNetwork(network: Network, v: ValidationLimits, field: string): Network {
  if (network === "host" && !v.allowHostNetwork) {
    throw new PermissionDeniedError(
      `${field} NETWORK_MODE_HOST is not allowed on this Executor (set EXECUTOR_ALLOW_HOST_NETWORK=true to allow it)`,
      { field },
    );
  }
  return network;
}

/** The input's canonical JSON, checked against the size limit. */
export function checkInput(input: JsonValue, v: ValidationLimits, field: string): string {
  const json = canonicalJson(input);
  const size = Buffer.byteLength(json);
  if (size > v.maxInputBytes) {
    throw new ResourceExhaustedError(
      `${field} is ${size} bytes of JSON; this Executor accepts at most ${v.maxInputBytes} (EXECUTOR_MAX_INPUT_BYTES): pass large data through the workflow state or a shared volume`,
      { field },
    );
  }
  return json;
}
