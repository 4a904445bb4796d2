import { PassThrough } from "node:stream";
import pino from "pino";
import { describe, expect, it } from "vitest";
import { InvalidArgumentError, PermissionDeniedError } from "../../lib/errors.js";
import { decideOutcome } from "../../services/executor/outcome.js";
import { mergedChunkBytes, mergeWindowMs, TaskOutput } from "../../services/executor/output.js";
import { decode, ProtocolError } from "../../services/executor/protocol.js";
import { relayStateRequest, type StateOps } from "../../services/executor/state-relay.js";
import { StreamSession } from "../../services/executor/stream-session.js";
import {
  checkEnv,
  checkLimits,
  checkNetwork,
  checkTaskRef,
} from "../../services/executor/validate.js";
import { processEnd, taskMessage } from "./fixtures.js";

const end = processEnd;

describe("decideOutcome (the contract's result rules)", () => {
  it("puts cancel, timeout and OOM before the exit code", () => {
    expect(decideOutcome(end({ exitCode: 137, cancelReason: "stop", timedOut: true })).status).toBe(
      "cancelled",
    );
    expect(decideOutcome(end({ exitCode: 137, timedOut: true }))).toMatchObject({
      status: "timed_out",
      error: "timed out after 30s",
    });
    expect(decideOutcome(end({ exitCode: 137, oomKilled: true }))).toMatchObject({
      status: "oom_killed",
      error: "killed for passing its memory limit of 64 MiB",
    });
  });

  it("prefers the agent's error file, then its last stderr line, for a non-zero exit", () => {
    const mailbox = { result: '{"a":1}', resultTooLarge: false, error: "bad input\n" };
    expect(decideOutcome(end({ exitCode: 2, mailbox })).error).toBe(
      "exited with code 2: bad input",
    );
    expect(decideOutcome(end({ exitCode: 2, stderr: Buffer.from("x\nlast words\n") })).error).toBe(
      "exited with code 2: last words",
    );
    expect(decideOutcome(end({ exitCode: 2 })).error).toBe("exited with code 2");
  });

  it("fails a task whose agent left something other than a regular file as its result or error", () => {
    const refused = "the agent left a symbolic link where its result.json belongs";
    const mailbox = { result: undefined, resultTooLarge: false, error: undefined, refused };
    expect(decideOutcome(end({ exitCode: 0, mailbox, stdout: Buffer.from("{}") }))).toEqual({
      status: "failed",
      result: undefined,
      error: refused,
    });
    expect(decideOutcome(end({ exitCode: 3, mailbox })).error).toBe(refused);
    expect(decideOutcome(end({ exitCode: 137, oomKilled: true, mailbox })).status).toBe(
      "oom_killed",
    );
  });

  it("reads the result file, else a JSON last line of stdout, else no result", () => {
    const file = { result: "[1,2]", resultTooLarge: false, error: undefined };
    expect(decideOutcome(end({ mailbox: file, stdout: Buffer.from('{"no":1}') })).result).toEqual([
      1, 2,
    ]);
    expect(decideOutcome(end({ stdout: Buffer.from('log\n{"yes":1}\n') })).result).toEqual({
      yes: 1,
    });
    expect(decideOutcome(end({ stdout: Buffer.from("just text\n") }))).toEqual({
      status: "succeeded",
      result: undefined,
      error: "",
    });
    const tooBig = { result: undefined, resultTooLarge: true, error: undefined };
    expect(decideOutcome(end({ mailbox: tooBig })).status).toBe("failed");
  });
});

