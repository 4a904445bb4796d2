// CreateMapReduce with a splitter on the real mesh (Docker, Redis, NATS): a busybox one-shot
// splitter lists the documents, pooled stream mappers count their words, a cold reducer sums.
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import {
  JobStatus,
  StepStatus,
  WorkflowStatus,
} from "../../gen/agentainer/workflow/v1/definition_pb.js";
import { codeOf, eventually } from "../support/await.js";
import { nodeImage, shellImage, startMesh, type Mesh } from "./mesh.js";
import { allJobs, outputOf, resultOf, stepOf, waitForEnd } from "./support.js";

const docker = promisify(execFile);

const mapper = { mapperImage: nodeImage, mapperCommand: ["node", "/agents/word-mapper.mjs"] };
const reducer = { reducerImage: nodeImage, reducerCommand: ["node", "/agents/word-reducer.mjs"] };
/** A one-shot splitter's shell script: its result file holds the items (agent-protocol.md §3). */
const writeResult = (json: string) => ["sh", "-c", `echo '${json}' > "$AGENTAINER_RESULT_FILE"`];

/**
 * A splitter image that needs no command: its CMD prints the items, inside an object, as the
 * last line of stdout (the other result rule of agent-protocol.md §3).
 */
const builtSplitter = `agentainer-test/mapreduce-splitter:${process.pid}`;

