/**
 * The `when` condition language of workflow steps (proto/agentainer/workflow/v1/definition.proto,
 * Step.when): a small, safe expression language with no calls, no arithmetic and no assignment.
 *
 *   expr    = or ;  or = and { "||" and } ;  and = not { "&&" not } ;
 *   not     = "!" not | cmp ;
 *   cmp     = primary [ ( "==" | "!=" | "<" | "<=" | ">" | ">=" ) primary ] ;
 *   primary = literal | ref | "(" expr ")" ;
 *   literal = number | "string" | 'string' | true | false | null ;
 *   ref     = root { "." name | "[" string "]" | "[" integer "]" } ;
 *   root    = "state" | "input" | "item" | "steps" "." step_id ;
 *
 * Following the grammar, `!` binds looser than a comparison: `!a == b` is `!(a == b)`. A
 * comparison does not chain (`a == b == c` is a syntax error; write `(a == b) == c`).
 *
 * Lexical details and the choices made where the proto leaves room:
 * - Whitespace (space, tab, CR, LF) may separate any two tokens, also inside a reference.
 * - Numbers are JSON numbers: optional `-` (no `+`), no leading zeros, optional fraction and
 *   exponent; they must be finite. A number must not run into a letter, digit, `_` or `.`.
 * - Strings are in "double" or 'single' quotes with the escapes \" \' \\ \n \t and \uXXXX (exactly
 *   four hex digits); any other escape, and a raw control character (U+0000 to U+001F), are
 *   syntax errors.
 * - A name (`.name`, also a step id) is [A-Za-z_][A-Za-z0-9_-]*. Step ids have exactly the
 *   syntax of names (1 to 63 characters, a letter or `_` first, then letters, digits, `_` or `-`),
 *   so `steps.<id>` can write every id and the `steps["<id>"]` form is not accepted. An id longer
 *   than 63 characters is a syntax error.
 * - `state` must be followed by its key, as `.key` or `["key"]` (`state[0]` is an error); the key
 *   must be a valid state key (non-empty, at most 1024 UTF-8 bytes, no control characters). Any
 *   path may follow the key and is applied to the key's value.
 * - `steps.<id>` must be followed by `.output` (then any path), `.status`, `.succeeded` or
 *   `.failed`; the bracket forms `["output"]` etc. are accepted too, as the grammar allows them.
 *   A path after `.status`, `.succeeded` or `.failed` is an error (it could only ever be null).
 * - `[integer]` is a non-negative integer without leading zeros (at most 2^53 - 1).
 * - Nesting of `(` and `!` together is limited to 64 levels; the source to 1024 characters.
 * - Lengths and columns (1-based) count Unicode code points.
 *
 * Evaluation: a missing key or path is null, never an error. A name or string segment reads an
 * own key of an object; an integer segment reads an element of an array; anything else (a name on
 * an array, an integer on an object, any segment on a scalar) is null. `==` / `!=` compare JSON
 * values deeply (object key order is irrelevant, numbers compare by value). `<`, `<=`, `>`, `>=`
 * compare two numbers, or two strings by UTF-16 code units (JavaScript's string order, so it is
 * not locale-aware and orders astral characters by their surrogates); any other pair is false.
 * `&&` / `||` short-circuit and yield booleans; `!` yields the negated truthiness. Truthiness:
 * false, null, 0 and "" are false, all else (including [] and {}) true. State keys are read
 * lazily (only the ones actually reached) and at most once per key per evaluation.
 */
import { InvalidArgumentError } from "../../lib/errors.js";

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export interface Expression {
  readonly source: string;
  /** Step ids referenced as steps.<id> (deduplicated, in order of first use). */
  readonly steps: readonly string[];
  /** Whether the expression uses `item` anywhere. */
  readonly usesItem: boolean;
  /** Whether it reads `state`, `input`. */
  readonly usesState: boolean;
  readonly usesInput: boolean;
}

export interface StepView {
  output: Json;
  status: string;
  succeeded: number;
  failed: number;
}

export interface EvalContext {
  /** Reads a key of the workflow's state (may be async: state lives in another service). */
  state: (key: string) => Json | Promise<Json>;
  input: Json;
  item?: Json;
  steps: Readonly<Record<string, StepView>>;
}

