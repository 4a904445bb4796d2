import { fromJson, type JsonValue } from "@bufbuild/protobuf";
import { ValueSchema, type Value } from "@bufbuild/protobuf/wkt";
import { InvalidArgumentError } from "./errors.js";

export type { JsonValue } from "@bufbuild/protobuf";

/**
 * Converts a google.protobuf.Value from a request into plain JSON, rejecting what JSON cannot
 * hold (NaN, Infinity) and values with no kind set. `field` names the request field in errors.
 */
export function valueToJson(value: Value | undefined, field: string): JsonValue {
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
    case "listValue":
      return kind.value.values.map((v, i) => valueToJson(v, `${field}[${i}]`));
    case "structValue": {
      // A null prototype keeps a field named "__proto__" an ordinary key.
      const out = Object.create(null) as { [k: string]: JsonValue };
      for (const [k, v] of Object.entries(kind.value.fields)) {
        out[k] = valueToJson(v, `${field}.${k}`);
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
 * JSON object directly), which may still hold NaN or Infinity from the binary encoding.
 */
export function checkJson(value: JsonValue, field: string): JsonValue {
  if (typeof value === "number" && !Number.isFinite(value)) {
    throw new InvalidArgumentError(`${field} is ${value}; JSON numbers must be finite`, { field });
  }
  if (Array.isArray(value)) value.forEach((v, i) => checkJson(v, `${field}[${i}]`));
  else if (value !== null && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) checkJson(v, `${field}.${k}`);
  }
  return value;
}
