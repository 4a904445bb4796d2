import { execFileSync } from "node:child_process";
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { fromJson, create } from "@bufbuild/protobuf";
import { DurationSchema, ValueSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AgentMode,
  AgentState,
  ExecutorService,
  KeepContainer,
  NetworkMode,
  TaskStatus,
} from "../../gen/agentainer/executor/v1/executor_pb.js";
import { labels } from "../../services/executor/contract.js";
import { startExecutorService, type RunningExecutor } from "../../services/executor/main.js";
import { connectDocker } from "../../services/executor/runtime/docker.js";
import { eventually } from "../support/await.js";
import { executorSuite } from "./executor-suite.js";

const shellImage = "agentainer/busybox:local";
const nodeAgentImage = "agentainer/node-agent:local";

/** Images come from scripts/build-images.sh (npm test runs it); say so when one is missing. */
function requireImage(image: string): void {
  try {
    execFileSync("docker", ["image", "inspect", image], { stdio: "ignore" });
  } catch {
    throw new Error(
      `image ${image} is missing: run \`bash scripts/build-images.sh\` (npm test does)`,
    );
  }
}

async function docker() {
  const runtime = await connectDocker();
  if (runtime === undefined) {
    throw new Error("no Docker engine answers: run `bash scripts/setup.sh` (npm test does)");
  }
  requireImage(shellImage);
  requireImage(nodeAgentImage);
  return runtime;
}

executorSuite({
  name: "docker",
  runtime: docker,
  shellImage,
  streamAgent: {
    image: nodeAgentImage,
    command: ["node", "/agents/test-agent.mjs"],
    workingDir: "",
  },
  program: (name) => ({
    image: nodeAgentImage,
    command: ["node", `/agents/${name}.mjs`],
    workingDir: "",
  }),
});

const seconds = (s: number) => create(DurationSchema, { seconds: BigInt(s) });
const inspect = (id: string) =>
  JSON.parse(
    execFileSync("docker", ["inspect", id], { stdio: ["ignore", "pipe", "pipe"] }).toString(),
  )[0] as {
    Name: string;
    Config: { Labels: Record<string, string> };
    HostConfig: {
      CapDrop: string[] | null;
      SecurityOpt: string[] | null;
      NetworkMode: string;
      Memory: number;
      MemorySwap: number;
      NanoCpus: number;
      PidsLimit: number;
      Binds: string[] | null;
      LogConfig: { Type: string; Config: Record<string, string> };
    };
  };