/** Longest source accepted, in characters (code points). */
export const maxExpressionLength = 1024;
/** Deepest nesting of "(" and "!" accepted. */
export const maxExpressionDepth = 64;

const maxStepIdLength = 63;
const maxStateKeyBytes = 1024;

type CompareOp = "==" | "!=" | "<" | "<=" | ">" | ">=";
type StepField = "output" | "status" | "succeeded" | "failed";
type Segment = string | number;

type Node =
  | { kind: "literal"; value: Json }
  | { kind: "state"; key: string; path: Segment[] }
  | { kind: "input"; path: Segment[] }
  | { kind: "item"; path: Segment[] }
  | { kind: "step"; id: string; field: StepField; path: Segment[] }
  | { kind: "not"; operand: Node }
  | { kind: "and"; operands: Node[] }
  | { kind: "or"; operands: Node[] }
  | { kind: "compare"; op: CompareOp; left: Node; right: Node };

type Punct = "(" | ")" | "[" | "]" | "." | "!" | "&&" | "||" | CompareOp;

type Token =
  | { type: "punct"; text: Punct; pos: number }
  | { type: "number"; text: string; value: number; pos: number }
  | { type: "string"; value: string; pos: number }
  | { type: "name"; text: string; pos: number }
  | { type: "invalid"; text: string; pos: number; note?: string }
  | { type: "end"; pos: number };

const compareOps: ReadonlySet<string> = new Set<CompareOp>(["==", "!=", "<", "<=", ">", ">="]);
const stepFields: ReadonlySet<string> = new Set<StepField>([
  "output",
  "status",
  "succeeded",
  "failed",
]);
const stepFieldList = `".output", ".status", ".succeeded" or ".failed"`;
const valueList = `a value (a number, a string, true, false, null, state, input, item, steps) or "("`;

const namePattern = /[A-Za-z_][A-Za-z0-9_-]*/y;
const numberPattern = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
const numberRunPattern = /[-+0-9A-Za-z_.]*/y;
const integerPattern = /^(?:0|[1-9][0-9]*)$/;
const controlCharacters = /[\u0000-\u001f\u007f]/;

const asts = new WeakMap<Expression, Node>();

/**
 * Parses a `when` expression. Throws InvalidArgumentError with `field` for a syntax error, an
 * empty source, more than 1024 characters or more than 64 levels of nesting; the message names
 * the 1-based column and what was expected, e.g.
 * `steps[2].when: at column 14: expected ")" but found end of expression`.
 */
export function parseExpression(source: string, field: string): Expression {
  const length = codePointLength(source);
  if (length > maxExpressionLength) {
    throw new InvalidArgumentError(
      `${field}: at column ${maxExpressionLength + 1}: expected at most ${maxExpressionLength} characters but found ${length}`,
      { field },
    );
  }
  const parser = new Parser(source, field);
  const ast = parser.parse();
  const expression: Expression = Object.freeze({
    source,
    steps: Object.freeze([...parser.steps]),
    usesItem: parser.usesItem,
    usesState: parser.usesState,
    usesInput: parser.usesInput,
  });
  asts.set(expression, ast);
  return expression;
}

/** Evaluates the expression and returns the truthiness of its value. */
export async function evaluate(expr: Expression, ctx: EvalContext): Promise<boolean> {
  return truthy(await evaluateValue(expr, ctx));
}

/** Evaluates the expression and returns its raw value (for tests and debugging). */
export async function evaluateValue(expr: Expression, ctx: EvalContext): Promise<Json> {
  // An Expression not made by parseExpression (a plain object) is parsed from its source.
  let ast = asts.get(expr);
  if (ast === undefined) {
    const parsed = parseExpression(expr.source, "when");
    ast = asts.get(parsed) as Node;
  }
  return new Evaluator(ctx).eval(ast);
}

// ---------------------------------------------------------------------------------------------
// Parsing

class Parser {
  readonly steps = new Set<string>();
  usesItem = false;
  usesState = false;
  usesInput = false;

  private pos = 0;
  private peeked: Token | undefined;

  constructor(
    private readonly source: string,
    private readonly field: string,
  ) {}

  parse(): Node {
    const first = this.peek();
    if (first.type === "end") this.fail(first.pos, "an expression", first);
    const node = this.parseOr(0);
    const last = this.peek();
    if (last.type !== "end") this.fail(last.pos, "an operator or end of expression", last);
    return node;
  }

