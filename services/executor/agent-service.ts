import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { InvalidArgumentError } from "../../lib/errors.js";
import { durationToMs, msToDuration, msToTimestamp } from "../../lib/time.js";
import type { AgentState } from "../../gen/agentainer/executor/v1/executor_pb.js";
import {
  AgentMode,
  AgentSchema,
  type Agent,
  type AgentSpec as ProtoAgentSpec,
  type ExecutorService,
} from "../../gen/agentainer/executor/v1/executor_pb.js";
import type { AgentRecord, AgentSpec } from "./agent.js";
import type { AgentManager } from "./agent-manager.js";
import type { ExecutorContext } from "./context.js";
import {
  agentModeToProto,
  agentStateToProto,
  inputFromProto,
  limitsFromProto,
  networkFromProto,
  networkToProto,
  refFromProto,
  taskResult,
} from "./convert.js";
import type { AgentStateName } from "./task.js";
import {
  checkAgentId,
  checkArgv,
  checkEnv,
  checkImage,
  checkInput,
  checkLabels,
  checkLimits,
  checkNetwork,
  checkTaskRef,
  checkTimeout,
  checkWorkingDir,
} from "./validate.js";

type Impl = ServiceImpl<typeof ExecutorService>;
/** The agent RPCs of ExecutorService. */
export type AgentHandlers = Pick<
  Impl,
  "createAgent" | "getAgent" | "checkAgent" | "destroyAgent" | "listAgents" | "runTaskOnAgent"
>;

const minute = 60_000;

function agentSpecFromProto(ctx: ExecutorContext, spec: ProtoAgentSpec | undefined): AgentSpec {
  if (spec === undefined) throw new InvalidArgumentError("spec is required", { field: "spec" });
  checkImage(spec.image);
  checkArgv(spec.command, "spec.command", false);
  checkArgv(spec.args, "spec.args", false);
  checkEnv(spec.env, "spec.env");
  checkWorkingDir(spec.workingDir, "spec.working_dir");
  checkLabels(spec.labels, "spec.labels");
  let mode: AgentSpec["mode"];
  if (spec.mode === AgentMode.UNSPECIFIED || spec.mode === AgentMode.EXEC) mode = "exec";
  else if (spec.mode === AgentMode.STREAM) mode = "stream";
  else
    throw new InvalidArgumentError(`spec.mode holds an unknown mode ${spec.mode}`, {
      field: "spec.mode",
    });
  return {
    image: spec.image,
    command: spec.command,
    args: spec.args,
    env: spec.env,
    workingDir: spec.workingDir,
    limits: checkLimits(limitsFromProto(spec.limits, "spec.limits"), ctx.limits, "spec.limits"),
    network: checkNetwork(
      networkFromProto(spec.network, "spec.network"),
      ctx.limits,
      "spec.network",
    ),
    mode,
    labels: spec.labels,
  };
}

export function agentToProto(a: AgentRecord): Agent {
  return create(AgentSchema, {
    agentId: a.agentId,
    poolId: a.poolId,
    spec: {
      image: a.spec.image,
      command: a.spec.command,
      args: a.spec.args,
      env: a.spec.env,
      workingDir: a.spec.workingDir,
      limits: {
        cpuMillis: BigInt(a.spec.limits.cpuMillis),
        memoryBytes: BigInt(a.spec.limits.memoryBytes),
        pids: BigInt(a.spec.limits.pids),
      },
      network: networkToProto[a.spec.network],
      mode: agentModeToProto[a.spec.mode],
      labels: a.spec.labels,
    },
    state: agentStateToProto[a.state],
    containerId: a.container?.id ?? "",
    containerName: a.container?.name ?? "",
    createTime: msToTimestamp(a.createMs),
    readyTime: a.readyMs === undefined ? undefined : msToTimestamp(a.readyMs),
    lastUsedTime: a.lastUsedMs === undefined ? undefined : msToTimestamp(a.lastUsedMs),
    uses: BigInt(a.uses),
    currentTaskId: a.currentTaskId,
    error: a.error,
    exitCode: a.exitCode,
    nodeId: a.nodeId,
  });
}

const stateFromProto = (s: AgentState, i: number): AgentStateName => {
  const found = (Object.entries(agentStateToProto) as Array<[AgentStateName, AgentState]>).find(
    ([, v]) => v === s,
  );
  if (found === undefined) {
    throw new InvalidArgumentError(`states[${i}] holds an unknown agent state ${s}`, {
      field: `states[${i}]`,
    });
  }
  return found[0];
};

