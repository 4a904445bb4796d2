import { describe, expect, it } from "vitest";
import { parsePointer, resolvePointer } from "../../lib/json-pointer.js";

describe("JSON pointers", () => {
  const doc = { a: [{ "b/c": 1, "d~e": 2 }], "": 3, n: null };
  const get = (p: string) => resolvePointer(doc, parsePointer(p, "path"));

  it("walks keys and indexes with RFC 6901 escapes", () => {
    expect(get("")).toEqual(doc);
    expect(get("/a/0/b~1c")).toBe(1);
    expect(get("/a/0/d~0e")).toBe(2);
    expect(get("/")).toBe(3);
    expect(get("/n")).toBeNull();
  });

  it("says undefined for paths that do not exist, never throwing", () => {
    expect(get("/a/1")).toBeUndefined();
    expect(get("/a/01")).toBeUndefined();
    expect(get("/a/-")).toBeUndefined();
    expect(get("/x/y")).toBeUndefined();
    expect(get("/n/y")).toBeUndefined();
    expect(get("/a/0/b~1c/deeper")).toBeUndefined();
    expect(get("/constructor")).toBeUndefined();
  });

  it("rejects malformed pointers naming the field", () => {
    expect(() => parsePointer("documents", "map_items.from_input")).toThrow(
      /map_items\.from_input "documents" is not a JSON pointer/,
    );
    expect(() => parsePointer("/a~2", "p")).toThrow(/"~" not followed by 0 or 1/);
    expect(() => parsePointer("/a~", "p")).toThrow(/"~" not followed/);
  });
});