  private parseOr(depth: number): Node {
    const operands = [this.parseAnd(depth)];
    while (this.isPunct(this.peek(), "||")) {
      this.next();
      operands.push(this.parseAnd(depth));
    }
    return operands.length === 1 && operands[0] !== undefined
      ? operands[0]
      : { kind: "or", operands };
  }

  private parseAnd(depth: number): Node {
    const operands = [this.parseNot(depth)];
    while (this.isPunct(this.peek(), "&&")) {
      this.next();
      operands.push(this.parseNot(depth));
    }
    return operands.length === 1 && operands[0] !== undefined
      ? operands[0]
      : { kind: "and", operands };
  }

  private parseNot(depth: number): Node {
    const token = this.peek();
    if (this.isPunct(token, "!")) {
      this.checkDepth(token, depth + 1);
      this.next();
      return { kind: "not", operand: this.parseNot(depth + 1) };
    }
    return this.parseCmp(depth);
  }

  private parseCmp(depth: number): Node {
    const left = this.parsePrimary(depth);
    const op = this.peek();
    if (op.type !== "punct" || !compareOps.has(op.text)) return left;
    this.next();
    const right = this.parsePrimary(depth);
    const again = this.peek();
    if (again.type === "punct" && compareOps.has(again.text)) {
      this.fail(
        again.pos,
        `"&&", "||", ")" or end of expression (comparisons do not chain: use parentheses)`,
        again,
      );
    }
    return { kind: "compare", op: op.text as CompareOp, left, right };
  }

  private parsePrimary(depth: number): Node {
    const token = this.peek();
    switch (token.type) {
      case "number":
        this.next();
        return { kind: "literal", value: token.value };
      case "string":
        this.next();
        return { kind: "literal", value: token.value };
      case "name":
        switch (token.text) {
          case "true":
            this.next();
            return { kind: "literal", value: true };
          case "false":
            this.next();
            return { kind: "literal", value: false };
          case "null":
            this.next();
            return { kind: "literal", value: null };
          case "state":
            this.next();
            return this.parseState();
          case "input":
            this.next();
            this.usesInput = true;
            return { kind: "input", path: this.parsePath() };
          case "item":
            this.next();
            this.usesItem = true;
            return { kind: "item", path: this.parsePath() };
          case "steps":
            this.next();
            return this.parseStep();
          default:
            return this.fail(token.pos, valueList, token);
        }
      case "punct":
        if (token.text === "(") {
          this.checkDepth(token, depth + 1);
          this.next();
          const inner = this.parseOr(depth + 1);
          const close = this.peek();
          if (!this.isPunct(close, ")")) this.fail(close.pos, `")"`, close);
          this.next();
          return inner;
        }
        return this.fail(token.pos, valueList, token);
      case "invalid":
      case "end":
        return this.fail(token.pos, valueList, token);
    }
  }

  /** After `state`: the key (required), then any path. */
  private parseState(): Node {
    this.usesState = true;
    const token = this.peek();
    let key: string;
    let keyPos: number;
    if (this.isPunct(token, ".")) {
      this.next();
      const name = this.peek();
      if (name.type !== "name") return this.fail(name.pos, 'a state key after "state."', name);
      this.next();
      key = name.text;
      keyPos = name.pos;
    } else if (this.isPunct(token, "[")) {
      this.next();
      const str = this.peek();
      if (str.type !== "string") {
        return this.fail(str.pos, 'a state key (a string) after "state["', str);
      }
      this.next();
      this.expectCloseBracket();
      key = str.value;
      keyPos = str.pos;
    } else {
      return this.fail(token.pos, '"." or "[" and a key after "state"', token);
    }
    if (key === "" || controlCharacters.test(key)) {
      this.fail(
        keyPos,
        "a state key (non-empty, no control characters)",
        `string ${JSON.stringify(key)}`,
      );
    }
    const bytes = Buffer.byteLength(key, "utf8");
    if (bytes > maxStateKeyBytes) {
      this.fail(
        keyPos,
        `a state key of at most ${maxStateKeyBytes} bytes`,
        `a key of ${bytes} bytes`,
      );
    }
    return { kind: "state", key, path: this.parsePath() };
  }

