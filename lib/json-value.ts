import { fromJson, type JsonValue } from "@bufbuild/protobuf";
import { ValueSchema, type Value } from "@bufbuild/protobuf/wkt";
import { InvalidArgumentError } from "./errors.js";

export type { JsonValue } from "@bufbuild/protobuf";

/**
 * How many arrays and objects one JSON value may nest inside one another, wherever it enters:
 * request values, state values, agents' results. As a google.protobuf.Value each level costs two
 * messages, and gRPC's C++, Java and Python runtimes refuse a message nested past 100: a value of
 * 49 levels inside a response fails that response for those clients (every ListTasks or GetAll
 * that includes it). 32 leaves room for the messages around a value.
 */
export const maxJsonDepth = 32;

/** The error for a request value nesting deeper than maxJsonDepth; `field` names it. */
function tooDeep(field: string): InvalidArgumentError {
  return new InvalidArgumentError(
    `${field} nests deeper than ${maxJsonDepth} levels of arrays and objects; ` +
      "send a flatter value (or the deep part as a JSON string)",
    { field },
  );
}

/**
 * Whether `value` nests more than `max` arrays and objects inside one another. Walks without
 * recursion: JSON.parse takes any depth, the call stack does not.
 */
export function nestsDeeperThan(value: JsonValue, max: number): boolean {
  if (value === null || typeof value !== "object") return false;
  // Each entry: an array or object, and how many arrays and objects hold it.
  const open: Array<[JsonValue, number]> = [[value, 0]];
  for (let next = open.pop(); next !== undefined; next = open.pop()) {
    const [v, around] = next;
    if (around + 1 > max) return true;
    // Only arrays and objects are queued: a large flat value costs no entry per element.
    for (const child of Array.isArray(v) ? v : Object.values(v as object)) {
      if (child !== null && typeof child === "object") open.push([child as JsonValue, around + 1]);
    }
  }
  return false;
}

/**
 * Converts a google.protobuf.Value from a request into plain JSON, rejecting what JSON cannot
 * hold (NaN, Infinity), values with no kind set, and values nesting deeper than maxJsonDepth.
 * `field` names the request field in errors.
 */
export function valueToJson(value: Value | undefined, field: string): JsonValue {
  return convertValue(value, field, 0, field);
}

/**
 * Converts a google.protobuf.Value that a service sent back (a result, a stored value) into plain
 * JSON, without the nesting limit: values were checked where they entered, and one that grew a
 * level since (a list of values at the limit) must still be readable.
 */
export function responseValueToJson(value: Value | undefined, field: string): JsonValue {
  return convertValue(value, field, 0, undefined);
}

/**
 * The depth of an array or object `around` others deep, checked against maxJsonDepth when
 * `limited` names the field the whole value came in (the error names it, not the deep part).
 */
function enter(around: number, limited: string | undefined): number {
  if (limited !== undefined && around + 1 > maxJsonDepth) throw tooDeep(limited);
  return around + 1;
}

/**
 * One walk converts, checks the numbers and counts the depth. It recurses: the wire decoding
 * has bounded the depth already (a value deeper than protobuf's message limit never decodes).
 */
function convertValue(
  value: Value | undefined,
  field: string,
  around: number,
  limited: string | undefined,
): JsonValue {
  if (value === undefined) throw new InvalidArgumentError(`${field} is required`, { field });
  const kind = value.kind;
  switch (kind.case) {
    case "nullValue":
      return null;
    case "boolValue":
    case "stringValue":
      return kind.value;
    case "numberValue":
      if (!Number.isFinite(kind.value)) {
        throw new InvalidArgumentError(`${field} is ${kind.value}; JSON numbers must be finite`, {
          field,
        });
      }
      return kind.value;
    case "listValue": {
      const depth = enter(around, limited);
      return kind.value.values.map((v, i) => convertValue(v, `${field}[${i}]`, depth, limited));
    }
    case "structValue": {
      const depth = enter(around, limited);
      // A null prototype keeps a field named "__proto__" an ordinary key.
      const out = Object.create(null) as { [k: string]: JsonValue };
      for (const [k, v] of Object.entries(kind.value.fields)) {
        out[k] = convertValue(v, `${field}.${k}`, depth, limited);
      }
      return out;
    }
    case undefined:
      throw new InvalidArgumentError(
        `${field} has no kind set; set one of null_value, number_value, string_value, bool_value, struct_value, list_value`,
        { field },
      );
    default: {
      const unknown: never = kind;
      throw new InvalidArgumentError(`${field} has an unknown kind ${String(unknown)}`, { field });
    }
  }
}

/** Plain JSON to google.protobuf.Value. */
export function jsonToValue(json: JsonValue): Value {
  return fromJson(ValueSchema, json);
}

/**
 * Canonical JSON text: object keys sorted, no whitespace, numbers in JavaScript's shortest form.
 * Two values are equal exactly when their canonical texts are equal, which is what lets Redis
 * scripts compare values without parsing them.
 */
export function canonicalJson(value: JsonValue): string {
  if (value === null || typeof value !== "object") {
    if (typeof value === "number" && Object.is(value, -0)) return "0";
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return "[" + value.map(canonicalJson).join(",") + "]";
  const keys = Object.keys(value).sort();
  const parts: string[] = [];
  for (const key of keys) {
    const v = value[key];
    if (v !== undefined) parts.push(JSON.stringify(key) + ":" + canonicalJson(v));
  }
  return "{" + parts.join(",") + "}";
}

/**
 * Checks plain JSON decoded from a google.protobuf.Struct field (protobuf-es maps Struct to a
 * JSON object directly), which may still hold NaN or Infinity from the binary encoding, or nest
 * deeper than maxJsonDepth.
 */
export function checkJson(value: JsonValue, field: string): JsonValue {
  checkDecodedJson(value, field, 0, field);
  return value;
}

/** Like convertValue, one walk for the numbers and the depth of decoded JSON. */
function checkDecodedJson(value: JsonValue, field: string, around: number, root: string): void {
  if (typeof value === "number" && !Number.isFinite(value)) {
    throw new InvalidArgumentError(`${field} is ${value}; JSON numbers must be finite`, { field });
  }
  if (value === null || typeof value !== "object") return;
  const depth = enter(around, root);
  if (Array.isArray(value))
    value.forEach((v, i) => checkDecodedJson(v, `${field}[${i}]`, depth, root));
  else
    for (const [k, v] of Object.entries(value)) checkDecodedJson(v, `${field}.${k}`, depth, root);
}
