import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { createCallStreamHandler, refusedAsError } from "../../lib/call-stream.js";
import { InvalidArgumentError } from "../../lib/errors.js";
import type { Logger } from "../../lib/logger.js";
import type {
  AcquireRequest,
  AcquireResponseSchema,
  LeaseAgentsRequest,
  LeaseAgentsResponseSchema,
  PoolService,
  ReleaseRequest,
  ReleaseResponseSchema,
  RenewLeaseRequest,
  RenewLeaseResponseSchema,
} from "../../gen/agentainer/pool/v1/pool_pb.js";

type Outcome = MessageInitShape<typeof LeaseAgentsResponseSchema>["outcome"];

/** The unary lease RPCs as service.ts implements them; `signal` ends a waiting acquire. */
export interface LeaseCalls {
  acquire(
    req: AcquireRequest,
    signal: AbortSignal,
  ): Promise<MessageInitShape<typeof AcquireResponseSchema>>;
  release(req: ReleaseRequest): Promise<MessageInitShape<typeof ReleaseResponseSchema>>;
  renewLease(req: RenewLeaseRequest): Promise<MessageInitShape<typeof RenewLeaseResponseSchema>>;
}

/**
 * LeaseAgents: Acquire, Release and RenewLease over one long-lived stream (lib/call-stream.ts).
 * Each call runs through the very handler its unary RPC uses, so validation, statuses, the FIFO
 * queue and the wait deadline are the same; answers go out as calls end, tagged with the call_id.
 * An acquire still waiting when the stream ends (the caller went away, shutdown) leaves the queue,
 * as a unary Acquire whose call ends; leases already granted stay held until released or expired.
 */
export function createLeaseStreamHandler(
  leases: LeaseCalls,
  logger: Logger,
  shutdownSignal: AbortSignal,
): Pick<ServiceImpl<typeof PoolService>, "leaseAgents"> {
  return {
    leaseAgents: createCallStreamHandler<LeaseAgentsRequest, Outcome>({
      run: (req, signal) => run(req.call, signal),
      refused: refusedAsError,
      shutdownSignal,
      logger,
    }),
  };

  async function run(call: LeaseAgentsRequest["call"], signal: AbortSignal): Promise<Outcome> {
    switch (call.case) {
      case "acquire":
        return { case: "acquired", value: await leases.acquire(call.value, signal) };
      case "release":
        return { case: "released", value: await leases.release(call.value) };
      case "renew":
        return { case: "renewed", value: await leases.renewLease(call.value) };
      case undefined:
        throw new InvalidArgumentError("call is required: one of acquire, release or renew", {
          field: "call",
        });
    }
  }
}
