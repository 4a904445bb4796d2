import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import { fromJson, type JsonValue } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import {
  AgentMode,
  AgentState,
  ExecutorService,
  TaskStatus,
} from "../../gen/agentainer/executor/v1/executor_pb.js";
import { StateService } from "../../gen/agentainer/state/v1/state_pb.js";
import { startExecutorService, type RunningExecutor } from "../../services/executor/main.js";
import { nestsDeeperThan } from "../../lib/json-value.js";
import { decideOutcome, maxResultDepth, resultTooDeep } from "../../services/executor/outcome.js";
import { decode } from "../../services/executor/protocol.js";
import { LocalRuntime } from "../../services/executor/runtime/local.js";
import { startStateService, type RunningService } from "../../services/state/main.js";
import { processEnd } from "./fixtures.js";

/** JSON text of `levels` arrays around a number. */
const nested = (levels: number) => "[".repeat(levels) + "1" + "]".repeat(levels);
/** The same as objects: {"a":{"a":...1}}. */
const nestedObject = (levels: number) => '{"a":'.repeat(levels) + "1" + "}".repeat(levels);

const end = processEnd;
const resultFile = (text: string) => ({ result: text, resultTooLarge: false, error: undefined });

describe("a result's nesting", () => {
  it("counts the arrays and objects inside one another, at any depth", () => {
    expect(nestsDeeperThan(1, 0)).toBe(false);
    expect(nestsDeeperThan([], 0)).toBe(true);
    expect(nestsDeeperThan([[1], { a: {} }], 3)).toBe(false);
    expect(nestsDeeperThan([[1], { a: {} }], 2)).toBe(true);
    expect(nestsDeeperThan([1, 2, [3, [4]]], 2)).toBe(true);
    const deep = JSON.parse(nested(1_000_000)) as JsonValue; // far past the call stack's depth
    expect(nestsDeeperThan(deep, maxResultDepth)).toBe(true);
  });

  it(`fails a cold or exec task whose result nests deeper than ${maxResultDepth} levels`, () => {
    for (const text of [nested(maxResultDepth + 1), nestedObject(150)]) {
      expect(decideOutcome(end({ mailbox: resultFile(text) }))).toEqual({
        status: "failed",
        result: undefined,
        error: resultTooDeep,
      });
      expect(decideOutcome(end({ stdout: Buffer.from(`working\n${text}\n`) }))).toEqual({
        status: "failed",
        result: undefined,
        error: resultTooDeep,
      });
    }
    expect(resultTooDeep).toBe(
      "the result nests deeper than 32 levels of arrays and objects; return a flatter result (or pass the deep part as a JSON string)",
    );
    const fits = decideOutcome(end({ mailbox: resultFile(nestedObject(maxResultDepth)) }));
    expect(fits.status).toBe("succeeded");
    expect(fits.result).toEqual(JSON.parse(nestedObject(maxResultDepth)));
  });

  it(`turns a stream agent's result nesting deeper than ${maxResultDepth} levels into the task's error`, () => {
    const line = (result: string) => `{"type":"result","task_id":"t","result":${result}}`;
    expect(decode(line(nested(150)))).toEqual({
      type: "error",
      task_id: "t",
      error: resultTooDeep,
    });
    expect(decode(line(nested(maxResultDepth)))).toEqual({
      type: "result",
      task_id: "t",
      result: JSON.parse(nested(maxResultDepth)),
    });
  });
});