describe("TaskOutput", () => {
  it("keeps the tail of each stream and says when it dropped output", () => {
    const out = new TaskOutput(10);
    out.write("stdout", Buffer.from("0123456789"));
    out.write("stderr", Buffer.from("err"));
    out.write("stdout", Buffer.from("abcd"));
    expect(out.tail("stdout")).toEqual({ data: Buffer.from("456789abcd"), truncated: true });
    expect(out.tail("stderr")).toEqual({ data: Buffer.from("err"), truncated: false });
  });

  it("tells followers of new chunks and of the end", () => {
    const out = new TaskOutput(100);
    const seen: Array<string | undefined> = [];
    out.follow((c) => seen.push(c && Buffer.from(c.data).toString()));
    out.write("stdout", Buffer.from("a"));
    out.end();
    out.write("stdout", Buffer.from("late"));
    expect(seen).toEqual(["a", undefined]);
  });

  // A process writing a byte at a time must not cost a record (and a log message) per byte.
  it("retains small writes of one stream close in time as one chunk; followers get each", () => {
    const now = 1000;
    const out = new TaskOutput(4096, () => now);
    const followed: string[] = [];
    out.follow((c) => c && followed.push(Buffer.from(c.data).toString()));
    const big = Buffer.alloc(1024 * 1024, "y"); // a read buffer the writes are views into
    for (let i = 0; i < 10_000; i++) out.write("stdout", big.subarray(i, i + 1));
    expect(followed).toHaveLength(10_000);
    const [only, ...more] = out.retained();
    expect(more).toEqual([]);
    expect(only).toMatchObject({ stream: "stdout", timeMs: 1000 });
    expect(Buffer.from(only!.data).equals(Buffer.alloc(4096, "y"))).toBe(true);
    expect(out.tail("stdout")).toEqual({ data: Buffer.alloc(4096, "y"), truncated: true });
    expect(out.size).toBe(4096);
    // The merged chunk holds a buffer of its own, not a view keeping the 1 MiB read alive.
    expect(only!.data.buffer.byteLength).toBeLessThanOrEqual(mergedChunkBytes);
  });

  it("keeps writes apart across streams, past the merge window, and past the chunk size", () => {
    let now = 0;
    const out = new TaskOutput(1024 * 1024, () => now);
    out.write("stdout", Buffer.from("a"));
    out.write("stderr", Buffer.from("b"));
    out.write("stdout", Buffer.from("c"));
    now += mergeWindowMs;
    out.write("stdout", Buffer.from("d")); // merged: within the window of "c"
    now += mergeWindowMs + 1;
    out.write("stdout", Buffer.from("e"));
    out.write("stdout", Buffer.alloc(mergedChunkBytes, "f")); // would pass the chunk size
    const chunks = out
      .retained()
      .map((c) => [c.stream, Buffer.from(c.data).toString().slice(0, 3), c.timeMs]);
    expect(chunks).toEqual([
      ["stdout", "a", 0],
      ["stderr", "b", 0],
      ["stdout", "cd", 0],
      ["stdout", "e", 2 * mergeWindowMs + 1],
      ["stdout", "fff", 2 * mergeWindowMs + 1],
    ]);
    expect(out.tail("stdout").data.toString()).toBe(`acde${"f".repeat(mergedChunkBytes)}`);
  });

  it("hands out retained chunks as they were: a later merge does not change them", () => {
    const out = new TaskOutput(1024, () => 0);
    out.write("stdout", Buffer.from("ab"));
    const before = out.retained();
    out.write("stdout", Buffer.from("cd"));
    expect(Buffer.from(before[0]!.data).toString()).toBe("ab");
    expect(Buffer.from(out.retained()[0]!.data).toString()).toBe("abcd");
  });
});

