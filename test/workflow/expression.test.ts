import { describe, expect, it } from "vitest";
import { InvalidArgumentError } from "../../lib/errors.js";
import {
  evaluate,
  evaluateValue,
  parseExpression,
  type EvalContext,
  type Expression,
  type Json,
  type StepView,
} from "../../services/workflow/expression.js";

const field = "steps[2].when";

/** A state reader over a fixed record that logs every key it is asked for. */
function stateOf(values: Record<string, Json>, options: { async?: boolean } = {}) {
  const reads: string[] = [];
  const read = (key: string): Json | Promise<Json> => {
    reads.push(key);
    const value = Object.hasOwn(values, key) ? (values[key] ?? null) : null;
    return options.async === true ? Promise.resolve(value) : value;
  };
  return { read, reads };
}

function step(view: Partial<StepView> = {}): StepView {
  return { output: null, status: "succeeded", succeeded: 1, failed: 0, ...view };
}

function context(overrides: Partial<EvalContext> = {}): EvalContext {
  return {
    state: stateOf({}).read,
    input: null,
    steps: {},
    ...overrides,
  };
}

async function value(source: string, ctx: EvalContext = context()): Promise<Json> {
  return evaluateValue(parseExpression(source, field), ctx);
}

async function holds(source: string, ctx: EvalContext = context()): Promise<boolean> {
  return evaluate(parseExpression(source, field), ctx);
}

/** Parses source, expecting an InvalidArgumentError; returns its message. */
function parseError(source: string): string {
  try {
    parseExpression(source, field);
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as InvalidArgumentError).field).toBe(field);
    return (err as InvalidArgumentError).message;
  }
  throw new Error(`expected ${JSON.stringify(source)} not to parse`);
}

/** The 1-based column named by a parse error. */
function errorColumn(source: string): number {
  const match = /^steps\[2\]\.when: at column (\d+): expected .+ but found .+$/s.exec(
    parseError(source),
  );
  if (match === null) throw new Error(`unexpected message: ${parseError(source)}`);
  return Number(match[1]);
}

describe("literals", () => {
  it("reads JSON-like numbers", async () => {
    expect(await value("0")).toBe(0);
    expect(await value("12")).toBe(12);
    expect(await value("-3.5")).toBe(-3.5);
    expect(await value("1e3")).toBe(1000);
    expect(await value("1E-2")).toBe(0.01);
    expect(await value("2.5e+1")).toBe(25);
    expect(await value("-0")).toBe(-0);
    expect(await value("0.125")).toBe(0.125);
  });

  it("rejects numbers JSON would not accept", () => {
    for (const bad of [
      "+1",
      "01",
      "1.",
      ".5",
      "1e",
      "1e+",
      "- 1",
      "1abc",
      "1.5.2",
      "1_000",
      "--1",
    ]) {
      expect(() => parseExpression(bad, field), bad).toThrow(InvalidArgumentError);
    }
    expect(parseError("1e999")).toMatch(
      /at column 1: .* but found "1e999" \(a number out of range\)$/,
    );
    expect(parseError("01")).toBe(
      'steps[2].when: at column 1: expected a value (a number, a string, true, false, null, state, input, item, steps) or "(" but found "01" (not a valid number)',
    );
  });

  it("reads double- and single-quoted strings with escapes", async () => {
    expect(await value('"abc"')).toBe("abc");
    expect(await value("'abc'")).toBe("abc");
    expect(await value('""')).toBe("");
    expect(await value(`"it's"`)).toBe("it's");
    expect(await value(`'say "hi"'`)).toBe('say "hi"');
    expect(await value(String.raw`"a\"b"`)).toBe('a"b');
    expect(await value(String.raw`'a\'b'`)).toBe("a'b");
    expect(await value(String.raw`'a\"b'`)).toBe('a"b');
    expect(await value(String.raw`"a\\b"`)).toBe("a\\b");
    expect(await value(String.raw`"a\nb\tc"`)).toBe("a\nb\tc");
    expect(await value(String.raw`"\u0041\u00e9\u00E9"`)).toBe("Aéé");
    expect(await value(String.raw`"\ud83d\ude00"`)).toBe("😀");
    expect(await value('"héllo 😀"')).toBe("héllo 😀");
  });

  it("rejects bad escapes, unterminated strings and raw control characters", () => {
    expect(parseError(String.raw`"a\x"`)).toBe(
      String.raw`steps[2].when: at column 3: expected an escape (\", \', \\, \n, \t or \uXXXX) but found "\x"`,
    );
    expect(parseError(String.raw`"\r"`)).toMatch(/at column 2: expected an escape/);
    expect(parseError(String.raw`"\u12"`)).toMatch(
      /at column 2: expected four hex digits after \\u/,
    );
    expect(parseError(String.raw`"\u12g4"`)).toMatch(/at column 2: expected four hex digits/);
    expect(parseError('"abc\\')).toMatch(/at column 5: expected an escape .* but found end/);
    expect(parseError('"abc')).toBe(
      `steps[2].when: at column 5: expected '"' to close the string started at column 1 but found end of expression`,
    );
    expect(parseError("1 == 'abc")).toMatch(
      /at column 10: expected "'" to close the string started at column 6/,
    );
    expect(parseError('"a\nb"')).toMatch(/at column 3: .* but found control character U\+000A/);
  });

  it("reads true, false and null (case-sensitive)", async () => {
    expect(await value("true")).toBe(true);
    expect(await value("false")).toBe(false);
    expect(await value("null")).toBeNull();
    expect(parseError("True")).toMatch(/at column 1: expected a value .* but found "True"/);
    expect(parseError("NULL")).toMatch(/at column 1:/);
  });
});

