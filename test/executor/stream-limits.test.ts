import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { serve } from "../../sdk/agent.js";
import type { StateReply } from "../../services/executor/state-relay.js";
import {
  maxStateRequestsInFlight,
  maxUnreadStdinBytes,
  StreamSession,
  type StreamTaskHandlers,
} from "../../services/executor/stream-session.js";
import { maxLineBytes } from "../../services/executor/protocol.js";
import { taskMessage } from "./fixtures.js";

const task = taskMessage;

const stateLine = (taskId: string, n: number) =>
  JSON.stringify({ type: "state", task_id: taskId, request_id: `r${n}`, op: "get", key: "k" }) +
  "\n";

const tick = () => new Promise((resolve) => setImmediate(resolve));

/** State handlers whose replies the test gives, counting the requests served at once. */
function heldState() {
  const waiting: Array<() => void> = [];
  const counts = { calls: 0, inFlight: 0, mostInFlight: 0 };
  const handlers: StreamTaskHandlers = {
    onLog: () => undefined,
    onState: () => {
      counts.calls++;
      counts.inFlight++;
      counts.mostInFlight = Math.max(counts.mostInFlight, counts.inFlight);
      return new Promise<StateReply>((resolve) =>
        waiting.push(() => {
          counts.inFlight--;
          resolve({ ok: true, result: { value: 1 } });
        }),
      );
    },
  };
  const answerAll = () => waiting.splice(0).forEach((answer) => answer());
  return { handlers, counts, answerAll };
}

async function readySession(stdin = new PassThrough()) {
  const stdout = new PassThrough();
  const broken: string[] = [];
  const s = new StreamSession(stdin, stdout, (why) => broken.push(why));
  stdout.write('{"type":"ready"}\n');
  await s.ready();
  return { s, stdin, stdout, broken };
}

/** The messages the session wrote to `stdin`, as they are read. */
function sentTo(stdin: PassThrough): Array<Record<string, unknown>> {
  const sent: Array<Record<string, unknown>> = [];
  let rest = "";
  stdin.on("data", (d: Buffer) => {
    const lines = (rest + d.toString()).split("\n");
    rest = lines.pop() ?? "";
    for (const l of lines) sent.push(JSON.parse(l) as Record<string, unknown>);
  });
  return sent;
}