  /** After `steps`: `.id`, then `.output` (with any path), `.status`, `.succeeded` or `.failed`. */
  private parseStep(): Node {
    const dot = this.peek();
    if (!this.isPunct(dot, ".")) return this.fail(dot.pos, '"." and a step id after "steps"', dot);
    this.next();
    const idToken = this.peek();
    if (idToken.type !== "name") {
      return this.fail(idToken.pos, 'a step id after "steps."', idToken);
    }
    this.next();
    const id = idToken.text;
    if (codePointLength(id) > maxStepIdLength) {
      this.fail(
        idToken.pos,
        `a step id of at most ${maxStepIdLength} characters`,
        `"${id.slice(0, 40)}…" (${id.length} characters)`,
      );
    }
    this.steps.add(id);

    const where = `after "steps.${id}"`;
    const sep = this.peek();
    let field: string;
    let fieldToken: Token;
    if (this.isPunct(sep, ".")) {
      this.next();
      fieldToken = this.peek();
      if (fieldToken.type !== "name") {
        return this.fail(fieldToken.pos, `${stepFieldList} ${where}`, fieldToken);
      }
      field = fieldToken.text;
    } else if (this.isPunct(sep, "[")) {
      this.next();
      fieldToken = this.peek();
      if (fieldToken.type !== "string") {
        return this.fail(fieldToken.pos, `${stepFieldList} ${where}`, fieldToken);
      }
      field = fieldToken.value;
    } else {
      return this.fail(sep.pos, `${stepFieldList} ${where}`, sep);
    }
    if (!stepFields.has(field)) this.fail(fieldToken.pos, `${stepFieldList} ${where}`, fieldToken);
    this.next();
    if (fieldToken.type === "string") this.expectCloseBracket();

    if (field === "output") return { kind: "step", id, field, path: this.parsePath() };
    const after = this.peek();
    if (this.isPunct(after, ".") || this.isPunct(after, "[")) {
      this.fail(
        after.pos,
        `an operator, ")" or end of expression (steps.${id}.${field} has no properties)`,
        after,
      );
    }
    return { kind: "step", id, field: field as StepField, path: [] };
  }

  /** `{ "." name | "[" string "]" | "[" integer "]" }` */
  private parsePath(): Segment[] {
    const path: Segment[] = [];
    for (;;) {
      const token = this.peek();
      if (this.isPunct(token, ".")) {
        this.next();
        const name = this.peek();
        if (name.type !== "name") {
          return this.fail(name.pos, 'a name after "." (use ["key"] or [index] otherwise)', name);
        }
        this.next();
        path.push(name.text);
      } else if (this.isPunct(token, "[")) {
        this.next();
        const index = this.peek();
        if (index.type === "string") {
          path.push(index.value);
        } else if (
          index.type === "number" &&
          integerPattern.test(index.text) &&
          Number.isSafeInteger(index.value)
        ) {
          path.push(index.value);
        } else {
          return this.fail(index.pos, 'a string or a non-negative integer after "["', index);
        }
        this.next();
        this.expectCloseBracket();
      } else {
        return path;
      }
    }
  }

  private expectCloseBracket(): void {
    const close = this.peek();
    if (!this.isPunct(close, "]")) this.fail(close.pos, '"]"', close);
    this.next();
  }

  private checkDepth(token: Token, depth: number): void {
    if (depth > maxExpressionDepth) {
      this.fail(
        token.pos,
        `at most ${maxExpressionDepth} levels of nesting of "(" and "!"`,
        `${describe(token)} at level ${depth}`,
      );
    }
  }

  private isPunct(token: Token, text: Punct): boolean {
    return token.type === "punct" && token.text === text;
  }

  private peek(): Token {
    this.peeked ??= this.lex();
    return this.peeked;
  }

  private next(): Token {
    const token = this.peek();
    this.peeked = undefined;
    return token;
  }

  private fail(pos: number, expected: string, found: Token | string): never {
    const what = typeof found === "string" ? found : describe(found);
    throw new InvalidArgumentError(
      `${this.field}: at column ${this.column(pos)}: expected ${expected} but found ${what}`,
      { field: this.field },
    );
  }

