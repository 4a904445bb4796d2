// The compose-deployed mesh, end to end: images built by scripts/build-images.sh (setup.sh runs
// it), docker-compose.yml brought up with Debian's docker-compose under a unique project name,
// the word-count MapReduce run through the published Workflow API with a plain grpc-js client
// and with `buf curl` (reflection), a crash of the Workflow container mid-run that its restart
// policy recovers from, and a teardown that leaves nothing behind.
import { randomBytes } from "node:crypto";
import { readFileSync, rmSync } from "node:fs";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { eventually } from "../support/await.js";
import { freePort } from "../support/servers.js";
import {
  ComposeProject,
  describeMethod,
  fromValue,
  root,
  sh,
  stringValue,
  workflowStub,
  type Json,
  type ProtoValue,
  type WorkflowStub,
} from "./compose.js";

const id = randomBytes(3).toString("hex");
const token = `e2e-${randomBytes(16).toString("hex")}`;
const nodeId = `e2e-${id}-executor`;
const workDir = `/tmp/agentainer-e2e-${id}`;
const docs = JSON.parse(readFileSync(`${root}examples/word-count.items.json`, "utf8")) as string[];

/** The word counts of some texts, computed here, independently of the agents. */
function wordCounts(texts: string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const text of texts) {
    for (const w of text.toLowerCase().match(/[\p{L}\p{N}']+/gu) ?? []) {
      counts[w] = (counts[w] ?? 0) + 1;
    }
  }
  return counts;
}

interface Workflow {
  id: string;
  status: string;
  status_message: string;
  result: ProtoValue | null;
  step_progress: Array<{ step_id: string; status: string; counts: { succeeded: string } }>;
}
interface Job {
  step_id: string;
  status: string;
  attempt: number;
  agent_id: string;
  container_id: string;
}

const terminal = new Set([
  "WORKFLOW_STATUS_SUCCEEDED",
  "WORKFLOW_STATUS_PARTIALLY_SUCCEEDED",
  "WORKFLOW_STATUS_FAILED",
  "WORKFLOW_STATUS_CANCELLED",
]);

function mapReduce(
  texts: string[],
  env: Record<string, string> = {},
  image = "agentainer/node-agent:local",
) {
  return {
    name: "word-count",
    mapper_image: image,
    mapper_command: ["node", "/agents/word-mapper.mjs"],
    reducer_image: image,
    reducer_command: ["node", "/agents/word-reducer.mjs"],
    inline_items: { items: texts.map(stringValue) },
    pool_size: 2,
    max_parallel: 2,
    env,
  };
}

describe("the compose-deployed mesh", () => {
  let project: ComposeProject;
  let port: number;
  const ports: Record<string, number> = {};
  let api: WorkflowStub;

  beforeAll(async () => {
    port = await freePort();
    for (const s of ["pool", "state", "executor"]) ports[s] = await freePort();
    project = new ComposeProject(
      `agentainer-e2e-${id}`,
      {
        ...process.env,
        AGENTAINER_PORT: String(port),
        AGENTAINER_POOL_PORT: String(ports.pool),
        AGENTAINER_STATE_PORT: String(ports.state),
        AGENTAINER_EXECUTOR_PORT: String(ports.executor),
        AGENTAINER_NODE_ID: nodeId,
        AGENTAINER_WORK_DIR: workDir,
        AGENTAINER_API_TOKEN: token,
        LOG_LEVEL: "info",
      },
      // The operators' override publishes the other three APIs too (on loopback), so that
      // reflection can be checked on every service.
      ["docker-compose.yml", "docker-compose.ports.yml"],
    );
    // Every image the compose file names must be here already (built offline by setup.sh):
    // `up` must not try to pull or build.
    for (const image of ["agentainer/flow:local", "redis:7-alpine", "nats:2.9-alpine"]) {
      await sh("docker", ["image", "inspect", "-f", "{{.Id}}", image]);
    }
    await project.compose(["up", "-d", "--no-build"]);
    api = workflowStub(`127.0.0.1:${port}`, token);
    // `up -d` returns once the workflow container is started; it is healthy a little later.
    await eventually(
      async () =>
        (await project.inspect(
          await project.containerOf("workflow"),
          "{{.State.Health.Status}}",
        )) === "healthy",
      120_000,
    );
  }, 400_000);

  afterAll(async () => {
    api?.close();
    // A safety net when a test failed half-way; the last test tears down and checks.
    await project?.compose(["down", "-v", "--remove-orphans", "--timeout", "10"]).catch(() => {});
    const agents = await sh("docker", [
      "ps",
      "-aq",
      "--filter",
      `label=agentainer.node_id=${nodeId}`,
    ]);
    for (const c of agents.split("\n").filter((l) => l !== "")) {
      await sh("docker", ["rm", "-f", c]).catch(() => {});
    }
    rmSync(workDir, { recursive: true, force: true });
  }, 120_000);

  async function finished(workflowId: string, timeoutMs = 180_000): Promise<Workflow> {
    let last: Workflow | undefined;
    await eventually(async () => {
      const res = await api.call<{ workflow: Workflow }>("GetWorkflow", {
        workflow_id: workflowId,
      });
      last = res.workflow;
      return terminal.has(last.status);
    }, timeoutMs);
    return last!;
  }

  async function jobsOf(workflowId: string): Promise<Job[]> {
    const res = await api.call<{ jobs: Job[] }>("ListJobs", {
      workflow_id: workflowId,
      page_size: 1000,
    });
    return res.jobs;
  }

  it("refuses calls without the API token, and answers health without one", async () => {
    const anonymous = workflowStub(`127.0.0.1:${port}`, "");
    const err = await anonymous.call("ListWorkflows", {}).catch((e: grpc.ServiceError) => e);
    anonymous.close();
    expect((err as grpc.ServiceError).code).toBe(grpc.status.UNAUTHENTICATED);
    await sh("node", ["bin/health-probe.mjs", String(port)]);
  });

  it("runs the word-count MapReduce through the Workflow API on pooled agents", async () => {
    // The agents are the ones bundled in the mesh's own image: what works wherever the
    // compose file was brought up, with nothing else built.
    const created = await api.call<{ workflow: Workflow }>(
      "CreateMapReduce",
      mapReduce(docs, {}, "agentainer/flow:local"),
    );
    const workflowId = created.workflow.id;

    // The server stream: events in sequence order up to the terminal one.
    const events: Array<Record<string, unknown>> = [];
    await new Promise<void>((resolve, reject) => {
      const stream = api.watch({ workflow_id: workflowId });
      stream.on("data", (m: { event: Record<string, unknown> }) => events.push(m.event));
      stream.on("error", reject);
      stream.on("end", resolve);
    });
    const sequences = events.map((e) => Number(e.sequence));
    expect(sequences).toEqual([...sequences].sort((a, b) => a - b));
    expect(events.some((e) => e.payload === "workflow_status_changed")).toBe(true);

    const wf = await finished(workflowId);
    expect(wf.status, wf.status_message).toBe("WORKFLOW_STATUS_SUCCEEDED");
    const result = fromValue(wf.result) as { words: Record<string, number>; total: number };
    expect(result.words).toEqual(wordCounts(docs));
    expect(result.total).toBe(Object.values(wordCounts(docs)).reduce((a, b) => a + b, 0));

    // Four documents went through a pool of two warm agents: each agent took several.
    const maps = (await jobsOf(workflowId)).filter((j) => j.step_id === "map");
    expect(maps).toHaveLength(docs.length);
    expect(maps.every((j) => j.status === "JOB_STATUS_SUCCEEDED")).toBe(true);
    const agents = new Set(maps.map((j) => j.agent_id));
    const containers = new Set(maps.map((j) => j.container_id));
    expect(agents.size).toBeGreaterThanOrEqual(1);
    expect(agents.size).toBeLessThanOrEqual(2);
    expect(containers.size).toBe(agents.size);
    expect([...agents].every((a) => a !== "")).toBe(true);
  }, 240_000);

  it("publishes only the Workflow API unless the ports override is added", async () => {
    const alone = new ComposeProject(project.name, project.env);
    const config = parse(await alone.compose(["config"])) as {
      services: Record<string, { ports?: string[] }>;
    };
    const published = Object.entries(config.services).filter(([, svc]) => svc.ports?.length);
    expect(published.map(([name]) => name)).toEqual(["workflow"]);
    expect(published[0]![1].ports).toEqual([`127.0.0.1:${port}:7071/tcp`]);
  });

  it("describes every service's methods through reflection (grpc-js)", async () => {
    const wf = await describeMethod(
      `127.0.0.1:${port}`,
      token,
      "agentainer.workflow.v1.WorkflowService",
      "WatchWorkflow",
    );
    expect(wf).toEqual({
      input: ".agentainer.workflow.v1.WatchWorkflowRequest",
      output: ".agentainer.workflow.v1.WatchWorkflowResponse",
      serverStreaming: true,
    });
    const others: Array<[string, string, string]> = [
      ["pool", "agentainer.pool.v1.PoolService", "Acquire"],
      ["state", "agentainer.state.v1.StateService", "Increment"],
      ["executor", "agentainer.executor.v1.ExecutorService", "RunTask"],
    ];
    for (const [svc, service, method] of others) {
      const d = await describeMethod(`127.0.0.1:${ports[svc]}`, token, service, method);
      expect(d.input).toBe(`.${service.replace(/\.\w+Service$/, "")}.${method}Request`);
    }
  });

  it("lists, describes and calls the services with buf curl through reflection", async () => {
    const base = `http://127.0.0.1:${port}`;
    const auth = ["-H", `authorization: Bearer ${token}`, "--reflect-header", "*"];
    const curl = (args: string[]) =>
      sh("npx", [
        "--no-install",
        "buf",
        "curl",
        "--protocol",
        "grpc",
        "--http2-prior-knowledge",
        ...auth,
        ...args,
      ]);

    const services = await curl(["--reflect", "--list-services", base]);
    expect(services).toContain("agentainer.workflow.v1.WorkflowService");
    expect(services).toContain("grpc.health.v1.Health");
    for (const [svc, name] of [
      ["pool", "agentainer.pool.v1.PoolService"],
      ["state", "agentainer.state.v1.StateService"],
      ["executor", "agentainer.executor.v1.ExecutorService"],
    ] as const) {
      const listed = await curl(["--reflect", "--list-services", `http://127.0.0.1:${ports[svc]}`]);
      expect(listed).toContain(name);
    }
    // Describing a method: buf curl resolves its request type through reflection (the
    // file descriptors), and lists it among the methods of the services.
    const methods = await curl(["--reflect", "--list-methods", base]);
    expect(methods).toContain("agentainer.workflow.v1.WorkflowService/WatchWorkflow");
    expect(methods).toContain("agentainer.workflow.v1.WorkflowService/CreateMapReduce");

    const listed = JSON.parse(
      await curl([
        "--reflect",
        "-d",
        "{}",
        `${base}/agentainer.workflow.v1.WorkflowService/ListWorkflows`,
      ]),
    ) as { workflows: Array<{ id: string; status: string }> };
    expect(listed.workflows.length).toBeGreaterThanOrEqual(1);
    const done = listed.workflows.find((w) => w.status === "WORKFLOW_STATUS_SUCCEEDED");
    expect(done).toBeDefined();

    // A server stream from the first event (after_sequence 0; without it an ended run gives one
    // snapshot): buf curl prints one JSON message per event, the last one terminal.
    const watched = await curl([
      "--reflect",
      "-d",
      JSON.stringify({ workflowId: done!.id, afterSequence: "0" }),
      `${base}/agentainer.workflow.v1.WorkflowService/WatchWorkflow`,
    ]);
    const messages = watched
      .split(/\n(?=\{)/)
      .filter((m) => m.trim() !== "")
      .map((m) => JSON.parse(m) as { event: { sequence: string } });
    expect(messages.length).toBeGreaterThanOrEqual(2);
    // Every event from the first, none missing.
    expect(messages.map((m) => Number(m.event.sequence))).toEqual(messages.map((_, i) => i + 1));
    expect(JSON.stringify(messages.at(-1))).toContain("WORKFLOW_STATUS_SUCCEEDED");
  }, 120_000);

  it("recovers from a crash of the Workflow container mid-run: restarted, same result", async () => {
    const texts = [...docs, ...docs, ...docs];
    const created = await api.call<{ workflow: Workflow }>(
      "CreateMapReduce",
      mapReduce(texts, { WORD_MAPPER_DELAY_MS: "700" }),
    );
    const workflowId = created.workflow.id;
    const workflowContainer = await project.containerOf("workflow");
    const restartsBefore = Number(await project.inspect(workflowContainer, "{{.RestartCount}}"));

    // Mid-map: some items done, not all.
    let doneBefore = 0;
    await eventually(async () => {
      const res = await api.call<{ workflow: Workflow }>("GetWorkflow", {
        workflow_id: workflowId,
      });
      const map = res.workflow.step_progress.find((s) => s.step_id === "map");
      doneBefore = Number(map?.counts.succeeded ?? 0);
      return doneBefore >= 1;
    }, 60_000);
    expect(doneBefore).toBeLessThan(texts.length);

    // A crash, as an OOM kill or a segfault looks to Docker: SIGKILL of the container's main
    // process from the host. (`docker kill` is an operator's stop, which restart policies leave
    // alone by design; docs/deploy.md says so.)
    const pid = await project.inspect(workflowContainer, "{{.State.Pid}}");
    await sh("kill", ["-9", pid]);

    await eventually(
      async () =>
        Number(await project.inspect(workflowContainer, "{{.RestartCount}}")) > restartsBefore,
      60_000,
    );
    await eventually(
      async () =>
        (await project.inspect(workflowContainer, "{{.State.Health.Status}}")) === "healthy",
      120_000,
    );

    const wf = await finished(workflowId);
    expect(wf.status, wf.status_message).toBe("WORKFLOW_STATUS_SUCCEEDED");
    const result = fromValue(wf.result) as { words: Json; documents: number; failed: number };
    expect(result.words).toEqual(wordCounts(texts));
    expect(result.documents).toBe(texts.length);
    expect(result.failed).toBe(0);
    const maps = (await jobsOf(workflowId)).filter((j) => j.step_id === "map");
    expect(maps).toHaveLength(texts.length);
    expect(maps.every((j) => j.status === "JOB_STATUS_SUCCEEDED")).toBe(true);
  }, 300_000);

  it("tears down leaving no container, network or volume behind", async () => {
    api.close();
    await project.compose(["down", "-v", "--remove-orphans", "--timeout", "10"]);
    const agents = (
      await sh("docker", ["ps", "-aq", "--filter", `label=agentainer.node_id=${nodeId}`])
    ).trim();
    expect(agents).toBe("");
    expect(await project.leftovers()).toEqual({ containers: [], networks: [], volumes: [] });
  }, 120_000);
});
