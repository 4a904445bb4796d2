import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { AgentMode } from "../../gen/agentainer/executor/v1/executor_pb.js";
import {
  ExecutionMode,
  JobStatus,
  StepKind,
  WorkflowStatus,
} from "../../gen/agentainer/workflow/v1/definition_pb.js";
import { eventually } from "../support/await.js";
import { freePort } from "../support/servers.js";
import { flowAgent, nodeImage, startMesh, type Mesh } from "./mesh.js";
import { allJobs, resultOf, value, waitForEnd } from "./support.js";

const bin = fileURLToPath(new URL("../../bin/agentainer.js", import.meta.url));

/** The Workflow service as its own process (`agentainer serve workflow`), ready when it logs so. */
async function serveWorkflow(env: Record<string, string>): Promise<ChildProcess> {
  const child = spawn(process.execPath, [bin, "serve", "workflow"], {
    env: { ...process.env, ...env, LOG_LEVEL: "info" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  await new Promise<void>((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes('"msg":"server listening"')) resolve();
    });
    child.once("exit", (code) => reject(new Error(`workflow service exited with ${code}: ${out}`)));
  });
  child.stdout!.resume();
  return child;
}

describe("a Workflow service killed with SIGKILL mid-map", () => {
  let mesh: Mesh;
  let child: ChildProcess | undefined;

  beforeAll(async () => {
    mesh = await startMesh({
      redisUrl: inject("redisUrl"),
      natsUrl: inject("natsUrl"),
      withWorkflow: false,
    });
  });

  afterAll(async () => {
    child?.kill("SIGKILL");
    await mesh?.close();
  });

  it("resumes after a restart: the same result, every item's effect exactly once", async () => {
    const port = String(await freePort());
    const env = {
      ...mesh.workflowEnv,
      PORT: port,
      WORKFLOW_CLAIM_TTL_MS: "1500",
      WORKFLOW_LEASE_TTL_MS: "3000",
    };
    const { createClient } = await import("@connectrpc/connect");
    const { createGrpcTransport } = await import("@connectrpc/connect-node");
    const { WorkflowService } = await import("../../gen/agentainer/workflow/v1/workflow_pb.js");
    const c = createClient(
      WorkflowService,
      createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` }),
    );
    child = await serveWorkflow(env);
    const items = Array.from({ length: 40 }, (_, i) => ({
      incr: "counter",
      sleepMs: 250,
      double: i,
    }));
    const { workflow } = await c.createWorkflow({
      name: "resume",
      start: true,
      config: { maxParallel: 4 },
      steps: [
        {
          id: "map",
          kind: StepKind.MAP,
          image: nodeImage,
          command: flowAgent,
          execution: ExecutionMode.POOLED,
          agentMode: AgentMode.STREAM,
          pool: { case: "poolPolicy", value: { maxSize: 4 } },
          mapItems: { source: { case: "inline", value: { items: items.map((i) => value(i)) } } },
        },
        {
          id: "sum",
          kind: StepKind.REDUCE,
          dependsOn: ["map"],
          image: nodeImage,
          command: flowAgent,
        },
      ],
    });
    const id = workflow!.id;
    await eventually(
      async () =>
        (await allJobs(c, id, "map")).filter((j) => j.status === JobStatus.SUCCEEDED).length >= 8,
      60_000,
    );
    child.kill("SIGKILL");
    await new Promise((r) => child!.once("exit", r));
    // Killed mid-map: some items had finished, others had not.
    const atKill = (await mesh.clients.state.get({ workflowId: id, key: "counter" })).value;
    expect(Number(atKill?.kind.value)).toBeLessThan(40);

    child = await serveWorkflow(env);
    const done = await waitForEnd(c, id, 120_000);
    expect(done.status).toBe(WorkflowStatus.SUCCEEDED);
    const reduced = resultOf(done) as { results: Array<{ value: number }> };
    expect(reduced.results.map((r) => r.value)).toEqual(items.map((i) => i.double * 2));
    // Every item's state effect happened once: none lost, none doubled.
    const state = await c.getWorkflowState({ workflowId: id, keys: ["counter"] });
    expect(state.values).toEqual({ counter: 40 });
    // No finished task ran again: every item succeeded on its first attempt.
    const jobs = await allJobs(c, id, "map");
    expect(jobs.map((j) => [j.status, j.attempt])).toEqual(
      items.map(() => [JobStatus.SUCCEEDED, 1]),
    );
    // The event log has no gap across the crash.
    const events = [];
    for await (const r of c.watchWorkflow({ workflowId: id, afterSequence: 0n }))
      events.push(r.event!);
    events.forEach((e, i) => expect(e.sequence).toBe(BigInt(i + 1)));
  });
});