describe("the Executor on Docker: isolation, limits and debugging", () => {
  let executor: RunningExecutor;
  let client: Client<typeof ExecutorService>;
  const node = `dtest-${randomUUID().slice(0, 8)}`;
  const kept: string[] = [];

  beforeAll(async () => {
    executor = await startExecutorService(
      { PORT: "0", HOST: "127.0.0.1", LOG_LEVEL: "silent", EXECUTOR_NODE_ID: node },
      { runtime: await docker() },
    );
    client = createClient(ExecutorService, createGrpcTransport({ baseUrl: executor.url }));
  });
  afterAll(async () => {
    await executor?.close();
    for (const id of kept) execFileSync("docker", ["rm", "-f", id], { stdio: "ignore" });
    const left = execFileSync("docker", ["ps", "-aq", "--filter", `label=${labels.nodeId}=${node}`])
      .toString()
      .trim();
    expect(left).toBe("");
  });

  const ref = () => ({ workflowId: "wf-" + randomUUID(), stepId: "step" });

  it("hardens every container: no capabilities, no new privileges, no network, limits, no socket", async () => {
    const { result } = await client.runTask({
      ref: ref(),
      spec: {
        image: shellImage,
        command: [
          "sh",
          "-c",
          "cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '; grep CapEff /proc/self/status",
        ],
        limits: { cpuMillis: 500n, memoryBytes: BigInt(32 * 1024 * 1024), pids: 64n },
        keep: KeepContainer.ALWAYS,
      },
    });
    expect(result?.status).toBe(TaskStatus.SUCCEEDED);
    kept.push(result!.containerId);
    const out = Buffer.from(result!.stdout).toString();
    expect(out.split("\n")[0]).toBe("lo"); // loopback only
    expect(out).toMatch(/CapEff:\s+0+\n/);
    const c = inspect(result!.containerId);
    expect(c.HostConfig.CapDrop).toEqual(["ALL"]);
    expect(c.HostConfig.SecurityOpt).toContain("no-new-privileges");
    expect(c.HostConfig.NetworkMode).toBe("none");
    expect(c.HostConfig.Memory).toBe(32 * 1024 * 1024);
    expect(c.HostConfig.MemorySwap).toBe(32 * 1024 * 1024);
    expect(c.HostConfig.NanoCpus).toBe(500_000_000);
    expect(c.HostConfig.PidsLimit).toBe(64);
    expect((c.HostConfig.Binds ?? []).join(" ")).not.toMatch(/docker\.sock/);
    expect(c.HostConfig.LogConfig).toEqual({
      Type: "json-file",
      Config: { "max-size": "10m", "max-file": "1" },
    });
    expect(c.Config.Labels[labels.workflowId]).toBeDefined();
    expect(c.Config.Labels[labels.kind]).toBe("task");
  });

  it("reports a task that passes its memory limit as OOM-killed", async () => {
    const { result } = await client.runTask({
      ref: ref(),
      spec: {
        image: shellImage,
        // Builds an ever-growing string in the shell until the kernel kills it.
        command: ["sh", "-c", 'x=aaaaaaaaaaaaaaaa; while true; do x="$x$x"; done'],
        limits: { memoryBytes: BigInt(16 * 1024 * 1024) },
        timeout: seconds(60),
      },
    });
    expect(result?.status).toBe(TaskStatus.OOM_KILLED);
    expect(result?.error).toBe("killed for passing its memory limit of 16 MiB");
  });

  it("keeps a failed task's container for debugging when asked, and only then", async () => {
    const failed = await client.runTask({
      ref: ref(),
      spec: { image: shellImage, command: ["sh", "-c", "exit 1"], keep: KeepContainer.ON_FAILURE },
    });
    kept.push(failed.result!.containerId);
    expect(inspect(failed.result!.containerId).Config.Labels[labels.kept]).toBe("on_failure");
    const ok = await client.runTask({
      ref: ref(),
      spec: { image: shellImage, command: ["true"], keep: KeepContainer.ON_FAILURE },
    });
    expect(() => inspect(ok.result!.containerId)).toThrow();
  });

  it("never reads or writes a host file through a link an agent leaves in its mailbox", async () => {
    // The mailbox is a host directory the agent writes in; the Executor runs as root on the
    // host. A link there named like a mailbox file must not be followed: neither read back to
    // the user (cold and exec) nor written and chmod-ed by the next task's bind (exec).
    const hostDir = mkdtempSync(join(tmpdir(), "agentainer-host-"));
    const secret = join(hostDir, "secret");
    const victim = join(hostDir, "victim");
    writeFileSync(secret, "host secret\n", { mode: 0o600 });
    writeFileSync(victim, "host file\n", { mode: 0o644 });
    const plant = [
      `ln -sf ${secret} "$AGENTAINER_RESULT_FILE"`,
      `ln -sf ${secret} "$AGENTAINER_ERROR_FILE"`,
      `ln -sf ${victim} "$AGENTAINER_INPUT_FILE"`,
    ].join("; ");
    const refusedText =
      "the agent left a symbolic link where its result.json belongs (AGENTAINER_RESULT_FILE); " +
      "only a regular file is read there; the agent left a symbolic link where its error.txt " +
      "belongs (AGENTAINER_ERROR_FILE); only a regular file is read there";
    let agentId = "";
    try {
      const cold = await client.runTask({
        ref: ref(),
        spec: { image: shellImage, command: ["sh", "-c", plant] },
      });
      expect(cold.result?.status).toBe(TaskStatus.FAILED);
      expect(cold.result?.error).toBe(refusedText);

      const created = await client.createAgent({
        spec: { image: shellImage, command: ["sleep", "3600"], mode: AgentMode.EXEC },
      });
      agentId = created.agent!.agentId;
      const first = await client.runTaskOnAgent({
        agentId,
        ref: { ...ref(), index: 0 },
        command: ["sh", "-c", plant],
      });
      expect(first.result?.status).toBe(TaskStatus.FAILED);
      expect(first.result?.error).toBe(refusedText);
      // The next task's bind replaces the links with fresh files; the agent gets its own input.
      const second = await client.runTaskOnAgent({
        agentId,
        ref: { ...ref(), index: 1 },
        command: ["sh", "-c", 'cat "$AGENTAINER_INPUT_FILE"'],
        input: fromJson(ValueSchema, { mine: true }),
      });
      expect(second.result?.status).toBe(TaskStatus.SUCCEEDED);
      expect(Buffer.from(second.result!.stdout).toString()).toBe('{"mine":true}\n');
      expect(readFileSync(secret, "utf8")).toBe("host secret\n");
      expect(readFileSync(victim, "utf8")).toBe("host file\n");
      expect(statSync(secret).mode & 0o777).toBe(0o600);
      expect(statSync(victim).mode & 0o777).toBe(0o644);
    } finally {
      if (agentId) await client.destroyAgent({ agentId, force: true });
      rmSync(hostDir, { recursive: true, force: true });
    }
  });

  it("names a missing image, pulls nothing, and starts nothing", async () => {
    const image = `agentainer/absent-${randomUUID().slice(0, 6)}:local`;
    const err = await client
      .runTask({ ref: ref(), spec: { image, command: ["true"] } })
      .catch((e: unknown) => ConnectError.from(e));
    expect((err as ConnectError).code).toBe(Code.NotFound);
    expect((err as ConnectError).rawMessage).toContain(image);
    const agentErr = await client
      .createAgent({ spec: { image, mode: AgentMode.EXEC } })
      .catch((e: unknown) => ConnectError.from(e));
    expect((agentErr as ConnectError).code).toBe(Code.NotFound);
    const img = await client.getImage({ image: shellImage });
    expect(img.imageId).toMatch(/^sha256:/);
  });

  it("gives a bridge network only when asked", async () => {
    const { result } = await client.runTask({
      ref: ref(),
      spec: {
        image: shellImage,
        command: ["sh", "-c", "cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' ' | sort"],
        network: NetworkMode.BRIDGE,
      },
    });
    expect(Buffer.from(result!.stdout).toString()).toContain("eth0");
  });

  it("relays state for a stream agent built from the node-agent image", async () => {
    const { agent } = await client.createAgent({
      spec: {
        image: nodeAgentImage,
        command: ["node", "/agents/test-agent.mjs"],
        mode: AgentMode.STREAM,
      },
    });
    try {
      const r = await client.runTaskOnAgent({
        agentId: agent!.agentId,
        ref: ref(),
        input: fromJson(ValueSchema, { action: "state" }),
      });
      // This Executor has no State service: the agent is told so, and its task fails cleanly.
      expect(r.result?.status).toBe(TaskStatus.FAILED);
      expect(r.result?.error).toMatch(/no State service/);
    } finally {
      await client.destroyAgent({ agentId: agent!.agentId, force: true });
    }
  });
});