describe("the stream protocol", () => {
  it("decodes every agent message and rejects what breaks the protocol", () => {
    expect(decode('{"type":"ready","protocol":1}')).toEqual({ type: "ready", protocol: 1 });
    expect(decode('{"type":"result","task_id":"t"}')).toEqual({
      type: "result",
      task_id: "t",
      result: null,
    });
    expect(decode('{"type":"state","task_id":"t","request_id":"r","op":"get","key":"k"}')).toEqual({
      type: "state",
      task_id: "t",
      request_id: "r",
      request: { op: "get", key: "k" },
    });
    for (const bad of [
      "hello",
      "[]",
      '{"type":"result"}',
      '{"type":"nope","task_id":"t"}',
      '{"type":"ready","protocol":2}',
      '{"type":"error","task_id":"t","error":5}',
    ]) {
      expect(() => decode(bad), bad).toThrow(ProtocolError);
    }
  });

  function session() {
    const stdin = new PassThrough();
    const stdout = new PassThrough();
    const sent: unknown[] = [];
    stdin.on("data", (d: Buffer) =>
      d
        .toString()
        .trim()
        .split("\n")
        .forEach((l) => sent.push(JSON.parse(l))),
    );
    return { s: new StreamSession(stdin, stdout), stdout, sent };
  }
  const task = taskMessage;
  const handlers = {
    onLog: () => undefined,
    onState: () => Promise.resolve({ ok: true as const, result: {} }),
  };

  it("runs a task split across chunks and answers its state request", async () => {
    const { s, stdout, sent } = session();
    stdout.write('{"type":"rea');
    stdout.write('dy"}\n');
    await s.ready();
    const done = s.run(task("t1"), handlers);
    stdout.write('{"type":"state","task_id":"t1","request_id":"r1","op":"get","key":"k"}\n');
    await new Promise((r) => setImmediate(r));
    stdout.write('{"type":"result","task_id":"t1","result":{"ok":true}}\n');
    expect(await done).toEqual({ kind: "result", result: { ok: true } });
    expect(sent).toContainEqual({ type: "state_result", request_id: "r1", ok: true, result: {} });
  });

  it("ignores late words about an abandoned task but breaks on a stranger's", async () => {
    const { s, stdout } = session();
    stdout.write('{"type":"ready"}\n');
    await s.ready();
    const first = s.run(task("t1"), handlers);
    s.abandon("t1", { kind: "error", error: "timed out" });
    expect(await first).toEqual({ kind: "error", error: "timed out" });
    const second = s.run(task("t2"), handlers);
    stdout.write('{"type":"result","task_id":"t1","result":1}\n'); // late: ignored
    stdout.write('{"type":"result","task_id":"zzz","result":1}\n'); // nobody's: broken
    const r = await second;
    expect(r.kind).toBe("broken");
    expect(s.broken).toMatch(/names task "zzz"/);
  });

  it("ends the current task when the agent's stdout ends", async () => {
    const { s, stdout } = session();
    stdout.write('{"type":"ready"}\n');
    await s.ready();
    const r = s.run(task("t1"), handlers);
    stdout.end();
    expect(await r).toEqual({ kind: "closed" });
  });
});

describe("relayStateRequest", () => {
  const calls: unknown[] = [];
  const ops = new Proxy({} as StateOps, {
    get: (_t, name) => (req: unknown) => {
      calls.push([name, req]);
      return Promise.resolve({ version: 3n, value: 4, existed: true, length: 2n });
    },
  });

  it("scopes every request to the task's workflow", async () => {
    expect(await relayStateRequest(ops, "wf-1", { op: "increment", key: "k", delta: 2 })).toEqual({
      ok: true,
      result: { value: 4, version: 3 },
    });
    expect(calls.at(-1)).toEqual(["increment", { workflowId: "wf-1", key: "k", delta: 2 }]);
    expect(
      await relayStateRequest(ops, "wf-1", { op: "get", key: "k", workflow_id: "wf-2" }),
    ).toMatchObject({
      ok: false,
      code: "PERMISSION_DENIED",
    });
    expect(
      await relayStateRequest(ops, "wf-1", { op: "increment", key: "k", delta: "x" }),
    ).toMatchObject({
      ok: false,
      code: "INVALID_ARGUMENT",
    });
    expect(await relayStateRequest(ops, "wf-1", "nope")).toMatchObject({
      ok: false,
      code: "INVALID_ARGUMENT",
    });
  });
});