describe("a stream session's limits", () => {
  describe("when an agent floods state requests", () => {
    it(`serves at most ${maxStateRequestsInFlight} at once, reads on as they are answered, and answers every one`, async () => {
      const { s, stdin, stdout } = await readySession();
      const sent = sentTo(stdin);
      const { handlers, counts, answerAll } = heldState();
      const done = s.run(task("t1"), handlers);
      const requests = 500;
      let flood = "";
      for (let n = 1; n <= requests; n++) flood += stateLine("t1", n);
      stdout.write(flood + '{"type":"result","task_id":"t1","result":"all answered"}\n');
      await tick();
      // The rest waits in the pipe, unread: stdout is paused.
      expect(counts.calls).toBe(maxStateRequestsInFlight);
      expect(s.stateRequestsInFlight).toBe(maxStateRequestsInFlight);
      expect(stdout.isPaused()).toBe(true);
      let ended: unknown;
      void done.then((end) => (ended = end));
      for (let round = 0; ended === undefined && round < 1000; round++) {
        answerAll();
        await tick();
      }
      expect(ended).toEqual({ kind: "result", result: "all answered" });
      answerAll(); // the last few, still in flight when the result was read
      await tick();
      expect(counts.calls).toBe(requests);
      expect(counts.mostInFlight).toBe(maxStateRequestsInFlight);
      expect(stdout.isPaused()).toBe(false);
      const answered = sent.filter((m) => m.type === "state_result").map((m) => m.request_id);
      expect(new Set(answered).size).toBe(requests);
    });

    it("still completes an SDK agent's Promise.all over many state calls", async () => {
      const toAgent = new PassThrough();
      const fromAgent = new PassThrough();
      let served = 0;
      let mostInFlight = 0;
      const serving = serve(
        async (_input, ctx) => {
          const values = await Promise.all(
            Array.from({ length: 200 }, (_, i) => ctx.state.increment(`k${i}`)),
          );
          return values.reduce((a, b) => a + b, 0);
        },
        { stdin: toAgent, stdout: fromAgent },
      );
      const s = new StreamSession(toAgent, fromAgent);
      await s.ready();
      const end = await s.run(task("t1"), {
        onLog: () => undefined,
        onState: async () => {
          mostInFlight = Math.max(mostInFlight, s.stateRequestsInFlight);
          await new Promise((resolve) => setTimeout(resolve, 1));
          return { ok: true, result: { value: ++served } };
        },
      });
      expect(end).toEqual({ kind: "result", result: (200 * 201) / 2 });
      expect(mostInFlight).toBeLessThanOrEqual(maxStateRequestsInFlight);
      s.close();
      await serving;
    });
  });

  describe("when an agent writes a line longer than the protocol's limit", () => {
    const tooLong =
      /^agent sent malformed output: a line on stdout is longer than 8388608 bytes: "x{200}"$/;

    it("breaks it once the line passes the limit, before its end comes", async () => {
      const { s, stdout, broken } = await readySession();
      const done = s.run(task("t1"), heldState().handlers);
      const mib = "x".repeat(1024 * 1024);
      for (let i = 0; i < 9 && s.broken === undefined; i++) {
        stdout.write(mib); // no end of line
        await tick();
      }
      expect(await done).toMatchObject({ kind: "broken" });
      expect(s.broken).toMatch(tooLong);
      expect(broken).toEqual([s.broken]);
    });

    it("breaks it when the whole line comes in one chunk", async () => {
      const { s, stdout } = await readySession();
      const done = s.run(task("t1"), heldState().handlers);
      stdout.write("x".repeat(maxLineBytes + 1) + "\n" + stateLine("t1", 1));
      expect(await done).toMatchObject({ kind: "broken" });
      expect(s.broken).toMatch(tooLong);
    });
  });

  describe("when an agent does not read its stdin", () => {
    it(`breaks it once more than ${maxUnreadStdinBytes} bytes are unread, and answers nothing more`, async () => {
      const stdin = new PassThrough(); // nobody reads it: the agent's stdin backs up
      const { s, stdout, broken } = await readySession(stdin);
      let calls = 0;
      const pad = "x".repeat(4096);
      const done = s.run(task("t1"), {
        onLog: () => undefined,
        onState: () => {
          calls++;
          return Promise.resolve({ ok: true, result: { pad } });
        },
      });
      let ended: unknown;
      void done.then((end) => (ended = end));
      let written = 0;
      for (let round = 0; ended === undefined && round < 10_000; round++) {
        let lines = "";
        for (let i = 0; i < 50; i++) lines += stateLine("t1", ++written);
        stdout.write(lines);
        await tick();
        // Never more than the limit plus the message that found it passed.
        expect(stdin.writableLength).toBeLessThanOrEqual(maxUnreadStdinBytes + 2 * pad.length);
      }
      expect(ended).toMatchObject({ kind: "broken" });
      expect(s.broken).toMatch(
        /^the agent does not read its stdin: \d+ bytes the Executor wrote to it are unread, more than 8388608; read every line of stdin/,
      );
      expect(broken).toEqual([s.broken]);
      // About the limit's worth of replies were written; a broken agent gets no more.
      expect(calls * pad.length).toBeLessThan(maxUnreadStdinBytes * 1.1);
      const before = calls;
      stdout.write(stateLine("t1", ++written));
      await tick();
      expect(calls).toBe(before);
      expect(await s.ping(50)).toBe(false);
    });
  });
});
