import { randomUUID } from "node:crypto";
import {
  create,
  fromBinary,
  fromJson,
  type JsonValue,
  type MessageInitShape,
} from "@bufbuild/protobuf";
import { Channel } from "../../lib/channel.js";
import { DurationSchema, ValueSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { connect as natsConnect } from "nats";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import {
  AgentMode,
  AgentState,
  ExecutorService,
  TaskStatus,
  type DispatchTasksRequestSchema,
  type DispatchTasksResponse,
} from "../../gen/agentainer/executor/v1/executor_pb.js";
import { AgentEventSchema, TaskEventSchema } from "../../gen/agentainer/executor/v1/events_pb.js";
import { StateService } from "../../gen/agentainer/state/v1/state_pb.js";
import { labels } from "../../services/executor/contract.js";
import { startExecutorService, type RunningExecutor } from "../../services/executor/main.js";
import type { ContainerRuntime } from "../../services/executor/runtime/runtime.js";
import { startStateService, type RunningService } from "../../services/state/main.js";
import { eventually } from "../support/await.js";

/** How one runtime runs the suite's agents. */
export interface SuiteRuntime {
  name: string;
  runtime: () => Promise<ContainerRuntime>;
  /** Image for shell tasks (ignored by the local runtime). */
  shellImage: string;
  /** Image and argv of the stream test agent (agents/test-agent.ts). */
  streamAgent: { image: string; command: string[]; workingDir: string };
  /** Image and argv that run the agent program agents/<name>.ts. */
  program: (name: string) => { image: string; command: string[]; workingDir: string };
}

/** A google.protobuf.Value from plain JSON. */
const valueOf = (v: unknown) => fromJson(ValueSchema, v as JsonValue);

const seconds = (s: number) =>
  create(DurationSchema, { seconds: BigInt(Math.floor(s)), nanos: Math.round((s % 1) * 1e9) });

export function executorSuite(rt: SuiteRuntime): void {
  describe(`the Executor on the ${rt.name} runtime`, () => {
    let state: RunningService;
    let executor: RunningExecutor;
    let runtime: ContainerRuntime;
    let client: Client<typeof ExecutorService>;
    let stateClient: Client<typeof StateService>;
    const node = `test-${randomUUID().slice(0, 8)}`;

    beforeAll(async () => {
      state = await startStateService({ PORT: "0", HOST: "127.0.0.1", LOG_LEVEL: "silent" });
      runtime = await rt.runtime();
      executor = await startExecutorService(
        {
          PORT: "0",
          HOST: "127.0.0.1",
          LOG_LEVEL: "silent",
          EXECUTOR_NODE_ID: node,
          STATE_URL: state.url,
          NATS_URL: inject("natsUrl"),
          EXECUTOR_DEFAULT_MEMORY_BYTES: String(64 * 1024 * 1024),
        },
        { runtime },
      );
      client = createClient(ExecutorService, createGrpcTransport({ baseUrl: executor.url }));
      stateClient = createClient(StateService, createGrpcTransport({ baseUrl: state.url }));
    });

    afterAll(async () => {
      await executor?.close();
      // No container of this Executor node is left behind.
      const left = await runtime.listContainers({ [labels.nodeId]: node });
      expect(left.map((c) => c.name)).toEqual([]);
      await runtime.close();
      await state?.close();
    });

    async function newWorkflow(): Promise<string> {
      const workflowId = "wf-" + randomUUID();
      await stateClient.createWorkflowState({ workflowId });
      return workflowId;
    }

    const shell = (script: string) => ({ image: rt.shellImage, command: ["sh", "-c", script] });

    async function runShell(script: string, extra: Record<string, unknown> = {}) {
      const workflowId = (extra.workflowId as string | undefined) ?? (await newWorkflow());
      const { result } = await client.runTask({
        ref: { workflowId, stepId: "step", index: 0 },
        spec: { ...shell(script), ...(extra.spec as object) },
      });
      if (result === undefined) throw new Error("no result");
      return result;
    }

    it("runs a cold task: identity and input in, JSON result, stdout and stderr out", async () => {
      const workflowId = await newWorkflow();
      const { result } = await client.runTask({
        ref: {
          workflowId,
          stepId: "count words",
          index: 3,
          attempt: 2,
          taskId: `t-${randomUUID()}`,
        },
        spec: {
          ...shell(
            'echo "$AGENTAINER_WORKFLOW_ID $AGENTAINER_STEP_ID $AGENTAINER_INDEX $AGENTAINER_ATTEMPT $GREETING"; ' +
              'echo "log line" >&2; cat "$AGENTAINER_INPUT_FILE" > "$AGENTAINER_RESULT_FILE"; test "$AGENTAINER_INPUT" = "$(cat "$AGENTAINER_INPUT_FILE")"',
          ),
          env: { GREETING: "hi" },
          input: valueOf({ words: 42 }),
        },
      });
      expect(result?.status).toBe(TaskStatus.SUCCEEDED);
      expect(result?.exitCode).toBe(0);
      expect(Buffer.from(result!.stdout).toString()).toBe(`${workflowId} count words 3 2 hi\n`);
      expect(Buffer.from(result!.stderr).toString()).toBe("log line\n");
      expect(result?.result?.kind.case).toBe("structValue");
      expect(JSON.stringify(result?.result)).toContain("42");
      expect(result?.containerName).toMatch(rt.name === "docker" ? /^wf-.*-count-words-3/ : /.*/);
      expect(
        Number(result?.timings?.total?.nanos ?? 0) + Number(result?.timings?.total?.seconds ?? 0n),
      ).toBeGreaterThan(0);
    });

    it("takes the last stdout line as the result when it is JSON and no result file was written", async () => {
      const r = await runShell("echo starting; echo '{\"sum\": 7}'");
      expect(r.status).toBe(TaskStatus.SUCCEEDED);
      expect(r.result?.kind.case).toBe("structValue");
      const plain = await runShell("echo just text");
      expect(plain.status).toBe(TaskStatus.SUCCEEDED);
      expect(plain.result).toBeUndefined();
    });

    it("fails a task with the agent's own error text, or its exit code and last stderr line", async () => {
      const own = await runShell(
        'echo "the input had no words" > "$AGENTAINER_ERROR_FILE"; exit 4',
      );
      expect(own.status).toBe(TaskStatus.FAILED);
      expect(own.exitCode).toBe(4);
      expect(own.error).toBe("exited with code 4: the input had no words");
      const plain = await runShell("echo first >&2; echo 'disk is full' >&2; exit 3");
      expect(plain.error).toBe("exited with code 3: disk is full");
      const zero = await runShell('echo "bad input" > "$AGENTAINER_ERROR_FILE"');
      expect(zero.status).toBe(TaskStatus.FAILED);
      expect(zero.error).toBe("bad input");
      const notJson = await runShell('echo "{nope" > "$AGENTAINER_RESULT_FILE"');
      expect(notJson.status).toBe(TaskStatus.FAILED);
      expect(notJson.error).toMatch(/result file is not JSON/);
    });

    it("kills a task at its timeout and says so", async () => {
      const r = await runShell("sleep 30", { spec: { timeout: seconds(0.5) } });
      expect(r.status).toBe(TaskStatus.TIMED_OUT);
      expect(r.error).toBe("timed out after 500ms");
      expect(Number(r.timings?.total?.seconds ?? 99n)).toBeLessThan(10);
    });

    it("cancels a running cold task", async () => {
      const workflowId = await newWorkflow();
      const taskId = `cancel-${randomUUID()}`;
      const running = client.runTask({
        ref: { workflowId, stepId: "s", taskId },
        spec: shell("echo started; sleep 30"),
      });
      await eventually(
        async () => (await client.getTask({ taskId })).task?.status === TaskStatus.RUNNING,
      );
      const c = await client.cancelTask({ taskId, reason: "user asked" });
      expect(c.cancelled).toBe(true);
      const { result } = await running;
      expect(result?.status).toBe(TaskStatus.CANCELLED);
      expect(result?.error).toBe("cancelled: user asked");
      expect((await client.cancelTask({ taskId })).cancelled).toBe(false);
    });

    it("relays a shell agent's state operations to its own workflow only", async () => {
      const workflowId = await newWorkflow();
      const script = `
        st() { printf '%s\n' "$1" > "$AGENTAINER_STATE_REQUEST"; read -r reply < "$AGENTAINER_STATE_RESPONSE"; echo "$reply"; }
        st '{"op":"increment","key":"hits","delta":5}'
        st '{"op":"append","key":"log","values":["a","b"]}'
        st '{"op":"get","key":"hits"}'
        st '{"op":"get","key":"hits","workflow_id":"someone-else"}'
        st '{"op":"nope"}'
      `;
      const r = await runShell(script, { workflowId });
      expect(r.status).toBe(TaskStatus.SUCCEEDED);
      const replies = Buffer.from(r.stdout)
        .toString()
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(replies[0]).toEqual({ ok: true, result: { value: 5, version: 1 } });
      expect(replies[1]).toEqual({ ok: true, result: { length: 2, version: 2 } });
      expect(replies[2]).toEqual({ ok: true, result: { value: 5, version: 2 } });
      expect(replies[3]).toMatchObject({ ok: false, code: "PERMISSION_DENIED" });
      expect(replies[4]).toMatchObject({ ok: false, code: "INVALID_ARGUMENT" });
      const all = await stateClient.getAll({ workflowId });
      expect(all.values).toEqual({ hits: 5, log: ["a", "b"] });
    });

    it("rejects bad requests with precise statuses", async () => {
      const workflowId = await newWorkflow();
      const code = async (p: Promise<unknown>) => {
        try {
          await p;
          return "ok";
        } catch (err) {
          return ConnectError.from(err).code;
        }
      };
      const ref = { workflowId, stepId: "s" };
      expect(await code(client.runTask({ ref, spec: { image: "", command: ["true"] } }))).toBe(
        Code.InvalidArgument,
      );
      expect(
        await code(
          client.runTask({ ref: { workflowId: "bad id!", stepId: "s" }, spec: shell("true") }),
        ),
      ).toBe(Code.InvalidArgument);
      expect(
        await code(client.runTask({ ref, spec: { ...shell("true"), env: { AGENTAINER_X: "1" } } })),
      ).toBe(Code.InvalidArgument);
      expect(
        await code(client.runTask({ ref, spec: { ...shell("true"), command: ["", "x"] } })),
      ).toBe(Code.InvalidArgument);
      expect(
        await code(
          client.runTask({ ref, spec: { ...shell("true"), limits: { memoryBytes: 1000n } } }),
        ),
      ).toBe(Code.InvalidArgument);
      expect(
        await code(client.runTask({ ref, spec: { ...shell("true"), limits: { cpuMillis: -1n } } })),
      ).toBe(Code.InvalidArgument);
      expect(
        await code(
          client.runTask({ ref, spec: { ...shell("true"), labels: { "agentainer.x": "1" } } }),
        ),
      ).toBe(Code.InvalidArgument);
      expect(await code(client.runTask({ ref, spec: { ...shell("true"), network: 3 } }))).toBe(
        Code.PermissionDenied,
      );
      // "." and ".." would name the directory of every task's mailbox.
      for (const taskId of [".", ".."]) {
        const err = await client
          .runTask({ ref: { ...ref, taskId }, spec: shell("true") })
          .catch((e: unknown) => ConnectError.from(e));
        expect(err).toBeInstanceOf(ConnectError);
        expect((err as ConnectError).code).toBe(Code.InvalidArgument);
        expect((err as ConnectError).rawMessage).toContain('"." and ".." are not ids');
      }
      expect(await code(client.getTask({ taskId: "nope" }))).toBe(Code.NotFound);
      expect(await code(client.getAgent({ agentId: "nope" }))).toBe(Code.NotFound);
      expect(await code(client.runTaskOnAgent({ agentId: "nope", ref, command: ["true"] }))).toBe(
        Code.NotFound,
      );
      // A task id reused for another task.
      const taskId = `dup-${randomUUID()}`;
      await client.runTask({ ref: { ...ref, taskId }, spec: shell("true") });
      expect(
        await code(client.runTask({ ref: { ...ref, taskId, index: 9 }, spec: shell("true") })),
      ).toBe(Code.AlreadyExists);
      // The same request again returns the same task without running it twice.
      const again = await client.runTask({ ref: { ...ref, taskId }, spec: shell("true") });
      expect(again.result?.taskId).toBe(taskId);
    });

    it("lists a workflow's tasks by step and status, page by page", async () => {
      const workflowId = await newWorkflow();
      for (let i = 0; i < 3; i++) {
        await client.runTask({
          ref: { workflowId, stepId: "map", index: i },
          spec: shell(i === 1 ? "exit 1" : "true"),
        });
      }
      await client.runTask({ ref: { workflowId, stepId: "reduce" }, spec: shell("true") });
      const map = await client.listTasks({ workflowId, stepId: "map" });
      expect(map.tasks.map((t) => t.ref?.index)).toEqual([0, 1, 2]);
      const failed = await client.listTasks({ workflowId, statuses: [TaskStatus.FAILED] });
      expect(failed.tasks.map((t) => t.ref?.index)).toEqual([1]);
      const first = await client.listTasks({ workflowId, pageSize: 3 });
      expect(first.tasks).toHaveLength(3);
      const second = await client.listTasks({
        workflowId,
        pageSize: 3,
        pageToken: first.nextPageToken,
      });
      expect(second.tasks.map((t) => t.ref?.stepId)).toEqual(["reduce"]);
      expect(second.nextPageToken).toBe("");
    });

    it("streams a task's logs, following until it ends", async () => {
      const workflowId = await newWorkflow();
      const taskId = `logs-${randomUUID()}`;
      const run = client.runTask({
        ref: { workflowId, stepId: "s", taskId },
        spec: shell("echo one; sleep 0.3; echo two >&2; sleep 0.3; echo three"),
      });
      await eventually(async () => (await client.getTask({ taskId })).task !== undefined);
      const chunks: string[] = [];
      for await (const m of client.streamTaskLogs({ taskId, follow: true })) {
        chunks.push(Buffer.from(m.data).toString());
      }
      await run;
      expect(chunks.join("")).toBe("one\ntwo\nthree\n");
      const stderrOnly: string[] = [];
      for await (const m of client.streamTaskLogs({ taskId, stream: 2 }))
        stderrOnly.push(Buffer.from(m.data).toString());
      expect(stderrOnly.join("")).toBe("two\n");
    });

    it("runs exec tasks on a warm agent, with per-task env and input", async () => {
      const workflowId = await newWorkflow();
      const { agent } = await client.createAgent({
        spec: { image: rt.shellImage, command: ["sleep", "3600"], mode: AgentMode.EXEC },
      });
      expect(agent?.state).toBe(AgentState.READY);
      const agentId = agent!.agentId;
      try {
        for (let i = 0; i < 3; i++) {
          const { result } = await client.runTaskOnAgent({
            agentId,
            ref: { workflowId, stepId: "warm", index: i },
            command: ["sh", "-c", 'echo "{\\"i\\": $AGENTAINER_INDEX, \\"who\\": \\"$WHO\\"}"'],
            env: { WHO: `caller-${i}` },
          });
          expect(result?.status).toBe(TaskStatus.SUCCEEDED);
          expect(JSON.stringify(result?.result)).toContain(`caller-${i}`);
          expect(result?.agentState).toBe(AgentState.READY);
        }
        // State from an exec task, through the agent's own mailbox; a reply the previous task
        // left unread does not reach the next one.
        const st = (req: string) =>
          `printf '%s\\n' '${req}' > "$AGENTAINER_STATE_REQUEST"; read -r r < "$AGENTAINER_STATE_RESPONSE"; echo "$r"`;
        const unread = await client.runTaskOnAgent({
          agentId,
          ref: { workflowId, stepId: "warm", index: 10 },
          command: [
            "sh",
            "-c",
            `printf '%s\\n' '{"op":"increment","key":"k"}' > "$AGENTAINER_STATE_REQUEST"; sleep 0.3`,
          ],
        });
        expect(unread.result?.status).toBe(TaskStatus.SUCCEEDED);
        const stateTask = await client.runTaskOnAgent({
          agentId,
          ref: { workflowId, stepId: "warm", index: 11 },
          command: ["sh", "-c", st('{"op":"increment","key":"k","delta":10}')],
        });
        expect(JSON.parse(Buffer.from(stateTask.result!.stdout).toString())).toEqual({
          ok: true,
          result: { value: 11, version: 2 },
        });
        const failing = await client.runTaskOnAgent({
          agentId,
          ref: { workflowId, stepId: "warm", index: 9 },
          command: ["sh", "-c", "echo nope >&2; exit 2"],
        });
        expect(failing.result?.error).toBe("exited with code 2: nope");
        const got = await client.getAgent({ agentId });
        expect(got.agent?.uses).toBe(6n);
        const check = await client.checkAgent({ agentId, command: ["true"] });
        expect(check.healthy).toBe(true);
        const bad = await client.checkAgent({
          agentId,
          command: ["sh", "-c", "echo sick; exit 1"],
        });
        expect(bad.healthy).toBe(false);
        expect(bad.detail).toContain("sick");
        expect(bad.agent?.state).toBe(AgentState.UNHEALTHY);
        const refused = await client
          .runTaskOnAgent({ agentId, ref: { workflowId, stepId: "x" }, command: ["true"] })
          .catch((e: unknown) => ConnectError.from(e));
        expect((refused as ConnectError).code).toBe(Code.FailedPrecondition);
        expect((await client.checkAgent({ agentId, command: ["true"] })).agent?.state).toBe(
          AgentState.READY,
        );
      } finally {
        const d = await client.destroyAgent({ agentId, reason: "test over" });
        expect(d.existed).toBe(true);
      }
      expect((await client.destroyAgent({ agentId })).existed).toBe(false);
    });

    it("runs stream tasks on a warm agent: results, errors, logs, state and refusals", async () => {
      const workflowId = await newWorkflow();
      const { agent } = await client.createAgent({
        poolId: "test-pool",
        spec: { ...rt.streamAgent, mode: AgentMode.STREAM },
        startupTimeout: seconds(30),
      });
      const agentId = agent!.agentId;
      const run = async (input: Record<string, unknown>, index = 0) =>
        (
          await client.runTaskOnAgent({
            agentId,
            ref: { workflowId, stepId: "stream", index },
            env: { MODE: "test" },
            input: valueOf(input),
          })
        ).result!;
      try {
        const echo = await run({ action: "echo", n: 1 });
        expect(echo.status).toBe(TaskStatus.SUCCEEDED);
        expect(JSON.stringify(echo.result)).toContain("test"); // env arrived
        const first = await run({ action: "state", key: "n" }, 1);
        const second = await run({ action: "state", key: "n" }, 2);
        expect(JSON.stringify(first.result)).toContain('"firstOwner"');
        expect(second.status).toBe(TaskStatus.SUCCEEDED);
        const values = (await stateClient.getAll({ workflowId })).values as Record<string, unknown>;
        expect(values.n).toBe(2);
        expect(values.members).toEqual([1, 2]);
        const refused = await run({ action: "other-workflow", workflow: "wf-someone-else" });
        // The refused request does not break the agent; the task gets its own answer.
        expect(refused.status).toBe(TaskStatus.SUCCEEDED);
        const failed = await run({ action: "fail", message: "no words in input" });
        expect(failed.status).toBe(TaskStatus.FAILED);
        expect(failed.error).toBe("no words in input");
        const logged = await run({ action: "log", lines: 2 });
        expect(Buffer.from(logged.stderr).toString()).toContain("line 1");
        const timed = (
          await client.runTaskOnAgent({
            agentId,
            ref: { workflowId, stepId: "stream" },
            input: valueOf({ action: "sleep", ms: 60_000 }),
            timeout: seconds(0.3),
          })
        ).result!;
        expect(timed.status).toBe(TaskStatus.TIMED_OUT);
        expect(timed.agentState).toBe(AgentState.READY); // it answered the cancel
        const uses = (await client.getAgent({ agentId })).agent?.uses;
        expect(uses).toBe(7n);
        expect((await client.checkAgent({ agentId })).healthy).toBe(true);
        const broken = await run({ action: "garbage" });
        expect(broken.status).toBe(TaskStatus.FAILED);
        expect(broken.error).toMatch(/agent sent malformed output.*this is not the protocol/);
        expect(broken.agentState).toBe(AgentState.UNHEALTHY);
      } finally {
        await client.destroyAgent({ agentId, force: true });
      }
    });

    it("fails a stream task whose agent exits, and reports the agent EXITED", async () => {
      const workflowId = await newWorkflow();
      const { agent } = await client.createAgent({
        spec: { ...rt.streamAgent, mode: AgentMode.STREAM },
      });
      const agentId = agent!.agentId;
      try {
        const r = await client.runTaskOnAgent({
          agentId,
          ref: { workflowId, stepId: "s" },
          input: valueOf({ action: "exit", code: 7 }),
        });
        expect(r.result?.status).toBe(TaskStatus.FAILED);
        expect(r.result?.error).toMatch(/exited during the task/);
        await eventually(
          async () => (await client.getAgent({ agentId })).agent?.state === AgentState.EXITED,
        );
        const dead = await client
          .runTaskOnAgent({ agentId, ref: { workflowId, stepId: "s" }, input: valueOf({}) })
          .catch((e: unknown) => ConnectError.from(e));
        expect((dead as ConnectError).code).toBe(Code.FailedPrecondition);
        expect((dead as ConnectError).rawMessage).toMatch(/is EXITED/);
      } finally {
        await client.destroyAgent({ agentId, force: true });
      }
    });

    it("publishes task and agent lifecycle events on NATS", async () => {
      const workflowId = await newWorkflow();
      const nc = await natsConnect({ servers: inject("natsUrl") });
      const tasks: string[] = [];
      const agents: string[] = [];
      nc.subscribe(`agentainer.executor.task.*.${workflowId}`, {
        callback: (_err, m) => {
          const e = fromBinary(TaskEventSchema, m.data);
          tasks.push(`${m.subject.split(".")[3]} ${e.ref?.index}${e.error ? ` ${e.error}` : ""}`);
        },
      });
      let agentId = "";
      nc.subscribe("agentainer.executor.agent.*", {
        callback: (_err, m) => {
          const e = fromBinary(AgentEventSchema, m.data);
          if (e.agentId === agentId) agents.push(`${m.subject.split(".")[3]} ${e.reason}`.trim());
        },
      });
      await nc.flush();
      try {
        const ref = (index: number) => ({ workflowId, stepId: "s", index });
        await client.runTask({ ref: ref(0), spec: shell("true") });
        await client.runTask({ ref: ref(1), spec: shell("echo broken >&2; exit 3") });
        await client.runTask({
          ref: ref(2),
          spec: { ...shell("sleep 30"), timeout: seconds(0.2) },
        });
        agentId = `events-${randomUUID()}`;
        await client.createAgent({
          agentId,
          spec: { image: rt.shellImage, command: ["sleep", "3600"], mode: AgentMode.EXEC },
        });
        await client.destroyAgent({ agentId, reason: "test over" });
        await eventually(() => Promise.resolve(tasks.length === 9 && agents.length === 3));
        expect(tasks).toEqual([
          "created 0",
          "started 0",
          "succeeded 0",
          "created 1",
          "started 1",
          "failed 1 exited with code 3: broken",
          "created 2",
          "started 2",
          "timed_out 2 timed out after 200ms",
        ]);
        expect(agents).toEqual(["created", "ready", "destroyed test over"]);
      } finally {
        await nc.close();
      }
    });

    it("cancels warm tasks: an exec'd process, a stream agent's task, and a forced destroy", async () => {
      const workflowId = await newWorkflow();
      const { agent: execAgent } = await client.createAgent({
        spec: { image: rt.shellImage, command: ["sleep", "3600"], mode: AgentMode.EXEC },
      });
      const { agent: streamAgent } = await client.createAgent({
        spec: { ...rt.streamAgent, mode: AgentMode.STREAM },
      });
      const running = (taskId: string) => async () =>
        (await client.getTask({ taskId })).task?.status === TaskStatus.RUNNING;
      try {
        const execTask = `exec-cancel-${randomUUID()}`;
        const execRun = client.runTaskOnAgent({
          agentId: execAgent!.agentId,
          ref: { workflowId, stepId: "s", taskId: execTask },
          command: ["sleep", "30"],
        });
        await eventually(running(execTask));
        await client.cancelTask({ taskId: execTask, reason: "enough" });
        const execResult = (await execRun).result!;
        expect(execResult.status).toBe(TaskStatus.CANCELLED);
        expect(execResult.error).toBe("cancelled: enough");
        expect(execResult.agentState).toBe(AgentState.READY);

        const streamTask = `stream-cancel-${randomUUID()}`;
        const streamRun = client.runTaskOnAgent({
          agentId: streamAgent!.agentId,
          ref: { workflowId, stepId: "s", taskId: streamTask },
          input: valueOf({ action: "sleep", ms: 30_000 }),
        });
        await eventually(running(streamTask));
        await client.cancelTask({ taskId: streamTask, reason: "stop", gracePeriod: seconds(5) });
        const streamResult = (await streamRun).result!;
        expect(streamResult.status).toBe(TaskStatus.CANCELLED);
        expect(streamResult.agentState).toBe(AgentState.READY); // it stopped when asked

        const busyTask = `busy-${randomUUID()}`;
        const busyRun = client.runTaskOnAgent({
          agentId: execAgent!.agentId,
          ref: { workflowId, stepId: "s", taskId: busyTask },
          command: ["sleep", "30"],
        });
        await eventually(running(busyTask));
        const refused = await client
          .destroyAgent({ agentId: execAgent!.agentId })
          .catch((e: unknown) => ConnectError.from(e));
        expect((refused as ConnectError).code).toBe(Code.FailedPrecondition);
        const forced = await client.destroyAgent({
          agentId: execAgent!.agentId,
          force: true,
          reason: "drain",
        });
        expect(forced.agent?.state).toBe(AgentState.DESTROYED);
        const busy = (await busyRun).result!;
        expect(busy.status).toBe(TaskStatus.CANCELLED);
        expect(busy.error).toBe("cancelled: agent destroyed: drain");
      } finally {
        await client.destroyAgent({ agentId: execAgent!.agentId, force: true });
        await client.destroyAgent({ agentId: streamAgent!.agentId, force: true });
      }
    });

    it("dispatches tasks over one stream, answering each by its call id", async () => {
      const workflowId = await newWorkflow();
      const { agent } = await client.createAgent({
        spec: { ...rt.streamAgent, mode: AgentMode.STREAM },
      });
      const agentId = agent!.agentId;
      const requests = new Channel<MessageInitShape<typeof DispatchTasksRequestSchema>>();
      const responses = client.dispatchTasks(requests)[Symbol.asyncIterator]();
      const next = async () => (await responses.next()).value as DispatchTasksResponse;
      try {
        for (let i = 0; i < 5; i++) {
          requests.push({
            callId: `c${i}`,
            task: { agentId, ref: { workflowId, stepId: "d", index: i }, input: valueOf({ n: i }) },
          });
          const r = await next();
          expect(r.callId).toBe(`c${i}`);
          expect(r.outcome.case).toBe("result");
          expect(JSON.stringify((r.outcome.value as { result?: unknown }).result)).toContain(
            `"numberValue","value":${i}`,
          );
        }
        requests.push({
          callId: "bad",
          task: { agentId: "nobody", ref: { workflowId, stepId: "d" } },
        });
        const bad = await next();
        expect(bad.callId).toBe("bad");
        expect(bad.outcome).toMatchObject({ case: "error", value: { code: Code.NotFound } });
        requests.push({ callId: "", task: { agentId, ref: { workflowId, stepId: "d" } } });
        expect((await next()).outcome).toMatchObject({
          case: "error",
          value: { code: Code.InvalidArgument },
        });
        requests.close();
        expect((await responses.next()).done).toBe(true);
      } finally {
        await client.destroyAgent({ agentId, force: true });
      }
    });

    it("lists agents by pool, label and state, page by page", async () => {
      const pool = `pool-${randomUUID().slice(0, 8)}`;
      const ids: string[] = [];
      try {
        for (let i = 0; i < 3; i++) {
          const { agent } = await client.createAgent({
            poolId: pool,
            spec: {
              image: rt.shellImage,
              command: ["sleep", "3600"],
              labels: { tier: i === 2 ? "b" : "a" },
            },
          });
          ids.push(agent!.agentId);
        }
        const first = await client.listAgents({ poolId: pool, pageSize: 2 });
        expect(first.agents.map((a) => a.agentId)).toEqual(ids.slice(0, 2));
        const second = await client.listAgents({
          poolId: pool,
          pageSize: 2,
          pageToken: first.nextPageToken,
        });
        expect(second.agents.map((a) => a.agentId)).toEqual(ids.slice(2));
        expect(second.nextPageToken).toBe("");
        const tierB = await client.listAgents({ poolId: pool, labels: { tier: "b" } });
        expect(tierB.agents.map((a) => a.agentId)).toEqual([ids[2]]);
        const ready = await client.listAgents({ poolId: pool, states: [AgentState.BUSY] });
        expect(ready.agents).toEqual([]);
        const wrong = await client
          .listAgents({ poolId: "other", pageToken: first.nextPageToken })
          .catch((e: unknown) => ConnectError.from(e));
        expect((wrong as ConnectError).code).toBe(Code.InvalidArgument);
      } finally {
        for (const agentId of ids) await client.destroyAgent({ agentId });
      }
    });

    it("runs the word-count agents: mapper over the stream protocol, reducer one-shot with state", async () => {
      const workflowId = await newWorkflow();
      const { agent } = await client.createAgent({
        spec: { ...rt.program("word-mapper"), mode: AgentMode.STREAM },
      });
      const counts = [];
      try {
        for (const [index, item] of ["The cat and the hat", "a cat"].entries()) {
          const { result } = await client.runTaskOnAgent({
            agentId: agent!.agentId,
            ref: { workflowId, stepId: "map", index },
            input: valueOf({ item }),
          });
          expect(result?.status).toBe(TaskStatus.SUCCEEDED);
          counts.push(result?.result);
        }
      } finally {
        await client.destroyAgent({ agentId: agent!.agentId, force: true });
      }
      const results = counts.map((v) => (v?.kind.case === "structValue" ? v : null));
      const { result } = await client.runTask({
        ref: { workflowId, stepId: "reduce" },
        spec: {
          ...rt.program("word-reducer"),
          input: create(ValueSchema, {
            kind: {
              case: "structValue",
              value: {
                fields: {
                  results: create(ValueSchema, {
                    kind: {
                      case: "listValue",
                      value: { values: [...results.map((r) => r ?? valueOf(null)), valueOf(null)] },
                    },
                  }),
                  failures: valueOf([{ index: 2, error: "boom" }]),
                },
              },
            },
          }),
        },
      });
      expect(result?.status).toBe(TaskStatus.SUCCEEDED);
      const out =
        result?.result?.kind.case === "structValue" ? result.result.kind.value : undefined;
      expect(JSON.stringify(out)).toContain('"total"');
      const total = (await stateClient.get({ workflowId, key: "total_words" })).value;
      expect(total).toEqual(valueOf(7)); // the cat and the hat + a cat
    });

    it("refuses an agent that does not announce itself, and removes it", async () => {
      const err = await client
        .createAgent({
          spec: {
            image: rt.shellImage,
            command: ["sh", "-c", "echo not ready; sleep 30"],
            mode: AgentMode.STREAM,
          },
          startupTimeout: seconds(1),
        })
        .catch((e: unknown) => ConnectError.from(e));
      expect((err as ConnectError).code).toBe(Code.FailedPrecondition);
      expect((err as ConnectError).rawMessage).toMatch(/malformed output|not JSON/);
      const slow = await client
        .createAgent({
          spec: { image: rt.shellImage, command: ["sh", "-c", "sleep 30"], mode: AgentMode.STREAM },
          startupTimeout: seconds(0.5),
        })
        .catch((e: unknown) => ConnectError.from(e));
      expect((slow as ConnectError).code).toBe(Code.DeadlineExceeded);
      const exits = await client
        .createAgent({
          spec: {
            image: rt.shellImage,
            command: ["sh", "-c", "echo bye >&2; exit 3"],
            mode: AgentMode.EXEC,
          },
        })
        .catch((e: unknown) => ConnectError.from(e));
      expect((exits as ConnectError).code).toBe(Code.FailedPrecondition);
      expect((await client.listAgents({})).agents).toEqual([]);
    });
  });
}
