import { ConnectError, type HandlerContext } from "@connectrpc/connect";
import { Channel } from "./channel.js";
import { toConnectError } from "./error-interceptor.js";
import { InvalidArgumentError } from "./errors.js";
import type { Logger } from "./logger.js";

/** A request of a call stream: one call, tagged with the call_id its caller chose. */
export interface TaggedCall {
  readonly callId: string;
}

/** A response of a call stream: how the call with that call_id ended. */
export interface TaggedAnswer<Outcome> {
  callId: string;
  outcome: Outcome;
}

export interface CallStreamOptions<Call extends TaggedCall, Outcome> {
  /**
   * Runs one call exactly as its unary RPC would: resolves to its outcome, or rejects with what
   * refuses it. `signal` aborts once the stream is over (the caller went away, the server shuts
   * down, the requests failed): a call still waiting should give up, as a unary call whose
   * context ends. `context` is the stream's.
   */
  run: (call: Call, signal: AbortSignal, context: HandlerContext) => Promise<Outcome>;
  /** The outcome of a refused call, from the status its unary RPC would have failed with. */
  refused: (error: ConnectError) => Outcome;
  /** Aborts when the server shuts down: open streams end at once. */
  shutdownSignal: AbortSignal;
  logger: Logger;
}

/** The usual `refused`: the response's `error` case, holding the status code and message. */
export function refusedAsError(e: ConnectError) {
  return { case: "error" as const, value: { code: e.code, message: e.rawMessage } };
}

const maxCallIdLength = 128;

/**
 * A bidirectional-streaming handler that multiplexes many unary calls over one stream
 * (ExecutorService.DispatchTasks, PoolService.LeaseAgents): each request runs as soon as it
 * arrives, concurrently with the others; each answer goes out as its call ends, tagged with the
 * call's call_id; a refused call is answered with its status and the stream stays open. A call_id
 * must be 1 to 128 characters and unique among the calls still running (INVALID_ARGUMENT
 * otherwise). The stream ends once the requests have ended and every call has answered, at once
 * on shutdown, or with the requests' own error (for instance an unknown field) when they fail.
 */
export function createCallStreamHandler<Call extends TaggedCall, Outcome>(
  options: CallStreamOptions<Call, Outcome>,
): (
  requests: AsyncIterable<Call>,
  context: HandlerContext,
) => AsyncIterable<TaggedAnswer<Outcome>> {
  return (requests, context) => serve(requests, context, options);
}

async function* serve<Call extends TaggedCall, Outcome>(
  requests: AsyncIterable<Call>,
  context: HandlerContext,
  options: CallStreamOptions<Call, Outcome>,
): AsyncGenerator<TaggedAnswer<Outcome>> {
  const procedure = `${context.service.typeName}/${context.method.name}`;
  const answers = new Channel<TaggedAnswer<Outcome>>();
  const running = new Set<string>();
  const over = new AbortController();
  const signal = AbortSignal.any([context.signal, over.signal]);
  let requestsEnded = false;
  const refuse = (err: unknown) => options.refused(toConnectError(err, options.logger, procedure));

  const start = (call: Call): void => {
    const { callId } = call;
    const problem = callIdProblem(callId, running);
    if (problem !== undefined) {
      const e = new InvalidArgumentError(problem, { field: "call_id" });
      answers.push({ callId, outcome: refuse(e) });
      return;
    }
    running.add(callId);
    void new Promise<Outcome>((resolve) => resolve(options.run(call, signal, context)))
      .catch(refuse)
      .then((outcome) => {
        running.delete(callId);
        answers.push({ callId, outcome });
        if (requestsEnded && running.size === 0) answers.close();
      });
  };

  const shutdown = () => answers.close();
  options.shutdownSignal.addEventListener("abort", shutdown, { once: true });
  if (options.shutdownSignal.aborted) answers.close();
  void (async () => {
    try {
      for await (const call of requests) start(call);
    } catch (err) {
      // The caller went away (nobody reads on), or a request was refused whole (unknown field).
      answers.close(ConnectError.from(err));
    }
    requestsEnded = true;
    if (running.size === 0) answers.close();
  })();
  try {
    yield* answers;
  } finally {
    options.shutdownSignal.removeEventListener("abort", shutdown);
    over.abort();
  }
}

function callIdProblem(callId: string, running: ReadonlySet<string>): string | undefined {
  if (callId === "" || callId.length > maxCallIdLength) {
    return `call_id must be 1 to ${maxCallIdLength} characters; got ${callId.length}`;
  }
  if (running.has(callId)) {
    return `call_id "${callId}" is already used by a call of this stream that has not answered yet; use a call_id unique among the calls still running`;
  }
  return undefined;
}