/** Handlers of the agent RPCs, over the AgentManager. */
export function createAgentHandlers(ctx: ExecutorContext, agents: AgentManager): AgentHandlers {
  return {
    async createAgent(req) {
      if (req.agentId !== "") checkAgentId(req.agentId);
      if (req.poolId !== "") checkAgentId(req.poolId, "pool_id");
      const spec = agentSpecFromProto(ctx, req.spec);
      const startupMs = durationToMs(req.startupTimeout, "startup_timeout") || 30_000;
      if (startupMs > 10 * minute) {
        throw new InvalidArgumentError("startup_timeout is longer than 10 minutes", {
          field: "startup_timeout",
        });
      }
      return { agent: agentToProto(await agents.create(req.agentId, req.poolId, spec, startupMs)) };
    },

    getAgent(req) {
      return Promise.resolve({ agent: agentToProto(agents.get(req.agentId)) });
    },

    async checkAgent(req) {
      checkArgv(req.command, "command", false);
      const timeoutMs = durationToMs(req.timeout, "timeout") || 5000;
      if (timeoutMs > 5 * minute) {
        throw new InvalidArgumentError("timeout is longer than 5 minutes", { field: "timeout" });
      }
      const r = await agents.check(req.agentId, req.command, timeoutMs);
      return {
        healthy: r.healthy,
        detail: r.detail,
        latency: msToDuration(r.latencyMs),
        agent: agentToProto(r.agent),
      };
    },

    async destroyAgent(req) {
      const agent = await agents.destroy(req.agentId, req.force, req.reason);
      return agent === undefined
        ? { existed: false }
        : { existed: true, agent: agentToProto(agent) };
    },

    listAgents(req) {
      const size = req.pageSize === 0 ? 100 : req.pageSize;
      if (!Number.isInteger(size) || size < 1 || size > 1000) {
        throw new InvalidArgumentError(`page_size must be 0 to 1000; got ${req.pageSize}`, {
          field: "page_size",
        });
      }
      const all = agents.list({
        poolId: req.poolId,
        labels: req.labels,
        states: req.states.map(stateFromProto),
      });
      const filterKey = JSON.stringify([req.poolId, req.labels, [...req.states].sort()]);
      let start = 0;
      if (req.pageToken !== "") {
        const after = decodeToken(req.pageToken, filterKey);
        start = all.findIndex(
          (a) =>
            a.createMs > after.createMs ||
            (a.createMs === after.createMs && a.agentId > after.agentId),
        );
        if (start === -1) start = all.length;
      }
      const page = all.slice(start, start + size);
      const last = page[page.length - 1];
      const more = start + size < all.length && last !== undefined;
      return Promise.resolve({
        agents: page.map(agentToProto),
        nextPageToken: more
          ? Buffer.from(JSON.stringify([filterKey, last.createMs, last.agentId])).toString(
              "base64url",
            )
          : "",
      });
    },

    async runTaskOnAgent(req) {
      checkAgentId(req.agentId);
      const ref = checkTaskRef(refFromProto(req.ref));
      checkArgv(req.command, "command", false);
      checkEnv(req.env, "env");
      checkWorkingDir(req.workingDir, "working_dir");
      const input = inputFromProto(req.input, "input");
      const task = await agents.runTask(req.agentId, {
        ref,
        command: req.command,
        env: req.env,
        workingDir: req.workingDir,
        input,
        inputJson: checkInput(input, ctx.limits, "input"),
        timeoutMs: checkTimeout(durationToMs(req.timeout, "timeout"), ctx.limits, "timeout"),
      });
      await task.done;
      return { result: taskResult(task) };
    },
  };
}

function decodeToken(token: string, filterKey: string): { createMs: number; agentId: string } {
  try {
    const v = JSON.parse(Buffer.from(token, "base64url").toString()) as unknown;
    if (
      Array.isArray(v) &&
      v[0] === filterKey &&
      typeof v[1] === "number" &&
      typeof v[2] === "string"
    ) {
      return { createMs: v[1], agentId: v[2] };
    }
  } catch {
    // fall through
  }
  throw new InvalidArgumentError(
    "page_token is not one this server issued for these filters: start again with an empty token",
    { field: "page_token" },
  );
}
