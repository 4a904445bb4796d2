import type { Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { createBearerTokenInterceptor } from "./auth.js";

/**
 * The transport one service uses to call another over the network: gRPC on HTTP/2, with the
 * mesh's API token when one is set (AGENTAINER_API_TOKEN).
 */
export function createServiceTransport(baseUrl: string, apiToken?: string): Transport {
  return createGrpcTransport({
    baseUrl,
    interceptors: apiToken === undefined ? [] : [createBearerTokenInterceptor(apiToken)],
  });
}
