import type { MessageInitShape } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type { Logger } from "../../lib/logger.js";
import { AgentainerError, InvalidArgumentError } from "../../lib/errors.js";
import { toConnectError } from "../../lib/error-interceptor.js";
import type {
  BatchRequest,
  BatchResponseSchema,
  BatchResultSchema,
  StateService,
} from "../../gen/agentainer/state/v1/state_pb.js";

/** Most operations one Batch call may carry (documented in state.proto). */
export const MAX_BATCH_OPERATIONS = 1000;

type Impl = ServiceImpl<typeof StateService>;
type Result = MessageInitShape<typeof BatchResultSchema>;
/** The unary handler of one operation case, typed loosely: the case names the handler. */
type AnyUnary = (req: unknown, context: HandlerContext) => Promise<unknown>;

/**
 * Runs a batch through the single-call handlers, so each operation behaves exactly as its own
 * call would (same validation, same atomic write, same event). The request's shape is checked
 * first, so a malformed batch runs nothing.
 *
 * The operations are started one after another without waiting for each to finish: every
 * handler validates synchronously and then issues its one store step (a Lua script on the
 * service's single Redis connection, or one synchronous in-memory step) before it first yields,
 * so the steps reach the store in the order given and each sees the effects of the ones before
 * it, while the Redis round trips overlap. Handlers must keep that property (no await before the
 * store step); state-batch.test.ts checks the ordering. A failed operation becomes its result's
 * error; the others are unaffected.
 */
export async function runBatch(
  impl: Impl,
  req: BatchRequest,
  context: HandlerContext,
  logger: Logger,
): Promise<MessageInitShape<typeof BatchResponseSchema>> {
  if (req.operations.length > MAX_BATCH_OPERATIONS) {
    throw new InvalidArgumentError(
      `a batch holds at most ${MAX_BATCH_OPERATIONS} operations; got ${req.operations.length}: split it into several calls`,
      { field: "operations" },
    );
  }
  const unset = req.operations.findIndex((op) => op.operation.case === undefined);
  if (unset !== -1) {
    throw new InvalidArgumentError(
      `operations[${unset}] has no operation set: set exactly one of get, set, increment, ...`,
      { field: `operations[${unset}]` },
    );
  }
  if (context.signal.aborted) {
    throw new AgentainerError("cancelled", "the batch was cancelled before it started");
  }

  const procedure = "agentainer.state.v1.StateService/Batch";
  const started = req.operations.map(async ({ operation }, index): Promise<Result> => {
    if (operation.case === undefined) throw new Error("unreachable: checked above");
    const handler = impl[operation.case] as AnyUnary;
    try {
      const value = await handler.call(impl, operation.value, context);
      return { result: { case: operation.case, value } } as Result;
    } catch (err) {
      const status = toConnectError(err, logger, `${procedure} operations[${index}]`);
      return {
        result: { case: "error", value: { code: status.code, message: status.rawMessage } },
      };
    }
  });
  return { results: await Promise.all(started) };
}
