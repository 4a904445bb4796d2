import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { createCallStreamHandler, refusedAsError } from "../../lib/call-stream.js";
import { InvalidArgumentError } from "../../lib/errors.js";
import type { Logger } from "../../lib/logger.js";
import type {
  DispatchTasksRequest,
  DispatchTasksResponseSchema,
  ExecutorService,
} from "../../gen/agentainer/executor/v1/executor_pb.js";
import type { AgentHandlers } from "./agent-service.js";

type Outcome = MessageInitShape<typeof DispatchTasksResponseSchema>["outcome"];

/**
 * DispatchTasks: RunTaskOnAgent over one long-lived stream (lib/call-stream.ts). Each request runs
 * exactly as its own RunTaskOnAgent call would (same handler); responses go out as tasks end,
 * tagged with the request's call_id; a refused request answers with its status instead of ending
 * the stream. Abandoning the stream does not stop the tasks it started.
 */
export function createDispatchHandler(
  agents: AgentHandlers,
  logger: Logger,
  shutdownSignal: AbortSignal,
): Pick<ServiceImpl<typeof ExecutorService>, "dispatchTasks"> {
  return {
    dispatchTasks: createCallStreamHandler<DispatchTasksRequest, Outcome>({
      async run(req, _signal, context) {
        if (req.task === undefined) {
          throw new InvalidArgumentError("task is required", { field: "task" });
        }
        const response = await agents.runTaskOnAgent(req.task, context);
        return { case: "result", value: response.result ?? {} };
      },
      refused: refusedAsError,
      shutdownSignal,
      logger,
    }),
  };
}
