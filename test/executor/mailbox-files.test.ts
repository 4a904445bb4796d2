import { execFileSync } from "node:child_process";
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { prepareWorkDir } from "../../services/executor/context.js";
import { isFifo, openFifo, readHead, replaceFile } from "../../services/executor/mailbox-files.js";
import { closeSync, constants } from "node:fs";

// A mailbox directory is written by the agent too: these check that nothing an agent can put
// under a mailbox file's name (a link to a host file, a pipe, a directory) is followed, read or
// written through. `outside` stands for a host file the agent must not reach.
describe("mailbox files", () => {
  let dir: string;
  let outside: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "mailbox-files-"));
    outside = join(dir, "..", `outside-${process.pid}-${Date.now()}`);
    writeFileSync(outside, "host data\n", { mode: 0o600 });
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
    rmSync(outside, { force: true });
  });

  it("replaceFile makes a fresh world-writable file, never writing through a link", async () => {
    const path = join(dir, "input.json");
    symlinkSync(outside, path);
    await replaceFile(path, '{"a":1}\n');
    expect(readFileSync(outside, "utf8")).toBe("host data\n");
    expect(statSync(outside).mode & 0o777).toBe(0o600);
    expect(readFileSync(path, "utf8")).toBe('{"a":1}\n');
    expect(statSync(path).isFile()).toBe(true);
    expect(statSync(path).mode & 0o777).toBe(0o666);
  });

  it("replaceFile replaces a directory or a pipe left under the name, and writes large texts", async () => {
    const path = join(dir, "result.json");
    mkdirSync(join(path, "deep"), { recursive: true });
    symlinkSync(outside, join(path, "deep", "link"));
    const big = "x".repeat(300 * 1024);
    await replaceFile(path, big);
    expect(readFileSync(path, "utf8")).toBe(big);
    expect(readFileSync(outside, "utf8")).toBe("host data\n");
    // The directory was moved aside whole, not walked: its link is still there, not followed.
    const aside = readdirSync(dir).filter((n) => n.startsWith(".replaced-"));
    expect(aside).toHaveLength(1);
    expect(readlinkSync(join(dir, aside[0]!, "deep", "link"))).toBe(outside);
    rmSync(path);
    execFileSync("mkfifo", [path]);
    await replaceFile(path, "");
    expect(statSync(path).isFile()).toBe(true);
    expect(statSync(path).size).toBe(0);
  });

  it("readHead reads a regular file's head and says when it was cut", async () => {
    const path = join(dir, "result.json");
    expect(await readHead(path, 10)).toEqual({ kind: "absent" });
    writeFileSync(path, "");
    expect(await readHead(path, 10)).toEqual({ kind: "absent" });
    writeFileSync(path, "0123456789abc");
    expect(await readHead(path, 10)).toEqual({ kind: "text", text: "0123456789", truncated: true });
    expect(await readHead(path, 100)).toEqual({
      kind: "text",
      text: "0123456789abc",
      truncated: false,
    });
    const big = "y".repeat(200 * 1024); // past the synchronous size: read through the pool
    writeFileSync(path, big);
    expect(await readHead(path, 1024 * 1024)).toEqual({
      kind: "text",
      text: big,
      truncated: false,
    });
  });

  it("readHead refuses a link, a pipe and a directory without reading them", async () => {
    const link = join(dir, "error.txt");
    symlinkSync(outside, link);
    expect(await readHead(link, 100)).toEqual({ kind: "refused", what: "a symbolic link" });
    const pipe = join(dir, "pipe");
    execFileSync("mkfifo", [pipe]);
    // A pipe without a writer would block a plain open: this returns at once.
    expect(await readHead(pipe, 100)).toEqual({ kind: "refused", what: "a named pipe" });
    const sub = join(dir, "sub");
    mkdirSync(sub);
    expect(await readHead(sub, 100)).toEqual({ kind: "refused", what: "a directory" });
  });

  it("opens only a real named pipe, never one behind a link", () => {
    const pipe = join(dir, "state.res");
    execFileSync("mkfifo", [pipe]);
    expect(isFifo(pipe)).toBe(true);
    closeSync(openFifo(pipe, constants.O_RDONLY));
    const link = join(dir, "state.req");
    symlinkSync(pipe, link);
    expect(isFifo(link)).toBe(false);
    expect(() => openFifo(link, constants.O_RDONLY)).toThrow(/ELOOP/);
    expect(() => openFifo(outside, constants.O_RDONLY)).toThrow(/not a named pipe/);
  });
});

describe("the work directory", () => {
  it("is refused when it is a link, or others can write to it", async () => {
    const base = mkdtempSync(join(tmpdir(), "workdir-"));
    try {
      expect(await prepareWorkDir(join(base, "ok"))).toBe(join(base, "ok", "fifos"));
      expect(statSync(join(base, "ok", "tasks")).isDirectory()).toBe(true);
      // The named pipes made ahead: no other user may enter (fifo-stock.ts).
      expect(statSync(join(base, "ok", "fifos")).mode & 0o777).toBe(0o700);
      symlinkSync(join(base, "ok"), join(base, "link"));
      await expect(prepareWorkDir(join(base, "link"))).rejects.toThrow(/is a link/);
      mkdirSync(join(base, "open"), { mode: 0o777 });
      chmodSync(join(base, "open"), 0o777);
      await expect(prepareWorkDir(join(base, "open"))).rejects.toThrow(/mode 777/);
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  });
});