describe("references", () => {
  const input: Json = {
    a: { b: [10, { c: "deep" }] },
    "with space": 1,
    "dash-ed": 2,
    list: [1, 2, 3],
    true: "keyword key",
  };

  it("reads input with every path form", async () => {
    const ctx = context({ input });
    expect(await value("input", ctx)).toEqual(input);
    expect(await value("input.a.b[1].c", ctx)).toBe("deep");
    expect(await value(`input["a"]['b'][0]`, ctx)).toBe(10);
    expect(await value(`input["with space"]`, ctx)).toBe(1);
    expect(await value("input.dash-ed", ctx)).toBe(2);
    expect(await value("input.list[2]", ctx)).toBe(3);
    expect(await value("input.true", ctx)).toBe("keyword key");
    expect(await value(" input . a\n.b [ 0 ] ", ctx)).toBe(10);
    expect(await value("input", context({ input: [1, 2] }))).toEqual([1, 2]);
    expect(await value("input[1]", context({ input: [1, 2] }))).toBe(2);
  });

  it("reads state keys, with a path into their value", async () => {
    const state = stateOf({ mode: "full", "a/b": 7, obj: { x: [1, 2] }, "my-key": true });
    const ctx = context({ state: state.read });
    expect(await value("state.mode", ctx)).toBe("full");
    expect(await value(`state["a/b"]`, ctx)).toBe(7);
    expect(await value("state.obj.x[1]", ctx)).toBe(2);
    expect(await value(`state['obj']["x"][0]`, ctx)).toBe(1);
    expect(await value("state.my-key", ctx)).toBe(true);
    expect(await value("state.missing", ctx)).toBeNull();
  });

  it("requires a valid key after state", () => {
    expect(parseError("state")).toBe(
      'steps[2].when: at column 6: expected "." or "[" and a key after "state" but found end of expression',
    );
    expect(parseError("state == 1")).toMatch(/at column 7: expected "\." or "\[" and a key/);
    expect(parseError("state[0]")).toMatch(/at column 7: expected a state key \(a string\)/);
    expect(parseError("state.")).toMatch(/at column 7: expected a state key after "state\."/);
    expect(parseError('state[""]')).toMatch(/at column 7: expected a state key \(non-empty/);
    expect(parseError(String.raw`state["a\nb"]`)).toMatch(/at column 7: expected a state key/);
    expect(parseError('state["a"')).toMatch(/at column 10: expected "]" but found end/);
  });

  it("reads item with any path, null when there is none", async () => {
    expect(await value("item", context({ item: { n: [5] } }))).toEqual({ n: [5] });
    expect(await value("item.n[0]", context({ item: { n: [5] } }))).toBe(5);
    expect(await value("item", context())).toBeNull();
    expect(await value("item.n", context())).toBeNull();
  });

  it("rejects malformed path segments", () => {
    expect(parseError("input.")).toMatch(/at column 7: expected a name after "\."/);
    expect(parseError("input.0")).toMatch(
      /at column 7: expected a name after "\." .* found number 0/,
    );
    expect(parseError("input[-1]")).toMatch(
      /at column 7: expected a string or a non-negative integer/,
    );
    expect(parseError("input[1.5]")).toMatch(
      /at column 7: expected a string or a non-negative integer/,
    );
    expect(parseError("input[1e2]")).toMatch(
      /at column 7: expected a string or a non-negative integer/,
    );
    expect(parseError("input[true]")).toMatch(/at column 7: .* but found "true"/);
    expect(parseError("input[a]")).toMatch(/at column 7:/);
    expect(parseError("input[0")).toMatch(/at column 8: expected "]" but found end of expression/);
    expect(parseError("input[]")).toMatch(/at column 7: .* but found "]"/);
    expect(parseError("input[99999999999999999999]")).toMatch(/at column 7:/);
  });

  it("rejects unknown roots", () => {
    expect(parseError("foo")).toBe(
      'steps[2].when: at column 1: expected a value (a number, a string, true, false, null, state, input, item, steps) or "(" but found "foo"',
    );
    expect(parseError("inputs.a")).toMatch(/at column 1: .* found "inputs"/);
    expect(parseError("len(input)")).toMatch(/at column 1: .* found "len"/);
    expect(parseError("1 == $x")).toMatch(/at column 6: .* found "\$"/);
  });
});

describe("steps.<id> references", () => {
  const ctx = context({
    steps: {
      extract: step({ output: { count: 3, rows: [{ id: "r1" }] }, succeeded: 4, failed: 1 }),
      "load-2": step({ status: "skipped", succeeded: 0 }),
      _x: step({ status: "partially_succeeded" }),
    },
  });

  it("reads output (with a path), status, succeeded and failed", async () => {
    expect(await value("steps.extract.output", ctx)).toEqual({ count: 3, rows: [{ id: "r1" }] });
    expect(await value("steps.extract.output.count", ctx)).toBe(3);
    expect(await value("steps.extract.output.rows[0].id", ctx)).toBe("r1");
    expect(await value(`steps.extract.output["rows"][0]["id"]`, ctx)).toBe("r1");
    expect(await value("steps.extract.status", ctx)).toBe("succeeded");
    expect(await value("steps.extract.succeeded", ctx)).toBe(4);
    expect(await value("steps.extract.failed", ctx)).toBe(1);
    expect(await value("steps.load-2.status", ctx)).toBe("skipped");
    expect(await value("steps._x.status", ctx)).toBe("partially_succeeded");
    expect(await value("steps.load-2.output", ctx)).toBeNull();
    expect(await value(`steps.extract["status"]`, ctx)).toBe("succeeded");
  });

  it("is null for a step missing from the context", async () => {
    expect(await value("steps.nope.output.x", ctx)).toBeNull();
    expect(await value("steps.nope.status", ctx)).toBeNull();
    expect(await value("steps.toString.status", ctx)).toBeNull();
  });

  it("supports the skip idiom of the proto", async () => {
    expect(await holds(`steps.load-2.status != "skipped"`, ctx)).toBe(false);
    expect(await holds(`steps.extract.status != "skipped"`, ctx)).toBe(true);
  });

  it("rejects steps.<id> alone, unknown properties and other forms", () => {
    expect(parseError("steps.x")).toBe(
      'steps[2].when: at column 8: expected ".output", ".status", ".succeeded" or ".failed" after "steps.x" but found end of expression',
    );
    expect(parseError("steps.x.foo")).toBe(
      'steps[2].when: at column 9: expected ".output", ".status", ".succeeded" or ".failed" after "steps.x" but found "foo"',
    );
    expect(parseError("steps.x == 1")).toMatch(/at column 9: expected "\.output"/);
    expect(parseError("steps.x.outputs")).toMatch(/at column 9: .* found "outputs"/);
    expect(parseError("steps.x.Output")).toMatch(/at column 9:/);
    expect(parseError('steps.x["foo"]')).toMatch(/at column 9: .* found string "foo"/);
    expect(parseError("steps.x[0]")).toMatch(/at column 9: .* found number 0/);
    expect(parseError("steps.x.1")).toMatch(/at column 9:/);
    expect(parseError("steps")).toMatch(/at column 6: expected "\." and a step id after "steps"/);
    expect(parseError('steps["x"].output')).toMatch(/at column 6: expected "\." and a step id/);
    expect(parseError("steps.1a.output")).toMatch(
      /at column 7: expected a step id after "steps\." but found "1a.output" \(not a valid number\)$/,
    );
    expect(parseError("steps..output")).toMatch(/at column 7: expected a step id/);
  });

  it("rejects a path after status, succeeded and failed", () => {
    expect(parseError("steps.x.status.length")).toMatch(
      /at column 15: expected an operator, "\)" or end of expression \(steps\.x\.status has no properties\) but found "\."/,
    );
    expect(parseError("steps.x.succeeded[0]")).toMatch(/at column 18: .*has no properties/);
    expect(parseError('steps.x.failed["a"]')).toMatch(/at column 15:/);
  });

  it("limits step ids to 63 characters", () => {
    const id63 = "a".repeat(63);
    expect(parseExpression(`steps.${id63}.status`, field).steps).toEqual([id63]);
    expect(parseError(`steps.${"a".repeat(64)}.status`)).toMatch(
      /at column 7: expected a step id of at most 63 characters/,
    );
  });
});

describe("what an expression references", () => {
  it("lists referenced steps once each, in order of first use", () => {
    const e = parseExpression(
      "steps.b.status == 'x' || steps.a.output.n > steps.b.succeeded && !steps.c.failed || steps.a.status",
      field,
    );
    expect(e.steps).toEqual(["b", "a", "c"]);
    expect(e.source).toContain("steps.b.status");
    expect(Object.isFrozen(e)).toBe(true);
    expect(Object.isFrozen(e.steps)).toBe(true);
  });

  it("detects item, state and input anywhere, even where short-circuiting skips them", () => {
    const none = parseExpression("true", field);
    expect([none.usesItem, none.usesState, none.usesInput]).toEqual([false, false, false]);
    expect(none.steps).toEqual([]);
    expect(parseExpression("false && item.x == 1", field).usesItem).toBe(true);
    expect(parseExpression("true || !(item)", field).usesItem).toBe(true);
    expect(parseExpression("steps.item.status", field).usesItem).toBe(false);
    expect(parseExpression("input.item", field).usesItem).toBe(false);
    expect(parseExpression("'item' == 'item'", field).usesItem).toBe(false);
    const s = parseExpression("true || state.k", field);
    expect([s.usesItem, s.usesState, s.usesInput]).toEqual([false, true, false]);
    const i = parseExpression("(input[0])", field);
    expect([i.usesItem, i.usesState, i.usesInput]).toEqual([false, false, true]);
  });
});

describe("operators", () => {
  it("parses and evaluates !, &&, || and parentheses", async () => {
    expect(await value("!true")).toBe(false);
    expect(await value("!false")).toBe(true);
    expect(await value("!!1")).toBe(true);
    expect(await value("! ! ''")).toBe(false);
    expect(await value("true && false")).toBe(false);
    expect(await value("true && true")).toBe(true);
    expect(await value("false || true")).toBe(true);
    expect(await value("false || false")).toBe(false);
    expect(await value("(true)")).toBe(true);
    expect(await value("((1))")).toBe(1);
    expect(await value("(1 == 1) && (2 != 3)")).toBe(true);
  });

  it("yields booleans from && and ||, not operands", async () => {
    expect(await value("'a' || 0")).toBe(true);
    expect(await value("0 || 'a'")).toBe(true);
    expect(await value("1 && 'a'")).toBe(true);
    expect(await value("0 || ''")).toBe(false);
    expect(await value("'x' && null")).toBe(false);
    expect(await value("!'x'")).toBe(false);
  });

  it('binds ! looser than a comparison, following `not = "!" not | cmp`', async () => {
    // !(0 == 1) is true; (!0) == 1 would be true == 1, which is false.
    expect(await value("!0 == 1")).toBe(true);
    expect(await value("(!0) == 1")).toBe(false);
    expect(await value("!1 < 2")).toBe(false); // !(1 < 2); (!1) < 2 would be false < 2: false too
    expect(await value("!'a' == 'b'")).toBe(true);
    expect(await value("(!'a') == false")).toBe(true);
    expect(await value("!'a' == false")).toBe(true); // !('a' == false)
  });

  it("binds ! tighter than && and ||", async () => {
    // (!false) && false is false; !(false && false) would be true.
    expect(await value("!false && false")).toBe(false);
    // (!true) || true is true; !(true || true) would be false.
    expect(await value("!true || true")).toBe(true);
  });

  it("binds && tighter than ||, comparisons tighter than both", async () => {
    // true || (false && false); (true || false) && false would be false.
    expect(await value("true || false && false")).toBe(true);
    // (false && true) || true; false && (true || true) would be false.
    expect(await value("false && true || true")).toBe(true);
    expect(await value("1 == 1 && 2 == 2")).toBe(true);
    expect(await value("1 == 2 || 3 > 2")).toBe(true);
    expect(await value("(true || false) && false")).toBe(false);
  });

  it("chains && and || left to right, but never comparisons", async () => {
    expect(await value("true && true && true && 1")).toBe(true);
    expect(await value("true && true && 0 && true")).toBe(false);
    expect(await value("false || 0 || null || '' || 'x'")).toBe(true);
    expect(await value("false || 0 || null")).toBe(false);
    expect(await value("(1 == 1) == true")).toBe(true);
    expect(await value("1 == (1 == true)")).toBe(false);
    expect(parseError("1 == 1 == 1")).toBe(
      'steps[2].when: at column 8: expected "&&", "||", ")" or end of expression (comparisons do not chain: use parentheses) but found "=="',
    );
    expect(parseError("1 < 2 < 3")).toMatch(/at column 7: .*comparisons do not chain/);
  });

  it("rejects anything outside the grammar, naming the column", () => {
    expect(errorColumn("1 + 2")).toBe(3);
    expect(errorColumn("1 - 2")).toBe(3); // "-" must be followed by a digit; "- 2" is not a number
    expect(errorColumn("state.a = 1")).toBe(9);
    expect(parseError("state.a = 1")).toMatch(/but found "=" \(use "=="\)$/);
    expect(parseError("true & false")).toMatch(/at column 6: .* found "&" \(use "&&"\)$/);
    expect(parseError("true | false")).toMatch(/at column 6: .* found "\|" \(use "\|\|"\)$/);
    expect(errorColumn("input.a()")).toBe(8);
    expect(errorColumn("true ? 1 : 2")).toBe(6);
    expect(errorColumn("1 2")).toBe(3);
    expect(errorColumn("!")).toBe(2);
    expect(errorColumn("1 ==")).toBe(5);
    expect(errorColumn("== 1")).toBe(1);
    expect(errorColumn("&& true")).toBe(1);
    expect(errorColumn("true &&")).toBe(8);
    expect(errorColumn("true ||| false")).toBe(8);
    expect(errorColumn("()")).toBe(2);
    expect(errorColumn("(1))")).toBe(4);
    expect(errorColumn("[1, 2]")).toBe(1);
    expect(errorColumn("{}")).toBe(1);
    expect(errorColumn("1 === 1")).toBe(5);
    expect(errorColumn("1 =< 2")).toBe(3);
    expect(parseError("1 2")).toBe(
      "steps[2].when: at column 3: expected an operator or end of expression but found number 2",
    );
  });
});

describe("comparisons", () => {
  it("orders numbers", async () => {
    expect(await value("1 < 2")).toBe(true);
    expect(await value("2 < 1")).toBe(false);
    expect(await value("2 <= 2")).toBe(true);
    expect(await value("3 <= 2")).toBe(false);
    expect(await value("2 > 1")).toBe(true);
    expect(await value("1 > 1")).toBe(false);
    expect(await value("1 >= 1")).toBe(true);
    expect(await value("-1.5 >= -1")).toBe(false);
    expect(await value("1e2 > 99.9")).toBe(true);
  });

  it("orders strings by UTF-16 code units", async () => {
    expect(await value("'a' < 'b'")).toBe(true);
    expect(await value("'a' < 'ab'")).toBe(true);
    expect(await value("'B' < 'a'")).toBe(true); // not locale order
    expect(await value("'b' >= 'b'")).toBe(true);
    expect(await value("'10' < '9'")).toBe(true); // strings, not numbers
    // U+1F600 is above U+FF61 as a code point, but its first UTF-16 unit (0xD83D) is below 0xFF61.
    expect(await value("'😀' < '｡'")).toBe(true);
  });

  it("is false for any pair that is not two numbers or two strings", async () => {
    for (const op of ["<", "<=", ">", ">="]) {
      for (const [a, b] of [
        ["1", "'1'"],
        ["'1'", "1"],
        ["null", "0"],
        ["0", "null"],
        ["null", "null"],
        ["true", "false"],
        ["false", "true"],
        ["true", "true"],
        ["input.arr", "input.arr"],
        ["input.obj", "input.obj"],
        ["input.missing", "1"],
      ] as const) {
        const source = `${a} ${op} ${b}`;
        const ctx = context({ input: { arr: [1], obj: { a: 1 } } });
        expect(await value(source, ctx), source).toBe(false);
      }
    }
  });

  it("compares JSON values deeply with == and !=", async () => {
    const ctx = context({
      input: {
        obj: { a: 1, b: [1, { c: null }], d: "x" },
        reordered: { d: "x", b: [1, { c: null }], a: 1 },
        different: { a: 1, b: [1, { c: false }], d: "x" },
        extra: { a: 1, b: [1, { c: null }], d: "x", e: 0 },
        arr: [1, 2, 3],
        arr2: [1, 2, 3],
        reversed: [3, 2, 1],
        shorter: [1, 2],
        emptyObj: {},
        emptyArr: [],
        one: 1,
        oneFloat: 1.0,
        str: "1",
      },
      state: stateOf({ obj: { b: [1, { c: null }], d: "x", a: 1 } }).read,
    });
    const eq = async (a: string, b: string): Promise<boolean> => {
      const result = await value(`${a} == ${b}`, ctx);
      expect(await value(`${a} != ${b}`, ctx)).toBe(!result);
      return result as boolean;
    };
    expect(await eq("input.obj", "input.reordered")).toBe(true);
    expect(await eq("input.obj", "state.obj")).toBe(true);
    expect(await eq("input.obj", "input.different")).toBe(false);
    expect(await eq("input.obj", "input.extra")).toBe(false);
    expect(await eq("input.extra", "input.obj")).toBe(false);
    expect(await eq("input.arr", "input.arr2")).toBe(true);
    expect(await eq("input.arr", "input.reversed")).toBe(false);
    expect(await eq("input.arr", "input.shorter")).toBe(false);
    expect(await eq("input.emptyObj", "input.emptyArr")).toBe(false);
    expect(await eq("input.emptyObj", "input.emptyObj")).toBe(true);
    expect(await eq("input.one", "input.oneFloat")).toBe(true);
    expect(await eq("input.one", "1.0")).toBe(true);
    expect(await eq("1e2", "100")).toBe(true);
    expect(await eq("-0", "0")).toBe(true);
    expect(await eq("input.one", "input.str")).toBe(false);
    expect(await eq("1", "true")).toBe(false);
    expect(await eq("0", "false")).toBe(false);
    expect(await eq("null", "false")).toBe(false);
    expect(await eq("''", "null")).toBe(false);
    expect(await eq("null", "null")).toBe(true);
    expect(await eq("input.missing", "null")).toBe(true);
    expect(await eq("'a'", '"a"')).toBe(true);
    expect(await eq("input.obj.b[1]", "input.reordered.b[1]")).toBe(true);
  });

  it("compares very deep values without exhausting the stack", async () => {
    let a: Json = 1;
    let a2: Json = 1;
    let b: Json = 1;
    for (let i = 0; i < 100_000; i++) {
      a = [a];
      a2 = [a2];
      b = { k: b };
    }
    const ctx = context({ input: { a, a2 }, state: stateOf({ b }).read });
    expect(await value("input.a == input.a2", ctx)).toBe(true);
    expect(await value("input.a == state.b", ctx)).toBe(false);
  });
});

describe("missing keys and paths are null", () => {
  const ctx = context({
    input: { obj: { a: 1 }, arr: [10, 20], str: "abc", num: 5, nil: null },
  });

  it.each([
    "input.nope",
    "input.nope.deeper[0]",
    "input.obj.b",
    "input.arr[2]",
    "input.arr[99]",
    "input.arr.length", // a name on an array
    'input.arr["0"]', // a string segment reads objects only
    "input.obj[0]", // an integer segment reads arrays only
    "input.str.length",
    "input.str[0]",
    "input.num.x",
    "input.nil.x",
    "input.nil[0]",
    "input.obj.__proto__",
    "input.obj.constructor",
    "input.obj.hasOwnProperty",
    "input.obj.toString",
    "item.x",
    "state.nothing",
    "state.nothing.x[3]",
    "steps.gone.output.x",
  ])("%s", async (source) => {
    expect(await value(source, ctx)).toBeNull();
  });

  it("treats an undefined read from state as null", async () => {
    const c = context({ state: (() => undefined) as unknown as EvalContext["state"] });
    expect(await value("state.k", c)).toBeNull();
    expect(await value("state.k == null", c)).toBe(true);
  });

  it("reads a key named __proto__ when it is an own key", async () => {
    const input = JSON.parse('{"__proto__": 5}') as Json;
    expect(await value(`input["__proto__"]`, context({ input }))).toBe(5);
  });
});

describe("truthiness", () => {
  const table: Array<[Json, boolean]> = [
    [false, false],
    [null, false],
    [0, false],
    [-0, false],
    ["", false],
    [true, true],
    [1, true],
    [-1, true],
    [0.5, true],
    ["0", true],
    ["false", true],
    [" ", true],
    [[], true],
    [{}, true],
    [[0], true],
  ];

  it.each(table)("%j is %s", async (v, expected) => {
    const ctx = context({ input: { v } });
    expect(await holds("input.v", ctx)).toBe(expected);
    expect(await value("!input.v", ctx)).toBe(!expected);
    expect(await value("input.v && true", ctx)).toBe(expected);
    expect(await value("input.v || false", ctx)).toBe(expected);
  });

  it("gives evaluate the truthiness and evaluateValue the raw value", async () => {
    const ctx = context({ input: { list: [] } });
    expect(await value("input.list", ctx)).toEqual([]);
    expect(await holds("input.list", ctx)).toBe(true);
    expect(await value("'text'")).toBe("text");
    expect(await holds("'text'")).toBe(true);
    expect(await holds("''")).toBe(false);
  });
});

describe("state reads", () => {
  it("skips reads that short-circuiting never reaches", async () => {
    for (const source of [
      "false && state.a",
      "0 && state.a == 1 && state.b",
      "true || state.a",
      "1 == 1 || state.a || state.b",
      "!(true || state.a)",
      "(false && state.a) || (true || state.b)",
    ]) {
      const state = stateOf({ a: 1, b: 2 });
      await value(source, context({ state: state.read }));
      expect(state.reads, source).toEqual([]);
    }
  });

  it("reads only the keys actually reached, in order", async () => {
    const state = stateOf({ a: 0, b: 1, c: 1 });
    expect(
      await value("state.a && state.x || state.b || state.c", context({ state: state.read })),
    ).toBe(true);
    expect(state.reads).toEqual(["a", "b"]);
  });

  it("reads each key at most once per evaluation", async () => {
    const state = stateOf({ a: { x: 3 }, b: 1 }, { async: true });
    const e = parseExpression(
      "state.a.x == 1 || state.a.x == 2 || state['a'].x == 3 && state.b == state.b",
      field,
    );
    expect(await evaluate(e, context({ state: state.read }))).toBe(true);
    expect(state.reads).toEqual(["a", "b"]);
    // A new evaluation reads again (state may have changed).
    expect(await evaluate(e, context({ state: state.read }))).toBe(true);
    expect(state.reads).toEqual(["a", "b", "a", "b"]);
  });

  it("works with synchronous and asynchronous readers", async () => {
    for (const async of [false, true]) {
      const state = stateOf({ mode: "full" }, { async });
      expect(await holds("state.mode == 'full'", context({ state: state.read }))).toBe(true);
    }
  });

  it("propagates a failing reader", async () => {
    const ctx = context({
      state: () => Promise.reject(new Error("state service unavailable")),
    });
    await expect(value("state.a", ctx)).rejects.toThrow("state service unavailable");
    await expect(value("true || state.a", ctx)).resolves.toBe(true);
  });
});

describe("error columns", () => {
  it("reports the example of the brief", () => {
    expect(parseError("(state.a == 1")).toBe(
      'steps[2].when: at column 14: expected ")" but found end of expression',
    );
  });

  it("counts columns from 1, in code points, across whitespace", () => {
    expect(errorColumn(")")).toBe(1);
    expect(errorColumn("   )")).toBe(4);
    expect(errorColumn("true &&\n  )")).toBe(11);
    expect(errorColumn("(1 == 1 && (2 == 2)")).toBe(20);
    // "😀" is one column although it is two UTF-16 units.
    expect(errorColumn('"😀é" == x')).toBe(9);
    expect(errorColumn('"😀😀😀" == input.')).toBe(16);
  });

  it("rejects an empty or blank source", () => {
    expect(parseError("")).toBe(
      "steps[2].when: at column 1: expected an expression but found end of expression",
    );
    expect(errorColumn("  \t")).toBe(4);
  });
});

describe("limits", () => {
  it("accepts 1024 characters and rejects more", () => {
    const max = `"${"a".repeat(1022)}"`;
    expect(max).toHaveLength(1024);
    expect(parseExpression(max, field).source).toBe(max);
    expect(parseError(`${max} `)).toBe(
      "steps[2].when: at column 1025: expected at most 1024 characters but found 1025",
    );
    expect(parseError("x".repeat(5000))).toMatch(
      /at column 1025: expected at most 1024 characters/,
    );
  });

  it("counts the length in code points", () => {
    const emoji = `"${"😀".repeat(1022)}"`; // 1024 code points, 2046 UTF-16 units
    expect(parseExpression(emoji, field).source).toBe(emoji);
    expect(() => parseExpression(`${emoji} `, field)).toThrow(InvalidArgumentError);
  });

  it("accepts 64 levels of nesting and rejects 65", async () => {
    expect(await value(`${"(".repeat(64)}1${")".repeat(64)}`)).toBe(1);
    expect(parseError(`${"(".repeat(65)}1${")".repeat(65)}`)).toBe(
      'steps[2].when: at column 65: expected at most 64 levels of nesting of "(" and "!" but found "(" at level 65',
    );
    expect(await value(`${"!".repeat(64)}1`)).toBe(true);
    expect(errorColumn(`${"!".repeat(65)}1`)).toBe(65);
    expect(await value(`${"!(".repeat(32)}1${")".repeat(32)}`)).toBe(true);
    expect(errorColumn(`${"!(".repeat(32)}!1${")".repeat(32)}`)).toBe(65);
    // Siblings do not add up: only depth counts.
    expect(await value(Array.from({ length: 100 }, () => "(1)").join(" && "))).toBe(true);
  });

  it("handles the longest flat chains", async () => {
    const chain = Array.from({ length: 341 }, () => "0").join("||");
    expect(await value(chain)).toBe(false);
  });
});

describe("evaluation", () => {
  it("evaluates the example of the proto", async () => {
    const source = `state.mode == "full" && steps.extract.output.count > 0`;
    const e = parseExpression(source, field);
    expect(e.steps).toEqual(["extract"]);
    expect([e.usesState, e.usesInput, e.usesItem]).toEqual([true, false, false]);
    const run = async (mode: Json, count: Json) => {
      const state = stateOf({ mode });
      const result = await evaluate(
        e,
        context({ state: state.read, steps: { extract: step({ output: { count } }) } }),
      );
      return { result, reads: state.reads };
    };
    expect(await run("full", 3)).toEqual({ result: true, reads: ["mode"] });
    expect(await run("full", 0)).toEqual({ result: false, reads: ["mode"] });
    expect(await run("incremental", 3)).toEqual({ result: false, reads: ["mode"] });
    expect(await run(null, 3)).toEqual({ result: false, reads: ["mode"] });
    expect(await run("full", "3")).toEqual({ result: false, reads: ["mode"] });
  });

  it("evaluates a MAP item condition", async () => {
    const e = parseExpression("item.size > 10 && item.kind != 'skip'", field);
    expect(e.usesItem).toBe(true);
    const sizes = [5, 20, 30];
    const results = await Promise.all(
      sizes.map((size, i) =>
        evaluate(e, context({ item: { size, kind: i === 2 ? "skip" : "keep" } })),
      ),
    );
    expect(results).toEqual([false, true, false]);
  });

  it("evaluates an expression that was not made by parseExpression from its source", async () => {
    const plain: Expression = {
      source: "input.a == 1",
      steps: [],
      usesItem: false,
      usesState: false,
      usesInput: true,
    };
    expect(await evaluate(plain, context({ input: { a: 1 } }))).toBe(true);
  });

  it("can evaluate one parsed expression many times, also concurrently", async () => {
    const e = parseExpression("state.n >= input.min", field);
    const outcomes = await Promise.all(
      [1, 2, 3].map((n) =>
        evaluate(e, context({ state: stateOf({ n }, { async: true }).read, input: { min: 2 } })),
      ),
    );
    expect(outcomes).toEqual([false, true, true]);
  });
});