  private column(pos: number): number {
    return codePointLength(this.source.slice(0, pos)) + 1;
  }

  // -------------------------------------------------------------------------------------------
  // Lexing (on demand, so errors come in source order)

  private lex(): Token {
    const src = this.source;
    while (this.pos < src.length && " \t\r\n".includes(src.charAt(this.pos))) this.pos++;
    const pos = this.pos;
    if (pos >= src.length) return { type: "end", pos };
    const c = src.charAt(pos);
    const two = src.slice(pos, pos + 2);

    if (
      two === "&&" ||
      two === "||" ||
      two === "==" ||
      two === "!=" ||
      two === "<=" ||
      two === ">="
    ) {
      this.pos += 2;
      return { type: "punct", text: two, pos };
    }
    if ("()[].!<>".includes(c)) {
      this.pos += 1;
      return { type: "punct", text: c as Punct, pos };
    }
    if (c === '"' || c === "'") return this.lexString(c);
    if (c === "-" || (c >= "0" && c <= "9")) {
      numberPattern.lastIndex = pos;
      const m = numberPattern.exec(src);
      if (m === null) {
        // A "-" not followed by a digit.
        this.pos += 1;
        return { type: "invalid", text: c, pos };
      }
      const end = pos + m[0].length;
      numberRunPattern.lastIndex = end;
      const rest = numberRunPattern.exec(src)?.[0] ?? "";
      const value = Number(m[0]);
      if (rest !== "" || !Number.isFinite(value)) {
        // Reported by the parser, which knows what it expected here.
        const text = m[0] + rest;
        this.pos = pos + text.length;
        const why = rest !== "" ? "not a valid number" : "a number out of range";
        return { type: "invalid", text, pos, note: why };
      }
      this.pos = end;
      return { type: "number", text: m[0], value, pos };
    }
    namePattern.lastIndex = pos;
    const name = namePattern.exec(src);
    if (name !== null) {
      this.pos += name[0].length;
      return { type: "name", text: name[0], pos };
    }
    const cp = src.codePointAt(pos) ?? 0;
    const text = String.fromCodePoint(cp);
    this.pos += text.length;
    return { type: "invalid", text, pos };
  }

  private lexString(quote: string): Token {
    const src = this.source;
    const start = this.pos;
    let i = start + 1;
    let value = "";
    for (;;) {
      if (i >= src.length) {
        this.fail(
          i,
          `${quote === '"' ? "'\"'" : `"'"`} to close the string started at column ${this.column(start)}`,
          "end of expression",
        );
      }
      const c = src.charAt(i);
      if (c === quote) break;
      if (c === "\\") {
        const e = src.charAt(i + 1);
        switch (e) {
          case '"':
          case "'":
          case "\\":
            value += e;
            i += 2;
            continue;
          case "n":
            value += "\n";
            i += 2;
            continue;
          case "t":
            value += "\t";
            i += 2;
            continue;
          case "u": {
            const hex = src.slice(i + 2, i + 6);
            if (!/^[0-9A-Fa-f]{4}$/.test(hex)) {
              this.fail(i, "four hex digits after \\u", `"${src.slice(i, i + 6)}"`);
            }
            value += String.fromCharCode(parseInt(hex, 16));
            i += 6;
            continue;
          }
          default:
            this.fail(
              i,
              `an escape (\\", \\', \\\\, \\n, \\t or \\uXXXX)`,
              e === "" ? "end of expression" : `"\\${e}"`,
            );
        }
      }
      if (controlCharacters.test(c) && c !== "\u007f") {
        this.fail(
          i,
          "a character or an escape in the string",
          `control character U+${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, "0")}`,
        );
      }
      value += c;
      i += 1;
    }
    this.pos = i + 1;
    return { type: "string", value, pos: start };
  }
}

function describe(token: Token): string {
  switch (token.type) {
    case "end":
      return "end of expression";
    case "punct":
      return `"${token.text}"`;
    case "number":
      return `number ${token.text}`;
    case "string": {
      const text = JSON.stringify(token.value);
      return `string ${text.length > 42 ? `${text.slice(0, 40)}…"` : text}`;
    }
    case "name":
      return `"${token.text.length > 40 ? `${token.text.slice(0, 40)}…` : token.text}"`;
    case "invalid": {
      const hints: Record<string, string> = { "=": '"=="', "&": '"&&"', "|": '"||"' };
      const hint = Object.hasOwn(hints, token.text) ? hints[token.text] : undefined;
      const text = JSON.stringify(
        token.text.length > 40 ? `${token.text.slice(0, 40)}…` : token.text,
      );
      if (token.note !== undefined) return `${text} (${token.note})`;
      return hint === undefined ? text : `${text} (use ${hint})`;
    }
  }
}

