import { randomUUID } from "node:crypto";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterEach, describe, expect, inject, it } from "vitest";
import { valueToJson } from "../lib/json-value.js";
import { WorkflowStatus } from "../gen/agentainer/workflow/v1/definition_pb.js";
import { WorkflowService } from "../gen/agentainer/workflow/v1/workflow_pb.js";
import { PoolService } from "../gen/agentainer/pool/v1/pool_pb.js";
import { Health, HealthCheckResponse_ServingStatus } from "../gen/grpc/health/v1/health_pb.js";
import { startEmbedded, type Embedded } from "../services/embedded.js";
import { nodeImage } from "./workflow/mesh.js";
import { waitForEnd, value } from "./workflow/support.js";

describe("agentainer up: the four services in one process on one port", () => {
  let up: Embedded | undefined;

  afterEach(async () => {
    await up?.close();
    up = undefined;
  });

  it("serves every service on one port and runs a MapReduce through in-memory transports", async () => {
    up = await startEmbedded({ PORT: "0", HOST: "127.0.0.1", LOG_LEVEL: "silent" });
    expect(up.runtime).toBe("docker");
    const transport = createGrpcTransport({ baseUrl: up.url });
    const health = createClient(Health, transport);
    for (const service of [
      "agentainer.workflow.v1.WorkflowService",
      "agentainer.pool.v1.PoolService",
      "agentainer.state.v1.StateService",
      "agentainer.executor.v1.ExecutorService",
    ]) {
      expect((await health.check({ service })).status).toBe(
        HealthCheckResponse_ServingStatus.SERVING,
      );
    }
    const c = createClient(WorkflowService, transport);
    const r = await c.createMapReduce({
      name: "word-count",
      mapperImage: nodeImage,
      mapperCommand: ["node", "/agents/word-mapper.mjs"],
      reducerImage: nodeImage,
      reducerCommand: ["node", "/agents/word-reducer.mjs"],
      items: { case: "inlineItems", value: { items: [value("a b a"), value("b c")] } },
      poolSize: 2,
    });
    const done = await waitForEnd(c, r.workflow!.id, 60_000);
    expect(done.status).toBe(WorkflowStatus.SUCCEEDED);
    expect(valueToJson(done.result!, "result")).toMatchObject({
      total: 5,
      words: { a: 2, b: 2, c: 1 },
    });
    // The inline pool lived in the same process's Pool service, and went with the run.
    const pools = createClient(PoolService, transport);
    expect((await pools.listPools({})).pools).toEqual([]);
  });

  it("keeps its workflows across a restart when REDIS_URL is set", async () => {
    const env = {
      PORT: "0",
      HOST: "127.0.0.1",
      LOG_LEVEL: "silent",
      REDIS_URL: inject("redisUrl"),
      NATS_URL: inject("natsUrl"),
      WORKFLOW_REDIS_PREFIX: `up-${randomUUID().slice(0, 8)}:`,
      STATE_REDIS_PREFIX: `up-${randomUUID().slice(0, 8)}:`,
      POOL_REDIS_PREFIX: `up-${randomUUID().slice(0, 8)}:`,
    };
    up = await startEmbedded(env);
    let c = createClient(WorkflowService, createGrpcTransport({ baseUrl: up.url }));
    const { workflow } = await c.createWorkflow({
      name: "kept",
      steps: [{ id: "a", image: nodeImage, command: ["node", "/agents/flow-agent.mjs"] }],
    });
    await c.putWorkflowState({ workflowId: workflow!.id, values: { seed: 7 } });
    await up.close();

    up = await startEmbedded(env);
    c = createClient(WorkflowService, createGrpcTransport({ baseUrl: up.url }));
    const again = await c.getWorkflow({ workflowId: workflow!.id });
    expect(again.workflow?.name).toBe("kept");
    expect(again.workflow?.status).toBe(WorkflowStatus.PENDING);
    expect((await c.getWorkflowState({ workflowId: workflow!.id })).values).toEqual({ seed: 7 });
    await c.startWorkflow({ workflowId: workflow!.id });
    expect((await waitForEnd(c, workflow!.id)).status).toBe(WorkflowStatus.SUCCEEDED);
  });
});
