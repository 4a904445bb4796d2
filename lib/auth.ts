import { createHash, timingSafeEqual } from "node:crypto";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";

/** The service every caller may use without a token: load balancers and container health checks. */
const OPEN_SERVICES = new Set(["grpc.health.v1.Health"]);

function digest(value: string): Buffer {
  return createHash("sha256").update(value).digest();
}

/**
 * With AGENTAINER_API_TOKEN set, every call but gRPC health needs `authorization: Bearer <token>`
 * (reflection included); anything else is UNAUTHENTICATED. The comparison takes the same time
 * whatever the token sent.
 */
export function createTokenAuthInterceptor(token: string): Interceptor {
  const expected = digest(token);
  return (next) => async (req) => {
    if (OPEN_SERVICES.has(req.method.parent.typeName)) return next(req);
    const header = req.header.get("authorization") ?? "";
    const match = /^Bearer (.+)$/i.exec(header);
    if (match === null) {
      throw new ConnectError(
        "this server requires an API token: send `authorization: Bearer <token>` " +
          "(the CLI and the services read AGENTAINER_API_TOKEN)",
        Code.Unauthenticated,
      );
    }
    if (!timingSafeEqual(digest(match[1]!), expected)) {
      throw new ConnectError("the API token is wrong", Code.Unauthenticated);
    }
    return next(req);
  };
}

/** Client side: sends the token on every call. */
export function createBearerTokenInterceptor(token: string): Interceptor {
  return (next) => (req) => {
    req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
}
