import { fromJson, type DescEnum, type DescField, type DescMessage } from "@bufbuild/protobuf";
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";

/**
 * Where a JSON document fails to decode as a message, and why, in words a person writing a
 * workflow file understands: protobuf-es's own error names a type (`cannot decode enum
 * agentainer.workflow.v1.StepKind from JSON: "STEP_KIND_MAPP"`) but not the field path. This
 * decodes the document field by field, descending into the part that fails.
 */
export interface JsonProblem {
  /** `steps[0].kind` */
  path: string;
  /** `unknown value "mapp" (expected one of task, parallel, map, reduce)` */
  problem: string;
}

export type PathPart = string | number;

/** The value the user wrote at a path (before any normalisation), when known. */
export type RawLookup = (path: readonly PathPart[]) => JsonValue | undefined;

export function formatPath(parts: readonly PathPart[]): string {
  return parts.map((p, i) => (typeof p === "number" ? `[${p}]` : i === 0 ? p : `.${p}`)).join("");
}

const isObject = (v: JsonValue): v is JsonObject =>
  v !== null && typeof v === "object" && !Array.isArray(v);

/** Well-known types have their own JSON forms (Duration "30s", Struct any mapping): leaves. */
const isLeafMessage = (m: DescMessage) => m.typeName.startsWith("google.protobuf.");

export function locateJsonProblem(
  desc: DescMessage,
  json: JsonValue,
  raw: RawLookup = () => undefined,
): JsonProblem | undefined {
  const found = inMessage(desc, json, []);
  if (found === undefined) return undefined;
  return { path: formatPath(found.path), problem: found.problem(raw(found.path)) };
}

interface Found {
  path: PathPart[];
  problem(raw: JsonValue | undefined): string;
}

function tryDecode(desc: DescMessage, json: JsonValue): Error | undefined {
  try {
    fromJson(desc, json);
    return undefined;
  } catch (err) {
    return err as Error;
  }
}

function inMessage(desc: DescMessage, json: JsonValue, path: PathPart[]): Found | undefined {
  if (!isObject(json)) {
    return { path, problem: () => `expected a mapping, got ${describe(json)}` };
  }
  const fields = new Map<string, DescField>();
  for (const [key, value] of Object.entries(json)) {
    const field = desc.fields.find((f) => f.name === key || f.jsonName === key);
    if (field === undefined) {
      return { path: [...path, key], problem: () => unknownField(desc, key) };
    }
    if (value !== null) fields.set(key, field);
  }
  for (const oneof of desc.oneofs) {
    const set = [...fields].filter(([, f]) => f.oneof === oneof).map(([k]) => k);
    if (set.length > 1) {
      return {
        path: [...path, set[1] as string],
        problem: () => `only one of ${set.join(", ")} may be set`,
      };
    }
  }
  for (const [key, field] of fields) {
    const value = json[key] as JsonValue;
    const err = tryDecode(desc, { [key]: value });
    if (err === undefined) continue;
    return inField(desc, key, field, value, [...path, key], err);
  }
  return undefined;
}

function inField(
  parent: DescMessage,
  key: string,
  field: DescField,
  value: JsonValue,
  path: PathPart[],
  err: Error,
): Found {
  switch (field.fieldKind) {
    case "message":
      return inValue(field.message, value, path, err);
    case "enum":
      return { path, problem: (raw) => enumProblem(field.enum, raw ?? value) };
    case "scalar":
      return { path, problem: () => typeProblem(err) };
    case "list": {
      if (!Array.isArray(value))
        return { path, problem: () => `expected a list, got ${describe(value)}` };
      for (const [i, item] of value.entries()) {
        const e = tryDecode(parent, { [key]: [item] });
        if (e === undefined) continue;
        const at = [...path, i];
        if (field.listKind === "message") return inValue(field.message, item, at, e);
        if (field.listKind === "enum")
          return { path: at, problem: (raw) => enumProblem(field.enum, raw ?? item) };
        return { path: at, problem: () => typeProblem(e) };
      }
      return { path, problem: () => typeProblem(err) };
    }
    case "map": {
      if (!isObject(value))
        return { path, problem: () => `expected a mapping, got ${describe(value)}` };
      for (const [k, v] of Object.entries(value)) {
        const e = tryDecode(parent, { [key]: { [k]: v } });
        if (e === undefined) continue;
        const at = [...path, k];
        if (field.mapKind === "message") return inValue(field.message, v, at, e);
        if (field.mapKind === "enum")
          return { path: at, problem: (raw) => enumProblem(field.enum, raw ?? v) };
        return { path: at, problem: () => typeProblem(e) };
      }
      return { path, problem: () => typeProblem(err) };
    }
  }
}

/** A message-typed value: descend into it, or explain a well-known type's own form. */
function inValue(desc: DescMessage, value: JsonValue, path: PathPart[], err: Error): Found {
  if (desc.typeName === "google.protobuf.Duration") {
    return {
      path,
      problem: (raw) =>
        `${describe(raw ?? value)} is not a duration (use e.g. 500ms, 30s, 5m, 2h, 1d, or seconds)`,
    };
  }
  if (isLeafMessage(desc)) return { path, problem: () => typeProblem(err) };
  return inMessage(desc, value, path) ?? { path, problem: () => typeProblem(err) };
}

function enumProblem(e: DescEnum, value: JsonValue): string {
  const prefix = (e.sharedPrefix ?? "").toUpperCase();
  const names = e.values
    .filter((v) => v.number !== 0)
    .map((v) => (v.name.startsWith(prefix) ? v.name.slice(prefix.length) : v.name).toLowerCase());
  const shown =
    typeof value === "string" && value.toUpperCase().startsWith(prefix) && prefix !== ""
      ? value.slice(prefix.length).toLowerCase()
      : value;
  return `unknown value ${describe(shown)} (expected one of ${names.join(", ")})`;
}

/** protobuf-es's `… from JSON: expected number (uint32), got "x"`, in plainer words. */
function typeProblem(err: Error): string {
  const detail = err.message
    .replace(/^cannot decode [^:]+ from JSON: /, "")
    .replace(/^map entry "[^"]*": /, "")
    .replace(/expected Array/, "expected a list")
    .replace(/expected object/, "expected a mapping");
  return detail;
}

function describe(v: JsonValue | undefined): string {
  if (v === undefined) return "nothing";
  if (Array.isArray(v)) return "a list";
  if (v !== null && typeof v === "object") return "a mapping";
  return JSON.stringify(v);
}

function unknownField(desc: DescMessage, key: string): string {
  const names = desc.fields.map((f) => f.name);
  const close = names
    .map((n) => ({ n, d: distance(n, key.toLowerCase()) }))
    .filter((x) => x.d <= Math.max(1, Math.floor(x.n.length / 3)))
    .sort((a, b) => a.d - b.d)[0];
  return close === undefined
    ? `unknown field (known: ${names.join(", ")})`
    : `unknown field (did you mean "${close.n}"?)`;
}

/** Levenshtein distance. */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(
        (prev[j] as number) + 1,
        (row[j - 1] as number) + 1,
        (prev[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    prev = row;
  }
  return prev[b.length] as number;
}
