import { Code, ConnectError, type CallOptions, type Client } from "@connectrpc/connect";
import {
  BatchOperationSchema,
  type BatchOperation,
  type BatchResult,
  type StateService,
} from "../../gen/agentainer/state/v1/state_pb.js";

type Operation = BatchOperation["operation"];
/** The operations a batch can carry: "get", "set", "increment", ... */
export type BatchOperationKind = NonNullable<Operation["case"]>;
type RequestOf<K extends BatchOperationKind> = Extract<Operation, { case: K }>["value"];
type ResponseOf<K extends BatchOperationKind> = Extract<
  BatchResult["result"],
  { case: K }
>["value"];
/** A request without protobuf-es's bookkeeping fields, as a caller writes it. */
type RequestInit<K extends BatchOperationKind> = Omit<RequestOf<K>, "$typeName" | "$unknown">;

/**
 * A State client that sends the operations its callers start together as one Batch call: each
 * method looks like the single-call RPC and settles with that operation's own result or error.
 * Operations started while a Batch is in flight go out in the next one, so a busy process pays
 * one call per round trip instead of one per operation (see docs/benchmarks.md).
 *
 * Ordering is that of separate calls: one caller's operations apply in order when it awaits
 * each before starting the next; operations started without awaiting may apply in any order.
 */
export type BatchingStateClient = {
  [K in BatchOperationKind]: (request: RequestInit<K>) => Promise<ResponseOf<K>>;
};

export interface BatchingOptions {
  /** Most operations per Batch call (the server allows 1000). Default 256. */
  maxBatchSize?: number;
  /** Options for every Batch call (timeout, headers, signal). */
  callOptions?: CallOptions;
}

interface Pending {
  operation: Operation;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

export function createBatchingStateClient(
  client: Client<typeof StateService>,
  options: BatchingOptions = {},
): BatchingStateClient {
  const maxBatchSize = options.maxBatchSize ?? 256;
  if (!Number.isInteger(maxBatchSize) || maxBatchSize < 1 || maxBatchSize > 1000) {
    throw new RangeError(`maxBatchSize must be an integer from 1 to 1000; got ${maxBatchSize}`);
  }
  let queue: Pending[] = [];
  let scheduled = false;

  async function send(batch: Pending[]): Promise<void> {
    try {
      const { results } = await client.batch(
        { operations: batch.map((p) => ({ operation: p.operation })) },
        options.callOptions,
      );
      batch.forEach((p, i) => {
        const result = results[i]?.result;
        if (result === undefined || result.case === undefined) {
          p.reject(new ConnectError(`the server sent no result for operation ${i}`, Code.Internal));
        } else if (result.case === "error") {
          p.reject(new ConnectError(result.value.message, result.value.code as Code));
        } else {
          p.resolve(result.value);
        }
      });
    } catch (err) {
      for (const p of batch) p.reject(err);
    }
  }

  function flush(): void {
    scheduled = false;
    const all = queue;
    queue = [];
    for (let i = 0; i < all.length; i += maxBatchSize) void send(all.slice(i, i + maxBatchSize));
  }

  function enqueue(operation: Operation): Promise<unknown> {
    return new Promise((resolve, reject) => {
      queue.push({ operation, resolve, reject });
      if (!scheduled) {
        scheduled = true;
        // After the current I/O callbacks: every caller woken by the same response gets in.
        setImmediate(flush);
      }
    });
  }

  const methods: Record<string, (request: unknown) => Promise<unknown>> = {};
  for (const field of BatchOperationSchema.oneofs[0]?.fields ?? []) {
    const kind = field.localName;
    methods[kind] = (request) => enqueue({ case: kind, value: request } as Operation);
  }
  return methods as BatchingStateClient;
}