async function buildSplitterImage(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "agentainer-splitter-"));
  try {
    await writeFile(
      join(dir, "Dockerfile"),
      `FROM ${shellImage}\nCMD ["sh", "-c", "echo listing >&2; echo '{\\"source\\":\\"cmd\\",\\"docs\\":[\\"x y z\\",\\"y z\\",\\"z\\"]}'"]\n`,
    );
    await docker("docker", ["build", "-q", "-t", builtSplitter, dir]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe("CreateMapReduce with a splitter, on the real mesh", () => {
  let mesh: Mesh;

  beforeAll(async () => {
    await buildSplitterImage();
    mesh = await startMesh({ redisUrl: inject("redisUrl"), natsUrl: inject("natsUrl") });
  });

  afterAll(async () => {
    await mesh?.close();
    await docker("docker", ["rmi", "-f", builtSplitter]).catch(() => undefined);
  }, 120_000);

  it("runs split, then the pooled map over the splitter's array, then the reduce as the result", async () => {
    const c = mesh.clients.workflow;
    const r = await c.createMapReduce({
      name: "split-word-count",
      ...mapper,
      ...reducer,
      items: { case: "splitterImage", value: shellImage },
      splitterCommand: writeResult('["a b","c"]'),
      maxParallel: 2,
      poolSize: 2,
    });
    expect(r.workflow!.steps.map((s) => s.id)).toEqual(["map", "reduce", "split"]);
    const done = await waitForEnd(c, r.workflow!.id, 120_000);
    expect(done.status).toBe(WorkflowStatus.SUCCEEDED);
    expect(outputOf(done, "split")).toEqual(["a b", "c"]);
    expect(outputOf(done, "map")).toEqual([{ a: 1, b: 1 }, { c: 1 }]);
    expect(resultOf(done)).toEqual({
      words: { a: 1, b: 1, c: 1 },
      total: 3,
      documents: 2,
      failed: 0,
    });
    const jobs = await allJobs(c, r.workflow!.id);
    const split = jobs.find((j) => j.taskId === "split-0")!;
    expect(split.status).toBe(JobStatus.SUCCEEDED);
    // Cold: a container of its own, no agent, no pool.
    expect([split.agentId, split.poolId]).toEqual(["", ""]);
    expect(split.containerId).not.toBe("");
    // Every mapper task started after the splitter ended, on a warm agent of the map's pool.
    const endOfSplit = Number(split.endTime!.seconds) * 1000 + split.endTime!.nanos / 1e6;
    const maps = jobs.filter((j) => j.stepId === "map");
    expect(maps.map((j) => j.taskId)).toEqual(["map-0", "map-1"]);
    for (const j of maps) {
      expect(Number(j.startTime!.seconds) * 1000 + j.startTime!.nanos / 1e6).toBeGreaterThanOrEqual(
        endOfSplit,
      );
      expect(j.agentId).not.toBe("");
    }
    expect(stepOf(done, "map").poolId).toBe(`${r.workflow!.id}--map`);
  }, 120_000);

  it("warms the map's pool to pool_size while the splitter runs", async () => {
    const c = mesh.clients.workflow;
    // The splitter waits for the test's go (a state key, through the state pipes).
    const gated = [
      "sh",
      "-c",
      `st() { printf '%s\\n' "$1" > "$AGENTAINER_STATE_REQUEST"; IFS= read -r reply < "$AGENTAINER_STATE_RESPONSE"; case $reply in '{"ok":true,'*) return 0 ;; *) return 1 ;; esac; }
until st '{"op":"get","key":"go"}' > /dev/null; do sleep 0.2; done
echo '["p q","r"]' > "$AGENTAINER_RESULT_FILE"`,
    ];
    const r = await c.createMapReduce({
      name: "split-warm",
      ...mapper,
      ...reducer,
      items: { case: "splitterImage", value: shellImage },
      splitterCommand: gated,
      taskTimeout: { seconds: 60n }, // a splitter never let go ends anyway
      maxParallel: 3,
      poolSize: 3,
    });
    const workflowId = r.workflow!.id;
    const poolId = `${workflowId}--map`;
    await eventually(async () => {
      const { pool } = await mesh.clients.pool.getPool({ poolId });
      return pool?.metrics?.idle === 3;
    }, 30_000);
    const { pool } = await mesh.clients.pool.getPool({ poolId });
    expect(pool!.policy).toMatchObject({ minSize: 3, maxSize: 3, warmUp: true });
    const { workflow } = await c.getWorkflow({ workflowId });
    expect(stepOf(workflow!, "split").status).toBe(StepStatus.RUNNING);
    expect(stepOf(workflow!, "map").status).toBe(StepStatus.PENDING);
    await c.putWorkflowState({ workflowId, values: { go: true } });
    const done = await waitForEnd(c, workflowId, 120_000);
    expect(done.status).toBe(WorkflowStatus.SUCCEEDED);
    expect(resultOf(done)).toMatchObject({ words: { p: 1, q: 1, r: 1 }, total: 3 });
    // Both items ran on warm agents of that pool.
    const maps = await allJobs(c, workflowId, "map");
    expect(maps.every((j) => j.poolId === poolId && j.agentId !== "")).toBe(true);
  }, 120_000);

  it("runs the splitter image's own CMD when splitter_command is empty, reading the items at splitter_items_path", async () => {
    const c = mesh.clients.workflow;
    const r = await c.createMapReduce({
      name: "split-by-cmd",
      ...mapper,
      ...reducer,
      items: { case: "splitterImage", value: builtSplitter },
      splitterItemsPath: "/docs",
      maxParallel: 3,
    });
    const done = await waitForEnd(c, r.workflow!.id, 120_000);
    expect(done.status).toBe(WorkflowStatus.SUCCEEDED);
    expect(outputOf(done, "split")).toEqual({ source: "cmd", docs: ["x y z", "y z", "z"] });
    expect(resultOf(done)).toMatchObject({ words: { x: 1, y: 2, z: 3 }, total: 6, documents: 3 });
    expect(stepOf(done, "map").counts).toMatchObject({ total: 3n, succeeded: 3n });
  }, 120_000);

  it("fails the map, naming the splitter's output, when it holds no array", async () => {
    const c = mesh.clients.workflow;
    const r = await c.createMapReduce({
      name: "split-no-array",
      ...mapper,
      ...reducer,
      items: { case: "splitterImage", value: shellImage },
      splitterCommand: writeResult('{"docs":"not a list"}'),
      splitterItemsPath: "/docs",
      poolSize: 1,
    });
    const done = await waitForEnd(c, r.workflow!.id, 120_000);
    expect(done.status).toBe(WorkflowStatus.FAILED);
    expect(stepOf(done, "split").status).toBe(StepStatus.SUCCEEDED);
    expect(stepOf(done, "map").status).toBe(StepStatus.FAILED);
    expect(stepOf(done, "map").statusMessage).toContain(
      "the output of step split holds no JSON array",
    );
    expect(stepOf(done, "reduce").status).toBe(StepStatus.CANCELLED);
  }, 120_000);

  it("rejects a missing splitter image naming splitter_image, and stores nothing", async () => {
    const c = mesh.clients.workflow;
    const before = (await c.listWorkflows({ pageSize: 1000 })).workflows.length;
    const call = c.createMapReduce({
      name: "split-missing",
      ...mapper,
      ...reducer,
      items: { case: "splitterImage", value: "agentainer/absent:none" },
    });
    expect(await codeOf(call)).toBe(Code.InvalidArgument);
    await expect(call).rejects.toThrow(/splitter_image/);
    expect((await c.listWorkflows({ pageSize: 1000 })).workflows.length).toBe(before);
  });
});
