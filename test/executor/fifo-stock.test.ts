import {
  lstatSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FifoStock } from "../../services/executor/fifo-stock.js";

// The real mkfifo, in a temporary directory: what a mailbox gets its two pipes from.
describe("the named-pipe stock", () => {
  let dir: string;
  let stock: FifoStock | undefined;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "fifo-stock-"));
  });
  afterEach(async () => {
    await stock?.close();
    stock = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  it("puts a new pipe, mode 666 whatever the umask, at each path; its directory is mode 700", async () => {
    const umask = process.umask(0o077);
    try {
      stock = await FifoStock.create(join(dir, "fifos"), 8);
    } finally {
      process.umask(umask);
    }
    const [stockDir, ...more] = readdirSync(join(dir, "fifos"));
    expect(more).toEqual([]);
    expect(statSync(join(dir, "fifos", stockDir!)).mode & 0o777).toBe(0o700);
    const paths = Array.from({ length: 30 }, (_, i) => join(dir, `p${i}`));
    // More at once than a batch holds: the callers share the refills.
    await Promise.all(paths.map((p) => stock!.moveTo(p)));
    const inodes = new Set<number>();
    for (const p of paths) {
      const stats = lstatSync(p);
      expect(stats.isFIFO()).toBe(true);
      expect(stats.mode & 0o777).toBe(0o666);
      inodes.add(stats.ino);
    }
    expect(inodes.size).toBe(paths.length);
    // What is left stays in the stock: at most a batch and the background refill's batch.
    expect(stock.size).toBeLessThanOrEqual(16);
    expect(readdirSync(join(dir, "fifos", stockDir!)).length).toBe(stock.size);
  });

  it("replaces a file or a link at the path, never writing through the link", async () => {
    stock = await FifoStock.create(join(dir, "fifos"), 2);
    const outside = join(dir, "host-file");
    writeFileSync(outside, "keep");
    const link = join(dir, "link");
    symlinkSync(outside, link);
    const file = join(dir, "file");
    writeFileSync(file, "old");
    await stock.moveTo(link);
    await stock.moveTo(file);
    expect(lstatSync(link).isFIFO()).toBe(true);
    expect(lstatSync(file).isFIFO()).toBe(true);
    expect(readFileSync(outside, "utf8")).toBe("keep");
  });

  it("fails with mkfifo's error when no pipe can be made, and removes its directory on close", async () => {
    const path = process.env.PATH;
    process.env.PATH = join(dir, "empty-path"); // no mkfifo there
    try {
      stock = await FifoStock.create(join(dir, "fifos"), 4);
      await expect(stock.moveTo(join(dir, "p"))).rejects.toThrow(
        /could not make named pipes with mkfifo: .*ENOENT/,
      );
    } finally {
      process.env.PATH = path;
    }
    // Once mkfifo is found again, the next call makes the batch.
    await stock.moveTo(join(dir, "p"));
    expect(lstatSync(join(dir, "p")).isFIFO()).toBe(true);
    await stock.close();
    expect(readdirSync(join(dir, "fifos"))).toEqual([]);
    await expect(stock.moveTo(join(dir, "q"))).rejects.toThrow(/closed/);
  });
});
