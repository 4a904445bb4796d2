import { create } from "@bufbuild/protobuf";
import { NullValue, ValueSchema, type Value } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../../lib/errors.js";
import {
  canonicalJson,
  checkJson,
  jsonToValue,
  maxJsonDepth,
  nestsDeeperThan,
  valueToJson,
  type JsonValue,
} from "../../lib/json-value.js";

const num = (value: number): Value => create(ValueSchema, { kind: { case: "numberValue", value } });
const str = (value: string): Value => create(ValueSchema, { kind: { case: "stringValue", value } });
const list = (...values: Value[]): Value =>
  create(ValueSchema, { kind: { case: "listValue", value: { values } } });
const struct = (fields: Record<string, Value>): Value =>
  create(ValueSchema, { kind: { case: "structValue", value: { fields } } });
const unset = (): Value => create(ValueSchema);

/** Calls fn and returns the InvalidArgumentError it throws; fails the test when it does not. */
function invalidArgument(fn: () => unknown): InvalidArgumentError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidArgumentError);
    return err as InvalidArgumentError;
  }
  throw new Error("expected an InvalidArgumentError");
}

describe("canonicalJson", () => {
  it("writes scalars as JSON", () => {
    expect(canonicalJson(null)).toBe("null");
    expect(canonicalJson(true)).toBe("true");
    expect(canonicalJson(false)).toBe("false");
    expect(canonicalJson(1.5)).toBe("1.5");
    expect(canonicalJson('a"b\\c\n')).toBe('"a\\"b\\\\c\\n"');
  });

  it("writes numbers in JavaScript's shortest form", () => {
    expect(canonicalJson(1.0)).toBe("1");
    expect(canonicalJson(0.1 + 0.2)).toBe("0.30000000000000004");
    expect(canonicalJson(1e21)).toBe("1e+21");
    expect(canonicalJson(-2.5e-7)).toBe("-2.5e-7");
  });

  it("writes -0 as 0, at the top and inside arrays and objects", () => {
    expect(canonicalJson(-0)).toBe("0");
    expect(canonicalJson([-0, 0])).toBe("[0,0]");
    expect(canonicalJson({ a: -0, b: { c: [-0] } })).toBe('{"a":0,"b":{"c":[0]}}');
  });

  it("writes no whitespace", () => {
    expect(canonicalJson({ a: [1, 2, { b: "x y" }] })).toBe('{"a":[1,2,{"b":"x y"}]}');
  });

  it("sorts object keys at every depth and keeps array order", () => {
    const value: JsonValue = {
      zebra: 1,
      apple: { mango: [3, 1, 2], banana: { y: null, x: true } },
      list: [{ b: 1, a: 2 }],
    };
    expect(canonicalJson(value)).toBe(
      '{"apple":{"banana":{"x":true,"y":null},"mango":[3,1,2]},"list":[{"a":2,"b":1}],"zebra":1}',
    );
  });

  it("sorts integer-like keys as text, not as numbers", () => {
    expect(canonicalJson({ "10": "ten", b: "b", "2": "two", "1": "one", a: "a" })).toBe(
      '{"1":"one","10":"ten","2":"two","a":"a","b":"b"}',
    );
  });

  it("sorts uppercase before lowercase (code-unit order)", () => {
    expect(canonicalJson({ b: 1, B: 2, a: 3, A: 4 })).toBe('{"A":4,"B":2,"a":3,"b":1}');
  });

  it("keeps unicode keys and values as text, escaping only what JSON requires", () => {
    expect(canonicalJson({ ключ: "значение", é: "😀", "\u0001": "\u2028" })).toBe(
      '{"\\u0001":"\u2028","é":"😀","ключ":"значение"}',
    );
  });

  it("gives the same text for objects whose keys were inserted in a different order", () => {
    const left: JsonValue = { a: 1, b: { c: [1, { d: 2, e: 3 }], f: "g" } };
    const right: JsonValue = { b: { f: "g", c: [1, { e: 3, d: 2 }] }, a: 1 };
    expect(canonicalJson(left)).toBe(canonicalJson(right));
  });

  it("gives different text for values that differ", () => {
    expect(canonicalJson({ a: [1, 2] })).not.toBe(canonicalJson({ a: [2, 1] }));
    expect(canonicalJson({ a: 1 })).not.toBe(canonicalJson({ a: "1" }));
    expect(canonicalJson({ a: null })).not.toBe(canonicalJson({}));
  });

  it("produces text that parses back to an equal value", () => {
    const value: JsonValue = { n: [1, -2.5, 0], s: "√", o: { t: true, nul: null }, e: [] };
    expect(JSON.parse(canonicalJson(value))).toEqual(value);
  });
});

