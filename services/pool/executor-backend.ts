import { Code, ConnectError, type Client } from "@connectrpc/connect";
import type { EventBus } from "../../lib/events/event-bus.js";
import { subjects } from "../../lib/events/subjects.js";
import { subscribeEvents } from "../../lib/events/typed.js";
import { msToDuration } from "../../lib/time.js";
import { AgentEventSchema } from "../../gen/agentainer/executor/v1/events_pb.js";
import { AgentState, type ExecutorService } from "../../gen/agentainer/executor/v1/executor_pb.js";
import type { AgentBackend, BackendAgentState } from "./backend.js";
import { templateToProto, type Template } from "./template.js";

const states: Partial<Record<AgentState, BackendAgentState>> = {
  [AgentState.READY]: "ready",
  [AgentState.BUSY]: "busy",
  [AgentState.UNHEALTHY]: "unhealthy",
  [AgentState.EXITED]: "exited",
  [AgentState.DESTROYED]: "gone",
};

/** The AgentBackend over ExecutorService, plus the Executor's agent events for exits. */
export function executorBackend(
  executor: Client<typeof ExecutorService>,
  bus: EventBus,
  startupTimeoutMs: number,
): AgentBackend {
  return {
    async create(poolId, agentId, t: Template) {
      const { agent } = await executor.createAgent({
        agentId,
        poolId,
        // An AgentSpec has the template's fields (AgentTemplate mirrors it, minus labels).
        spec: templateToProto(t),
        startupTimeout: msToDuration(startupTimeoutMs),
      });
      return { containerId: agent?.containerId ?? "" };
    },

    async check(agentId, command, timeoutMs) {
      try {
        const r = await executor.checkAgent({
          agentId,
          command: [...command],
          timeout: msToDuration(timeoutMs),
        });
        return {
          healthy: r.healthy,
          detail: r.detail,
          state: states[r.agent?.state ?? AgentState.UNSPECIFIED] ?? "gone",
        };
      } catch (err) {
        const e = ConnectError.from(err);
        return {
          healthy: false,
          detail: `check failed: ${e.rawMessage}`,
          state: e.code === Code.NotFound ? "gone" : "unhealthy",
        };
      }
    },

    async destroy(agentId, force, reason) {
      try {
        await executor.destroyAgent({ agentId, force, reason });
      } catch (err) {
        if (ConnectError.from(err).code !== Code.NotFound) throw err;
      }
    },

    async listPooled() {
      const out: Array<{
        agentId: string;
        poolId: string;
        containerId: string;
        state: BackendAgentState;
      }> = [];
      let pageToken = "";
      do {
        const r = await executor.listAgents({ pageSize: 1000, pageToken });
        for (const a of r.agents) {
          if (a.poolId === "") continue;
          out.push({
            agentId: a.agentId,
            poolId: a.poolId,
            containerId: a.containerId,
            state: states[a.state] ?? "unhealthy",
          });
        }
        pageToken = r.nextPageToken;
      } while (pageToken !== "");
      return out;
    },

    onExited(listener) {
      const sub = subscribeEvents(bus, subjects.executor.agent("exited"), AgentEventSchema, (e) =>
        listener(e.agentId),
      );
      return () => sub.unsubscribe();
    },
  };
}