function codePointLength(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

// ---------------------------------------------------------------------------------------------
// Evaluation

class Evaluator {
  private readonly stateReads = new Map<string, Promise<Json>>();

  constructor(private readonly ctx: EvalContext) {}

  async eval(node: Node): Promise<Json> {
    switch (node.kind) {
      case "literal":
        return node.value;
      case "state":
        return walk(await this.readState(node.key), node.path);
      case "input":
        return walk(this.ctx.input, node.path);
      case "item":
        return walk(this.ctx.item ?? null, node.path);
      case "step": {
        const view = Object.hasOwn(this.ctx.steps, node.id) ? this.ctx.steps[node.id] : undefined;
        if (view === undefined) return null;
        return walk(view[node.field] ?? null, node.path);
      }
      case "not":
        return !truthy(await this.eval(node.operand));
      case "and":
        for (const operand of node.operands) {
          if (!truthy(await this.eval(operand))) return false;
        }
        return true;
      case "or":
        for (const operand of node.operands) {
          if (truthy(await this.eval(operand))) return true;
        }
        return false;
      case "compare": {
        const left = await this.eval(node.left);
        const right = await this.eval(node.right);
        return compare(node.op, left, right);
      }
    }
  }

  private readState(key: string): Promise<Json> {
    let read = this.stateReads.get(key);
    if (read === undefined) {
      const state = this.ctx.state;
      read = (async () => (await state(key)) ?? null)();
      this.stateReads.set(key, read);
    }
    return read;
  }
}

function walk(value: Json, path: readonly Segment[]): Json {
  let current: Json = value;
  for (const segment of path) {
    if (typeof segment === "number") {
      current = Array.isArray(current) ? (current[segment] ?? null) : null;
    } else if (isObject(current) && Object.hasOwn(current, segment)) {
      current = current[segment] ?? null;
    } else {
      current = null;
    }
  }
  return current;
}

function isObject(value: Json): value is { [key: string]: Json } {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function compare(op: CompareOp, left: Json, right: Json): boolean {
  switch (op) {
    case "==":
      return deepEqual(left, right);
    case "!=":
      return !deepEqual(left, right);
    case "<":
    case "<=":
    case ">":
    case ">=": {
      const bothNumbers = typeof left === "number" && typeof right === "number";
      const bothStrings = typeof left === "string" && typeof right === "string";
      if (!bothNumbers && !bothStrings) return false;
      // Strings compare by UTF-16 code units (JavaScript's relational operators).
      const a = left as number | string;
      const b = right as number | string;
      return op === "<" ? a < b : op === "<=" ? a <= b : op === ">" ? a > b : a >= b;
    }
  }
}

/** Deep JSON equality, iterative so that deeply nested values cannot exhaust the stack. */
function deepEqual(a: Json, b: Json): boolean {
  const pending: Array<[Json, Json]> = [[a, b]];
  for (let pair = pending.pop(); pair !== undefined; pair = pending.pop()) {
    const [x, y] = pair;
    if (x === y) continue;
    if (typeof x !== "object" || typeof y !== "object" || x === null || y === null) return false;
    if (Array.isArray(x)) {
      if (!Array.isArray(y) || x.length !== y.length) return false;
      for (let i = 0; i < x.length; i++) pending.push([x[i] ?? null, y[i] ?? null]);
    } else {
      if (Array.isArray(y)) return false;
      const keys = Object.keys(x);
      if (keys.length !== Object.keys(y).length) return false;
      for (const key of keys) {
        if (!Object.hasOwn(y, key)) return false;
        pending.push([x[key] ?? null, y[key] ?? null]);
      }
    }
  }
  return true;
}

/** false, null, 0 and "" are false; everything else (including [] and {}) is true. */
export function truthy(value: Json): boolean {
  return !(value === false || value === null || value === 0 || value === "");
}
