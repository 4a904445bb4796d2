import { execFile, spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { mailboxFiles } from "../../services/executor/contract.js";
import { FifoStock } from "../../services/executor/fifo-stock.js";
import { Mailbox } from "../../services/executor/mailbox.js";
import { maxLineBytes } from "../../services/executor/protocol.js";
import type { StateReply } from "../../services/executor/state-relay.js";
import { eventually } from "../support/await.js";

const sh = promisify(execFile);

/** Kills a detached child's whole process group and waits for the child to be gone. */
async function killGroup(child: ChildProcess): Promise<void> {
  if (child.pid === undefined) return; // it never started
  const gone = child.exitCode !== null || child.signalCode !== null;
  try {
    process.kill(-child.pid, "SIGKILL");
  } catch {
    return; // already gone
  }
  if (!gone) await once(child, "exit");
}

// A mailbox's state pipes driven by shell processes, as a shell agent drives them; the state
// handler is a fake that echoes which workflow asked for which key. What an agent writes there
// must never grow the Executor's memory without bound nor reach another task.
describe("a mailbox's state requests", () => {
  let dir: string;
  let box: Mailbox;
  let fifos: FifoStock;
  let handled: number;
  const children: Array<ReturnType<typeof spawn>> = [];

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "mailbox-requests-"));
    handled = 0;
    const handle = (workflowId: string, request: unknown): Promise<StateReply> => {
      handled++;
      const key = (request as { key?: string }).key ?? "";
      return Promise.resolve({ ok: true, result: { workflowId, key } });
    };
    fifos = await FifoStock.create(join(dir, "fifos"));
    box = await Mailbox.create(join(dir, "box"), handle, pino({ level: "silent" }), fifos);
  });
  afterEach(async () => {
    for (const c of children.splice(0)) await killGroup(c);
    await box.close();
    await fifos.close();
    rmSync(dir, { recursive: true, force: true });
  });
  /** Runs a shell pipeline in its own process group, so that killing it kills every writer. */
  const flood = (script: string) => {
    const child = spawn("sh", ["-c", script], { detached: true, stdio: "ignore" });
    children.push(child);
    return child;
  };
  const req = () => join(dir, "box", mailboxFiles.stateRequest);
  const res = () => join(dir, "box", mailboxFiles.stateResponse);
  /** Sends one request and reads one reply, as the contract's `st` helper does. */
  const ask = async (line: string) =>
    (await sh("sh", ["-c", `printf '%s\\n' "$1" > "${req()}"; head -n 1 "${res()}"`, "_", line]))
      .stdout;

  it("answers requests in order for the bound workflow, and none between tasks", async () => {
    await box.bind({ workflowId: "wf-a", inputJson: "null" });
    expect(JSON.parse(await ask('{"op":"get","key":"k1"}'))).toEqual({
      ok: true,
      result: { workflowId: "wf-a", key: "k1" },
    });
    expect(JSON.parse(await ask("not json"))).toMatchObject({
      ok: false,
      code: "INVALID_ARGUMENT",
    });
    await box.collect();
    await sh("sh", ["-c", `printf '{"op":"get","key":"late"}\\n' > "${req()}"`]);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(handled).toBe(1);
  });

  it("refuses a line longer than the limit without holding it, and goes on", async () => {
    await box.bind({ workflowId: "wf-a", inputJson: "null" });
    // Twice the limit on one line, then a newline, then a good request.
    const script =
      `head -c ${2 * maxLineBytes} /dev/zero | tr '\\0' a > "${req()}"; echo > "${req()}"; ` +
      `head -n 1 "${res()}"; printf '{"op":"get","key":"after"}\\n' > "${req()}"; head -n 1 "${res()}"`;
    const { stdout } = await sh("sh", ["-c", script], { maxBuffer: 1 << 20 });
    const [tooLong, after] = stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as StateReply);
    expect(tooLong).toEqual({
      ok: false,
      code: "INVALID_ARGUMENT",
      error: `a state request is one line of JSON of at most ${maxLineBytes} bytes`,
    });
    expect(after).toEqual({ ok: true, result: { workflowId: "wf-a", key: "after" } });
  });

  it("stops reading a flood whose replies nobody reads, so the writer waits instead", async () => {
    await box.bind({ workflowId: "wf-a", inputJson: "null" });
    const writer = flood(`yes '{"op":"get","key":"k"}' | head -n 200000 > "${req()}"`);
    let exited = false;
    writer.once("exit", () => (exited = true));
    await eventually(() => handled > 100);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const settled = handled;
    await new Promise((resolve) => setTimeout(resolve, 300));
    // Answered only what fits in the full reply pipe plus the read-ahead; the writer is blocked.
    expect(handled).toBe(settled);
    expect(handled).toBeLessThan(5000);
    expect(exited).toBe(false);
  });

  it("gives the next task none of the replies an earlier task left unread", async () => {
    await box.bind({ workflowId: "wf-a", inputJson: "null" });
    // One process writes, a line per write: once it has exited nothing more can arrive (a
    // pipeline's other processes may outlive the shell and write on into the next task's
    // binding, which is then theirs: an exec agent is one trust domain).
    const writer = flood(`while :; do echo '{"op":"get","key":"a-secret"}'; done > "${req()}"`);
    await eventually(() => handled > 100);
    await new Promise((resolve) => setTimeout(resolve, 300));
    await killGroup(writer);
    await box.collect();
    await box.bind({ workflowId: "wf-b", inputJson: "null" });
    expect(JSON.parse(await ask('{"op":"get","key":"b-key"}'))).toEqual({
      ok: true,
      result: { workflowId: "wf-b", key: "b-key" },
    });
  });
});