// Through the service on the local-process runtime: a too-deep result fails its own task, and
// every call that lists or returns tasks still works for everyone.
describe("the Executor, when a task's result nests too deep", () => {
  let state: RunningService;
  let executor: RunningExecutor;
  let client: Client<typeof ExecutorService>;
  let stateClient: Client<typeof StateService>;
  const root = fileURLToPath(new URL("../..", import.meta.url));

  beforeAll(async () => {
    state = await startStateService({ PORT: "0", HOST: "127.0.0.1", LOG_LEVEL: "silent" });
    executor = await startExecutorService(
      {
        PORT: "0",
        HOST: "127.0.0.1",
        LOG_LEVEL: "silent",
        EXECUTOR_NODE_ID: `depth-${randomUUID().slice(0, 8)}`,
        STATE_URL: state.url,
        NATS_URL: inject("natsUrl"),
      },
      { runtime: new LocalRuntime() },
    );
    client = createClient(ExecutorService, createGrpcTransport({ baseUrl: executor.url }));
    stateClient = createClient(StateService, createGrpcTransport({ baseUrl: state.url }));
  });

  afterAll(async () => {
    await executor?.close();
    await state?.close();
  });

  async function newWorkflow(): Promise<string> {
    const workflowId = "wf-" + randomUUID();
    await stateClient.createWorkflowState({ workflowId });
    return workflowId;
  }

  it("fails that cold task and keeps RunTask, GetTask and ListTasks working", async () => {
    const workflowId = await newWorkflow();
    const run = async (json: string) =>
      (
        await client.runTask({
          ref: { workflowId, stepId: "deep" },
          spec: { image: "ignored", command: ["sh", "-c", `echo '${json}'`] },
        })
      ).result!;
    // 49 levels already made the responses undecodable by a gRPC client; 150 made them INTERNAL.
    for (const levels of [49, 150]) {
      const r = await run(nested(levels));
      expect(r.status).toBe(TaskStatus.FAILED);
      expect(r.error).toBe(resultTooDeep);
      expect(r.result).toBeUndefined();
      const { task } = await client.getTask({ taskId: r.taskId });
      expect(task?.result?.error).toBe(resultTooDeep);
    }
    const fits = await run(nested(maxResultDepth));
    expect(fits.status).toBe(TaskStatus.SUCCEEDED);
    expect(fits.result).toEqual(fromJson(ValueSchema, JSON.parse(nested(maxResultDepth))));
    const listed = await client.listTasks({ workflowId });
    expect(listed.tasks.map((t) => t.status)).toEqual([
      TaskStatus.FAILED,
      TaskStatus.FAILED,
      TaskStatus.SUCCEEDED,
    ]);
    expect((await client.listTasks({})).tasks.length).toBeGreaterThanOrEqual(3);
  });

  it("fails that stream task and keeps its agent READY", async () => {
    const workflowId = await newWorkflow();
    const { agent } = await client.createAgent({
      poolId: "depth-pool",
      spec: {
        image: "ignored",
        command: [process.execPath, "--import", "tsx", "agents/test-agent.ts"],
        workingDir: root,
        mode: AgentMode.STREAM,
      },
    });
    const agentId = agent!.agentId;
    try {
      // The test agent's echo returns { input, ... }: one level more than the input.
      const echo = async (input: string) =>
        (
          await client.runTaskOnAgent({
            agentId,
            ref: { workflowId, stepId: "echo" },
            input: fromJson(ValueSchema, JSON.parse(input)),
          })
        ).result!;
      // An input itself deeper than the limit is refused before any agent sees it.
      const refused = await echo(nestedObject(maxResultDepth + 1)).catch((e: unknown) => e);
      expect(ConnectError.from(refused).code).toBe(Code.InvalidArgument);
      expect(ConnectError.from(refused).rawMessage).toMatch(/^input nests deeper than 32 levels/);
      // An input at the limit passes; its echo, one level deeper, fails its task.
      const deep = await echo(nestedObject(maxResultDepth));
      expect(deep.status).toBe(TaskStatus.FAILED);
      expect(deep.error).toBe(resultTooDeep);
      expect(deep.agentState).toBe(AgentState.READY);
      const next = await echo(nestedObject(3));
      expect(next.status).toBe(TaskStatus.SUCCEEDED);
      expect((await client.listTasks({ agentId })).tasks).toHaveLength(2); // the refused one never ran
    } finally {
      await client.destroyAgent({ agentId, force: true });
    }
  });
});
