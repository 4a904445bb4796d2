import { describe, expect, it } from "vitest";
import { LineSplitter } from "../../services/executor/lines.js";

describe("LineSplitter", () => {
  const split = (max: number) => {
    const lines: string[] = [];
    const tooLong: string[] = [];
    const s = new LineSplitter(
      max,
      (l) => lines.push(l),
      (head) => tooLong.push(head),
    );
    return { s, lines, tooLong };
  };

  it("splits lines across chunks and drops a CR before the LF", () => {
    const { s, lines } = split(100);
    for (const chunk of ["ab", "c\r\nde", "f\n\n", "g"]) s.push(Buffer.from(chunk));
    expect(lines).toEqual(["abc", "def", ""]);
    expect(s.held).toBe(1);
  });

  it("never holds more than the limit of a line without end, and goes on after its end", () => {
    const { s, lines, tooLong } = split(250);
    for (let i = 0; i < 100; i++) {
      s.push(Buffer.from("x".repeat(100)));
      expect(s.held).toBeLessThanOrEqual(250);
    }
    expect(tooLong).toEqual(["x".repeat(200)]); // once, with an excerpt
    s.push(Buffer.from("xxx\nnext\n"));
    expect(lines).toEqual(["next"]);
    // A too-long line that arrives whole in one chunk is refused too.
    s.push(Buffer.from("y".repeat(300) + "\nok\n"));
    expect(tooLong).toHaveLength(2);
    expect(lines).toEqual(["next", "ok"]);
  });

  it("stops before the next line when told to, and hands back what it did not read", () => {
    const lines: string[] = [];
    let stop = false;
    const s = new LineSplitter(
      100,
      (l) => {
        lines.push(l);
        stop = lines.length === 2;
      },
      () => undefined,
      () => stop,
    );
    expect(s.push(Buffer.from("a\nb\nc\npartial"))?.toString()).toBe("c\npartial");
    expect(lines).toEqual(["a", "b"]);
    expect(s.held).toBe(0);
    stop = false;
    expect(s.push(Buffer.from("c\npartial"))).toBeUndefined();
    expect(lines).toEqual(["a", "b", "c"]);
    expect(s.held).toBe(7);
    // Told to stop by the last whole line: the partial one after it comes back too.
    const t = new LineSplitter(
      100,
      () => (stop = true),
      () => undefined,
      () => stop,
    );
    expect(t.push(Buffer.from("x\ntail"))?.toString()).toBe("tail");
    expect(t.held).toBe(0);
  });

  it("drops a partial line on reset", () => {
    const { s, lines } = split(100);
    s.push(Buffer.from("half"));
    s.reset();
    s.push(Buffer.from("whole\n"));
    expect(lines).toEqual(["whole"]);
  });
});