describe("valueToJson", () => {
  it("converts each kind of Value", () => {
    expect(
      valueToJson(
        create(ValueSchema, { kind: { case: "nullValue", value: NullValue.NULL_VALUE } }),
        "v",
      ),
    ).toBeNull();
    expect(
      valueToJson(create(ValueSchema, { kind: { case: "boolValue", value: true } }), "v"),
    ).toBe(true);
    expect(
      valueToJson(create(ValueSchema, { kind: { case: "boolValue", value: false } }), "v"),
    ).toBe(false);
    expect(valueToJson(str("hi"), "v")).toBe("hi");
    expect(valueToJson(str(""), "v")).toBe("");
    expect(valueToJson(num(-3.25), "v")).toBe(-3.25);
    expect(valueToJson(num(0), "v")).toBe(0);
    expect(valueToJson(list(), "v")).toEqual([]);
    expect(valueToJson(struct({}), "v")).toEqual({});
  });

  it("converts nested lists and structs", () => {
    const value = struct({ a: list(num(1), str("x"), struct({ b: list() })), c: struct({}) });
    expect(valueToJson(value, "v")).toEqual({ a: [1, "x", { b: [] }], c: {} });
  });

  it("rejects a missing value naming the field", () => {
    const err = invalidArgument(() => valueToJson(undefined, "new_value"));
    expect(err.field).toBe("new_value");
    expect(err.message).toBe("new_value is required");
  });

  it.each([
    ["NaN", Number.NaN],
    ["Infinity", Number.POSITIVE_INFINITY],
    ["-Infinity", Number.NEGATIVE_INFINITY],
  ])("rejects %s naming the field", (shown, value) => {
    const err = invalidArgument(() => valueToJson(num(value), "value"));
    expect(err.field).toBe("value");
    expect(err.message).toBe(`value is ${shown}; JSON numbers must be finite`);
    expect(err.kind).toBe("invalid_argument");
  });

  it("names the path of a non-finite number deep inside lists and structs", () => {
    const value = list(num(1), num(2), struct({ a: num(Number.NaN) }));
    const err = invalidArgument(() => valueToJson(value, "values"));
    expect(err.field).toBe("values[2].a");
    expect(err.message).toContain("values[2].a is NaN");
  });

  it("rejects a Value with no kind set, naming the path and the kinds to choose from", () => {
    const err = invalidArgument(() => valueToJson(struct({ x: list(num(1), unset()) }), "member"));
    expect(err.field).toBe("member.x[1]");
    expect(err.message).toMatch(
      /^member\.x\[1\] has no kind set; set one of null_value, number_value/,
    );
  });

  it("rejects a top-level Value with no kind set", () => {
    expect(invalidArgument(() => valueToJson(unset(), "value")).field).toBe("value");
  });
});

