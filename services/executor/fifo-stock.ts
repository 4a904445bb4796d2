import { execFile } from "node:child_process";
import { renameSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/**
 * Named pipes made ahead of need, many per `mkfifo` process. Node has no call that makes a named
 * pipe, and spawning `mkfifo` costs this process about 3 ms of CPU each time (a fork of a large
 * process, on the 2-core machine): twice per cold task, one process per mailbox, before. Here one
 * process makes `batch` pipes, and the next batch is made in the background when a quarter is
 * left.
 *
 * The stock is a directory of its own, made by this process with mode 700 under the work
 * directory: no container mounts it and no other user can enter it. A pipe leaves it by a rename
 * into its mailbox (same file system), so it appears there whole, with the mode 666 it was made
 * with, and no agent ever sees it before.
 */
export class FifoStock {
  private ready: string[] = [];
  private making: Promise<void> | undefined;
  private made = 0;
  private closed = false;

  private constructor(
    private readonly dir: string,
    private readonly batch: number,
  ) {}

  /** Makes a fresh stock directory in `parent` (created with mode 700 when missing). */
  static async create(parent: string, batch = 32): Promise<FifoStock> {
    if (!Number.isInteger(batch) || batch < 1) throw new Error(`batch must be ≥ 1; got ${batch}`);
    await mkdir(parent, { recursive: true, mode: 0o700 });
    const stock = new FifoStock(await mkdtemp(join(parent, "stock-")), batch); // mkdtemp: mode 700
    void stock.refill().catch(() => undefined); // the first mailbox need not wait (retried there)
    return stock;
  }

  /**
   * Puts a new named pipe (mode 666) at `path`, replacing a file or a link there (rename does), not
   * a directory. Throws what `mkfifo` or the rename failed with.
   */
  async moveTo(path: string): Promise<void> {
    for (;;) {
      if (this.closed) throw new Error("the named-pipe stock is closed");
      const fifo = this.ready.pop();
      if (fifo !== undefined) {
        if (this.ready.length < this.batch / 4) void this.refill().catch(() => undefined);
        renameSync(fifo, path);
        return;
      }
      await this.refill(); // a failure here reaches the caller; a background one is retried here
    }
  }

  /** Pipes made and not yet taken (for tests). */
  get size(): number {
    return this.ready.length;
  }

  /** Removes the stock directory and the pipes left in it. */
  async close(): Promise<void> {
    this.closed = true;
    await this.making?.catch(() => undefined);
    this.ready = [];
    await rm(this.dir, { recursive: true, force: true });
  }

  /** One `mkfifo` process for a batch; callers share the one running. */
  private refill(): Promise<void> {
    this.making ??= (async () => {
      const names = Array.from({ length: this.batch }, () => join(this.dir, `p${this.made++}`));
      try {
        await run("mkfifo", ["-m", "666", ...names]);
      } catch (err) {
        // It may have made some before failing: they are not handed out, and go with the stock.
        throw new Error(`could not make named pipes with mkfifo: ${(err as Error).message}`);
      }
      if (!this.closed) this.ready.push(...names);
    })().finally(() => {
      this.making = undefined;
    });
    return this.making;
  }
}
