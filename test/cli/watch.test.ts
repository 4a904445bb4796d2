// watchRun's reconnects, against a fake WatchWorkflow stream (the spawned CLI tests cover the
// real server).
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import type { Clients } from "../../cli/client.js";
import { watchRun } from "../../cli/watch.js";
import { WorkflowStatus } from "../../gen/agentainer/workflow/v1/definition_pb.js";
import {
  WorkflowEventSchema,
  type WorkflowEvent,
} from "../../gen/agentainer/workflow/v1/events_pb.js";
import {
  WatchWorkflowResponseSchema,
  type WatchWorkflowRequest,
} from "../../gen/agentainer/workflow/v1/workflow_pb.js";

const progress = (sequence: number): WorkflowEvent =>
  create(WorkflowEventSchema, {
    sequence: BigInt(sequence),
    payload: {
      case: "progress",
      value: { steps: [{ stepId: "s", counts: { total: 10n, succeeded: BigInt(sequence) } }] },
    },
  });

const ended = (sequence: number, status = WorkflowStatus.SUCCEEDED): WorkflowEvent =>
  create(WorkflowEventSchema, {
    sequence: BigInt(sequence),
    payload: { case: "workflowStatusChanged", value: { status } },
  });

/** One connection: the events it delivers, then how it ends (an error, or a clean end). */
type Connection = { events: WorkflowEvent[]; then?: ConnectError };

const unavailable = () => new ConnectError("stream reset", Code.Unavailable);
const refused = () => new ConnectError("connect ECONNREFUSED 127.0.0.1:1", Code.Unavailable);

function fakeServer(connections: Connection[]) {
  const requests: WatchWorkflowRequest[] = [];
  const workflow = {
    watchWorkflow(req: WatchWorkflowRequest) {
      requests.push(req);
      const c = connections[requests.length - 1] ?? { events: [], then: unavailable() };
      return (async function* () {
        await Promise.resolve();
        for (const event of c.events) yield create(WatchWorkflowResponseSchema, { event });
        if (c.then) throw c.then;
      })();
    },
  } as unknown as Clients["workflow"];
  return { clients: { workflow }, requests };
}

function sink() {
  const lines: string[] = [];
  return { lines, out: { write: (s: string) => (lines.push(s), true), isTTY: false } };
}

const fast = { json: false, maxRetries: 2, retryDelayMs: 1 };

describe("watchRun", () => {
  describe("when a stream that delivered events breaks", () => {
    it("reconnects after the last sequence seen, and any event resets its retries", async () => {
      const breaks = [1, 2, 3, 4, 5, 6].map((n) => ({
        events: [progress(n)],
        then: unavailable(),
      }));
      const server = fakeServer([...breaks, { events: [ended(7)] }]);
      const { out } = sink();
      const end = await watchRun(server.clients, "wf_a", { ...fast, out });
      expect(end.status).toBe(WorkflowStatus.SUCCEEDED);
      expect(server.requests.map((r) => r.afterSequence)).toEqual([
        undefined,
        1n,
        2n,
        3n,
        4n,
        5n,
        6n,
      ]);
    });

    it("also reconnects when the stream ends before the run does", async () => {
      const server = fakeServer([{ events: [progress(1)] }, { events: [ended(2)] }]);
      const { out } = sink();
      const end = await watchRun(server.clients, "wf_a", { ...fast, out });
      expect(end.status).toBe(WorkflowStatus.SUCCEEDED);
      expect(server.requests).toHaveLength(2);
    });

    it("gives up after maxRetries reconnects in a row that bring nothing", async () => {
      const server = fakeServer([{ events: [progress(1)], then: unavailable() }]);
      const { out } = sink();
      await expect(watchRun(server.clients, "wf_a", { ...fast, out })).rejects.toMatchObject({
        code: Code.Unavailable,
      });
      expect(server.requests).toHaveLength(3);
    });

    it("fails at once when the reconnect says the workflow is gone", async () => {
      const gone = new ConnectError('no workflow "wf_a"', Code.NotFound);
      const server = fakeServer([
        { events: [progress(1)], then: unavailable() },
        { events: [], then: gone },
      ]);
      const { out } = sink();
      await expect(watchRun(server.clients, "wf_a", { ...fast, out })).rejects.toBe(gone);
      expect(server.requests).toHaveLength(2);
    });
  });

  it("fails at once on NOT_FOUND", async () => {
    const server = fakeServer([{ events: [], then: new ConnectError("no", Code.NotFound) }]);
    const { out } = sink();
    await expect(watchRun(server.clients, "wf_x", { ...fast, out })).rejects.toMatchObject({
      code: Code.NotFound,
    });
    expect(server.requests).toHaveLength(1);
  });

  it("fails at once when the server never answered", async () => {
    const server = fakeServer([{ events: [], then: refused() }]);
    const { out } = sink();
    await expect(watchRun(server.clients, "wf_x", { ...fast, out })).rejects.toMatchObject({
      code: Code.Unavailable,
    });
    expect(server.requests).toHaveLength(1);
  });

  it("prints the run's end once in plain-line mode, even when it had already ended", async () => {
    const snapshot = create(WorkflowEventSchema, {
      sequence: 3n,
      payload: { case: "snapshot", value: { status: WorkflowStatus.FAILED, statusMessage: "x" } },
    });
    const server = fakeServer([{ events: [snapshot] }]);
    const { out, lines } = sink();
    const end = await watchRun(server.clients, "wf_a", { ...fast, out });
    expect(end.status).toBe(WorkflowStatus.FAILED);
    expect(lines).toEqual(["workflow wf_a: failed (x)\n"]);
  });
});