describe("jsonToValue", () => {
  it.each<[string, JsonValue]>([
    ["null", null],
    ["true", true],
    ["a number", -12.5],
    ["a string", "text with ünïcødé"],
    ["an empty list", []],
    ["an empty object", {}],
    ["a nested document", { a: [1, "two", { three: [null, false] }], b: { c: {} } }],
  ])("round-trips %s through valueToJson", (_name, json) => {
    expect(valueToJson(jsonToValue(json), "value")).toEqual(json);
  });

  it("produces the Value kinds a client would build", () => {
    expect(jsonToValue("x").kind).toEqual({ case: "stringValue", value: "x" });
    expect(jsonToValue(2).kind).toEqual({ case: "numberValue", value: 2 });
    expect(jsonToValue(null).kind.case).toBe("nullValue");
    expect(jsonToValue([1]).kind.case).toBe("listValue");
    expect(jsonToValue({ a: 1 }).kind.case).toBe("structValue");
  });

  it("keeps canonical text equal across the round trip", () => {
    const json: JsonValue = { z: [3, { y: 1, x: 2 }], a: "b" };
    expect(canonicalJson(valueToJson(jsonToValue(json), "v"))).toBe(canonicalJson(json));
  });
});

describe("checkJson", () => {
  it("returns finite JSON unchanged (the same object)", () => {
    const value: JsonValue = { a: [1, 2.5, { b: null, c: "d", e: true }] };
    expect(checkJson(value, "values")).toBe(value);
  });

  it.each([
    [Number.NaN, "NaN"],
    [Number.POSITIVE_INFINITY, "Infinity"],
    [Number.NEGATIVE_INFINITY, "-Infinity"],
  ])("rejects %s at the top level naming the field", (value, shown) => {
    const err = invalidArgument(() => checkJson(value, "values"));
    expect(err.field).toBe("values");
    expect(err.message).toBe(`values is ${shown}; JSON numbers must be finite`);
  });

  it("names the path of a non-finite number inside objects and arrays", () => {
    const err = invalidArgument(() =>
      checkJson({ ok: 1, a: { list: [0, 1, Number.POSITIVE_INFINITY] } }, "values"),
    );
    expect(err.field).toBe("values.a.list[2]");
    expect(err.message).toBe("values.a.list[2] is Infinity; JSON numbers must be finite");
  });

  it("names the path through arrays of objects like values[2].a", () => {
    const err = invalidArgument(() => checkJson([{}, {}, { a: Number.NaN }], "values"));
    expect(err.field).toBe("values[2].a");
  });
});

describe("the nesting limit of request values", () => {
  /** `levels` lists around a number, as a Value and as JSON. */
  const nestedValue = (levels: number): Value =>
    levels === 0 ? num(1) : list(nestedValue(levels - 1));
  const nestedJson = (levels: number): JsonValue =>
    JSON.parse("[".repeat(levels) + "1" + "]".repeat(levels));

  it(`takes ${maxJsonDepth} levels of lists and structs, and refuses one more, naming the field`, () => {
    expect(valueToJson(nestedValue(maxJsonDepth), "input")).toEqual(nestedJson(maxJsonDepth));
    const err = invalidArgument(() => valueToJson(nestedValue(maxJsonDepth + 1), "input"));
    expect(err.message).toBe(
      "input nests deeper than 32 levels of arrays and objects; send a flatter value (or the deep part as a JSON string)",
    );
    expect(err.field).toBe("input");
    // Structs count as lists do.
    let deep: Value = str("x");
    for (let i = 0; i <= maxJsonDepth; i++) deep = i % 2 ? struct({ a: deep }) : list(deep);
    expect(invalidArgument(() => valueToJson(deep, "value")).field).toBe("value");
  });

  it("checks JSON decoded from a Struct field the same way", () => {
    expect(checkJson(nestedJson(maxJsonDepth), "values.k")).toEqual(nestedJson(maxJsonDepth));
    expect(invalidArgument(() => checkJson(nestedJson(maxJsonDepth + 1), "values.k")).field).toBe(
      "values.k",
    );
  });

  it("counts depth, not size: a wide flat value passes", () => {
    const wide = Array.from({ length: 100_000 }, (_, i) => [i]);
    expect(nestsDeeperThan(wide, 2)).toBe(false);
    expect(nestsDeeperThan(wide, 1)).toBe(true);
  });
});