describe("the Executor on Docker after a restart", () => {
  it("adopts its exec agents and removes what it cannot use", async () => {
    const node = `restart-${randomUUID().slice(0, 8)}`;
    const workDir = mkdtempSync(join(tmpdir(), "agentainer-restart-"));
    const env = {
      PORT: "0",
      HOST: "127.0.0.1",
      LOG_LEVEL: "silent",
      EXECUTOR_NODE_ID: node,
      EXECUTOR_WORK_DIR: workDir,
    };
    const before = await startExecutorService(env, { runtime: await docker() });
    const old = createClient(ExecutorService, createGrpcTransport({ baseUrl: before.url }));
    let after: RunningExecutor | undefined;
    try {
      await old.createAgent({
        agentId: "keeper",
        poolId: "p1",
        spec: {
          image: shellImage,
          command: ["sleep", "3600"],
          mode: AgentMode.EXEC,
          labels: { team: "a" },
        },
      });
      await old.createAgent({
        agentId: "streamer",
        spec: {
          image: nodeAgentImage,
          command: ["node", "/agents/test-agent.mjs"],
          mode: AgentMode.STREAM,
        },
      });
      // An exec agent that keeps replacing its request pipe with a link to a host file: the
      // new process must not follow it, and must start whether it can adopt this agent or not.
      await old.createAgent({
        agentId: "saboteur",
        spec: {
          image: shellImage,
          command: ["sh", "-c", "while :; do ln -sf /etc/hostname /agentainer/state.req; done"],
          mode: AgentMode.EXEC,
        },
      });
      const orphanTask = `orphan-${randomUUID()}`;
      const orphanRun = old.runTask({
        ref: { workflowId: "wf-restart", stepId: "s", taskId: orphanTask },
        spec: { image: shellImage, command: ["sleep", "3600"] },
      });
      orphanRun.catch(() => undefined);
      await waitForRunning(old, orphanTask);
      // What a process that crashed left: task containers, one kept for debugging, each with
      // its mailbox directory. (The orphan above is cleaned up by the live first process too.)
      const crashed = (box: string, kept: string) => {
        mkdirSync(join(workDir, "tasks", box));
        writeFileSync(join(workDir, "tasks", box, "input.json"), "{}\n");
        // prettier-ignore
        execFileSync("docker", [
          "run", "-d", "--network", "none", "--name", `${node}-${box}`,
          "--label", `${labels.managed}=true`, "--label", `${labels.kind}=task`,
          "--label", `${labels.nodeId}=${node}`, "--label", `${labels.mailbox}=${box}`,
          "--label", `${labels.kept}=${kept}`, shellImage, "sleep", "3600",
        ]);
      };
      crashed("crashed-0123abcd", "never");
      crashed("kept-4567cdef", "always");

      // A second process on the same node and work directory, as after a crash and restart.
      after = await startExecutorService(env, { runtime: await docker() });
      // Both mailboxes are gone; the kept container stays, stopped.
      const tasksLeft = readdirSync(join(workDir, "tasks"));
      expect(tasksLeft.filter((b) => /^(crashed|kept)-/.test(b))).toEqual([]);
      const keptState = execFileSync("docker", [
        "inspect",
        "-f",
        "{{.State.Running}}",
        `${node}-kept-4567cdef`,
      ]);
      expect(keptState.toString().trim()).toBe("false");
      const fresh = createClient(ExecutorService, createGrpcTransport({ baseUrl: after.url }));
      const { agents } = await fresh.listAgents({});
      const others = agents.filter((a) => a.agentId !== "saboteur"); // adopted or removed
      expect(others.map((a) => [a.agentId, a.poolId, a.state, a.spec?.labels.team])).toEqual([
        ["keeper", "p1", AgentState.READY, "a"],
      ]);
      const r = await fresh.runTaskOnAgent({
        agentId: "keeper",
        ref: { workflowId: "wf-restart", stepId: "s" },
        command: ["sh", "-c", 'echo "{\\"n\\": $AGENTAINER_INDEX}"'],
      });
      expect(r.result?.status).toBe(TaskStatus.SUCCEEDED);
      const left = execFileSync("docker", [
        "ps",
        "-a",
        "--format",
        "{{.Names}}",
        "--filter",
        `label=${labels.nodeId}=${node}`,
      ])
        .toString()
        .trim()
        .split("\n")
        .filter((name) => !name.includes("saboteur") && !name.includes("kept-"));
      // The orphan task, the crashed one and the stream agent are gone.
      expect(left).toEqual([r.result?.containerName]);
    } finally {
      await after?.close();
      await before.close();
      rmSync(workDir, { recursive: true, force: true });
      try {
        execFileSync("docker", ["rm", "-f", `${node}-kept-4567cdef`], { stdio: "ignore" });
      } catch {
        // never made: the test failed before
      }
    }
    const remaining = execFileSync("docker", [
      "ps",
      "-aq",
      "--filter",
      `label=${labels.nodeId}=${node}`,
    ]);
    expect(remaining.toString().trim()).toBe("");
  });
});

async function waitForRunning(client: Client<typeof ExecutorService>, taskId: string) {
  await eventually(
    async () => (await client.getTask({ taskId })).task?.status === TaskStatus.RUNNING,
  );
}
