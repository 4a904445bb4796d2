import {
  closeSync,
  constants,
  fstatSync,
  fchmodSync,
  lstatSync,
  openSync,
  read,
  readSync,
  renameSync,
  unlinkSync,
  writeSync,
  type Stats,
} from "node:fs";
import { randomUUID } from "node:crypto";
import { open } from "node:fs/promises";
import { dirname, join } from "node:path";
import { promisify } from "node:util";

/*
 * File operations in a mailbox directory. The agent writes in that directory too (it is mounted
 * read-write into its container), and the Executor runs with the host's privileges: a name there
 * is never trusted to be what the Executor left. An agent can replace `result.json` with a
 * symbolic link to a host file, or with a named pipe, a directory, anything it can create. So
 * nothing here follows a link, opens a file that may block (a pipe without a writer), or writes
 * through a name without making the file anew. A path followed or written through would read a
 * host file back to the user, or overwrite and chmod one.
 */

const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK } = constants;
const readAt = promisify(read);

/**
 * Contents up to this size move with synchronous calls on the event loop (a few microseconds
 * each, against a thread-pool round trip per call); larger ones go through the thread pool.
 */
const syncBytes = 64 * 1024;

/**
 * Replaces whatever is at `path` (a file, a link, a pipe, a directory the agent made) with a new
 * regular file holding `text`, readable and writable by every user (agents run as any user).
 * Fails with EEXIST if something reappears at `path` between the removal and the creation.
 */
export async function replaceFile(path: string, text: string): Promise<void> {
  removeEntry(path);
  const flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW;
  const data = Buffer.from(text, "utf8");
  if (data.length <= syncBytes) {
    const fd = openSync(path, flags, 0o666);
    try {
      fchmodSync(fd, 0o666); // the mode given to open is cut by the umask
      for (let at = 0; at < data.length;) at += writeSync(fd, data, at);
    } finally {
      closeSync(fd);
    }
    return;
  }
  const file = await open(path, flags, 0o666);
  try {
    await file.chmod(0o666);
    await file.writeFile(data);
  } finally {
    await file.close();
  }
}

/**
 * Removes the entry at `path` itself, whatever it is. A directory is not walked (the agent may
 * still run, and could swap a directory inside for a link to a host one between the check and the
 * removal): it is renamed aside, and goes when the whole mailbox is removed, after the container.
 */
export function removeEntry(path: string): void {
  try {
    unlinkSync(path); // a link is removed, not followed
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return;
    if (code !== "EISDIR" && code !== "EPERM") throw err;
    renameSync(path, join(dirname(path), `.replaced-${randomUUID()}`));
  }
}

/** What `readHead` found at a path. */
export type HeadRead =
  | { kind: "absent" }
  | { kind: "text"; text: string; truncated: boolean }
  /** Not a regular file: `what` says what it is, for the task's error. */
  | { kind: "refused"; what: string };

/**
 * The first `max` bytes of the regular file at `path` as text; "absent" when nothing is there
 * or the file is empty. Anything but a regular file (a symbolic link, a pipe, a directory) is
 * "refused" and never opened for reading.
 */
export async function readHead(path: string, max: number): Promise<HeadRead> {
  let fd: number;
  try {
    fd = openSync(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return { kind: "absent" };
    if (code === "ELOOP") return { kind: "refused", what: "a symbolic link" };
    return { kind: "refused", what: `a file that could not be opened (${code ?? String(err)})` };
  }
  try {
    const stats = fstatSync(fd);
    if (!stats.isFile()) return { kind: "refused", what: describe(stats) };
    if (stats.size === 0) return { kind: "absent" };
    const buf = Buffer.alloc(Math.min(stats.size, max));
    let got = 0;
    while (got < buf.length) {
      const n =
        buf.length <= syncBytes
          ? readSync(fd, buf, got, buf.length - got, got)
          : (await readAt(fd, buf, got, buf.length - got, got)).bytesRead;
      if (n === 0) break; // shrank while read
      got += n;
    }
    return {
      kind: "text",
      text: buf.subarray(0, got).toString("utf8"),
      truncated: stats.size > max,
    };
  } finally {
    closeSync(fd);
  }
}

/** Whether `path` itself (not what a link there points at) is a named pipe. */
export function isFifo(path: string): boolean {
  try {
    return lstatSync(path).isFIFO();
  } catch {
    return false;
  }
}

/**
 * Opens the named pipe at `path` without blocking and without following a link; throws if
 * something else is there. `mode` is the access: O_RDWR for a pipe whose both ends the Executor
 * holds, O_RDONLY to drain one.
 */
export function openFifo(path: string, mode: number): number {
  const fd = openSync(path, mode | O_NONBLOCK | O_NOFOLLOW);
  const stats = fstatSync(fd);
  if (!stats.isFIFO()) {
    closeSync(fd);
    throw new Error(`${path} is ${describe(stats)}, not a named pipe`);
  }
  return fd;
}

function describe(stats: Stats): string {
  if (stats.isDirectory()) return "a directory";
  if (stats.isFIFO()) return "a named pipe";
  if (stats.isSocket()) return "a socket";
  if (stats.isSymbolicLink()) return "a symbolic link";
  if (stats.isCharacterDevice() || stats.isBlockDevice()) return "a device";
  return "not a regular file";
}
