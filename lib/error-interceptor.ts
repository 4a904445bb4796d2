import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Logger } from "pino";
import { AgentainerError, type ErrorKind } from "./errors.js";

const codes: Record<ErrorKind, Code> = {
  invalid_argument: Code.InvalidArgument,
  not_found: Code.NotFound,
  already_exists: Code.AlreadyExists,
  failed_precondition: Code.FailedPrecondition,
  resource_exhausted: Code.ResourceExhausted,
  unavailable: Code.Unavailable,
  deadline_exceeded: Code.DeadlineExceeded,
  permission_denied: Code.PermissionDenied,
  cancelled: Code.Canceled,
};

/**
 * The reverse, for a service calling another: a ConnectError from a client call becomes the
 * domain error of the same kind (same message), so domain code can tell NOT_FOUND from
 * UNAVAILABLE without importing Connect. Codes without a kind become UNAVAILABLE.
 */
export function fromConnectError(err: unknown, what: string): AgentainerError {
  if (err instanceof AgentainerError) return err;
  const e = ConnectError.from(err);
  const kind = (Object.entries(codes) as Array<[ErrorKind, Code]>).find(
    ([, c]) => c === e.code,
  )?.[0];
  return new AgentainerError(kind ?? "unavailable", `${what}: ${e.rawMessage}`, { cause: err });
}

/** Maps any thrown error to the ConnectError a client sees. Unknown errors become INTERNAL and are logged. */
export function toConnectError(err: unknown, logger?: Logger, procedure?: string): ConnectError {
  if (err instanceof ConnectError) return err;
  if (err instanceof AgentainerError) return new ConnectError(err.message, codes[err.kind]);
  logger?.error({ err, procedure }, "unexpected error in handler");
  return new ConnectError("internal error; the server log has the details", Code.Internal);
}

/**
 * The one place where domain errors become gRPC statuses, for unary and streaming handlers alike.
 */
export function createErrorInterceptor(logger: Logger): Interceptor {
  return (next) => async (req) => {
    const procedure = req.method.parent.typeName + "/" + req.method.name;
    try {
      const res = await next(req);
      if (!res.stream) return res;
      const messages = res.message;
      return {
        ...res,
        message: (async function* () {
          try {
            yield* messages;
          } catch (err) {
            throw toConnectError(err, logger, procedure);
          }
        })(),
      };
    } catch (err) {
      throw toConnectError(err, logger, procedure);
    }
  };
}