describe("validation", () => {
  const v = {
    defaults: { cpuMillis: 1000, memoryBytes: 512 * 1024 * 1024, pids: 512 },
    defaultTimeoutMs: 3_600_000,
    maxInputBytes: 1024,
    allowHostNetwork: false,
    hostCpus: 2,
    hostMemoryBytes: 8 * 1024 ** 3,
  };
  it("fills defaults and names the field and the allowed range", () => {
    expect(checkLimits({ cpuMillis: 0, memoryBytes: 0, pids: 0 }, v, "spec.limits")).toEqual(
      v.defaults,
    );
    expect(() => checkLimits({ cpuMillis: 5000 }, v, "spec.limits")).toThrow(
      /cpu_millis is 5000; use 10 to 2000/,
    );
    expect(() => checkLimits({ memoryBytes: 1 }, v, "spec.limits")).toThrow(InvalidArgumentError);
    expect(() => checkEnv({ AGENTAINER_INPUT: "x" }, "spec.env")).toThrow(/reserved/);
    expect(() => checkEnv({ "1BAD": "x" }, "spec.env")).toThrow(/invalid/);
    expect(() => checkNetwork("host", v, "spec.network")).toThrow(PermissionDeniedError);
    expect(
      checkTaskRef({ workflowId: "wf", stepId: "s", taskId: "", attempt: 0, index: 0 }).attempt,
    ).toBe(1);
    expect(() =>
      checkTaskRef({ workflowId: "wf", stepId: "", taskId: "", attempt: 0, index: 0 }),
    ).toThrow(/step_id/);
  });
});

describe("the TypeScript SDK", () => {
  it("answers a task cancelled before it started without running it", async () => {
    const { serve } = await import("../../sdk/agent.js");
    const stdin = new PassThrough();
    const stdout = new PassThrough();
    const lines: Array<Record<string, unknown>> = [];
    stdout.on("data", (d: Buffer) =>
      d
        .toString()
        .trim()
        .split("\n")
        .forEach((l) => lines.push(JSON.parse(l) as Record<string, unknown>)),
    );
    let ran = 0;
    const served = serve(
      async (input) => {
        ran++;
        await new Promise((r) => setTimeout(r, 5));
        return input;
      },
      { stdin, stdout },
    );
    const task = (id: string) =>
      JSON.stringify({
        type: "task",
        task_id: id,
        workflow_id: "w",
        step_id: "s",
        attempt: 1,
        index: 0,
        env: {},
        input: id,
      });
    // Both tasks and the cancel of the second arrive in one chunk, before either has started.
    stdin.write(
      `${task("t1")}\n${task("t2")}\n${JSON.stringify({ type: "cancel", task_id: "t2", reason: "x" })}\n`,
    );
    await new Promise((r) => setTimeout(r, 50));
    stdin.end();
    await served;
    expect(lines).toEqual([
      { type: "ready", protocol: 1 },
      { type: "result", task_id: "t1", result: "t1" },
      { type: "error", task_id: "t2", error: "cancelled before it started" },
    ]);
    expect(ran).toBe(1);
  });
});

describe("choosing the runtime", () => {
  it("says loudly that the local-process runtime isolates nothing", async () => {
    const { selectRuntime } = await import("../../services/executor/runtime/select.js");
    const lines: string[] = [];
    const logger = pino({ level: "warn" }, { write: (l: string) => lines.push(l) });
    const runtime = await selectRuntime("local", "/nonexistent.sock", logger);
    expect(runtime.kind).toBe("local");
    expect(runtime.isolated).toBe(false);
    expect(lines.join("")).toMatch(/NO ISOLATION/);
    const auto = await selectRuntime("auto", "/nonexistent.sock", logger);
    expect(auto.kind).toBe("local");
    expect(lines.join("")).toMatch(/No Docker engine answered at \/nonexistent\.sock/);
    await expect(selectRuntime("docker", "/nonexistent.sock", logger)).rejects.toThrow(
      /EXECUTOR_RUNTIME=docker but no Docker engine answers/,
    );
  });
});
