import type { MessageInitShape } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { Channel } from "../../lib/channel.js";
import { InvalidArgumentError } from "../../lib/errors.js";
import { toConnectError } from "../../lib/error-interceptor.js";
import type { Logger } from "../../lib/logger.js";
import type {
  DispatchTasksResponseSchema,
  ExecutorService,
} from "../../gen/agentainer/executor/v1/executor_pb.js";
import type { AgentHandlers } from "./agent-service.js";

type Response = MessageInitShape<typeof DispatchTasksResponseSchema>;

/**
 * DispatchTasks: RunTaskOnAgent over one long-lived stream. Each request runs exactly as its own
 * RunTaskOnAgent call would (same handler); responses go out as tasks end, tagged with the
 * request's call_id; a refused request answers with its status instead of ending the stream.
 */
export function createDispatchHandler(
  agents: AgentHandlers,
  logger: Logger,
  shutdownSignal: AbortSignal,
): Pick<ServiceImpl<typeof ExecutorService>, "dispatchTasks"> {
  return {
    async *dispatchTasks(requests, context: HandlerContext) {
      const out = new Channel<Response>();
      let running = 0;
      let inputEnded = false;
      const settle = () => {
        running--;
        if (inputEnded && running === 0) out.close();
      };
      const shutdown = () => out.close();
      shutdownSignal.addEventListener("abort", shutdown);
      void (async () => {
        try {
          for await (const req of requests) {
            const callId = req.callId;
            running++;
            void run(req.callId, req.task, context)
              .then(
                (result): Response => ({ callId, outcome: { case: "result", value: result } }),
                (err: unknown): Response => {
                  const e = toConnectError(err, logger, "ExecutorService/DispatchTasks");
                  return {
                    callId,
                    outcome: { case: "error", value: { code: e.code, message: e.rawMessage } },
                  };
                },
              )
              .then((response) => out.push(response))
              .finally(settle);
          }
        } catch {
          // The caller went away: the tasks it started still end on their own.
        }
        inputEnded = true;
        if (running === 0) out.close();
      })();
      try {
        yield* out;
      } finally {
        shutdownSignal.removeEventListener("abort", shutdown);
      }
    },
  };

  async function run(
    callId: string,
    task: Parameters<AgentHandlers["runTaskOnAgent"]>[0] | undefined,
    context: HandlerContext,
  ) {
    if (callId === "" || callId.length > 128) {
      throw new InvalidArgumentError("call_id must be 1 to 128 characters", { field: "call_id" });
    }
    if (task === undefined) throw new InvalidArgumentError("task is required", { field: "task" });
    const response = await agents.runTaskOnAgent(task, context);
    return response.result ?? {};
  }
}
