import { Code, ConnectError, type ConnectRouter, type ServiceImpl } from "@connectrpc/connect";
import {
  Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from "../gen/grpc/health/v1/health_pb.js";

export { ServingStatus };

/** What the process itself changes about its health; the RPCs only read it. */
export interface HealthControl {
  /** Sets the status of a service ("" = the whole server), registering the name if it is new. Ignored after shutdown(). */
  setStatus(service: string, status: ServingStatus): void;
  /** The status of a service ("" = the whole server); undefined when the name is unknown. */
  getStatus(service: string): ServingStatus | undefined;
  /** Marks every service NOT_SERVING and ignores later setStatus calls: the server is going away. */
  shutdown(): void;
}

export interface HealthServiceDeps {
  /** Fully qualified names of the services reported SERVING from the start, besides "" (the whole server). */
  services: readonly string[];
  /** Ends every open Watch stream when aborted (after it sent the latest status). */
  shutdownSignal?: AbortSignal;
}

export interface HealthService {
  readonly control: HealthControl;
  /** Registers grpc.health.v1.Health on a router. */
  routes(router: ConnectRouter): void;
}

/** grpc.health.v1.Health, per https://github.com/grpc/grpc/blob/master/doc/health-checking.md. */
export function createHealthService(deps: HealthServiceDeps): HealthService {
  const statuses = new Map<string, ServingStatus>([["", ServingStatus.SERVING]]);
  for (const name of deps.services) statuses.set(name, ServingStatus.SERVING);
  const listeners = new Set<() => void>();
  let shutDown = false;

  const notify = (): void => {
    for (const listener of [...listeners]) listener();
  };

  const control: HealthControl = {
    setStatus(service, status) {
      if (shutDown || statuses.get(service) === status) return;
      statuses.set(service, status);
      notify();
    },
    getStatus: (service) => statuses.get(service),
    shutdown() {
      shutDown = true;
      for (const name of statuses.keys()) statuses.set(name, ServingStatus.NOT_SERVING);
      notify();
    },
  };

  const impl: ServiceImpl<typeof Health> = {
    check(request) {
      const status = statuses.get(request.service);
      if (status === undefined) {
        throw new ConnectError(`unknown service "${request.service}"`, Code.NotFound);
      }
      return { status };
    },

    // Latest-value semantics: a slow reader skips intermediate states and always ends up with the current one.
    async *watch(request, context) {
      const signals = deps.shutdownSignal
        ? [context.signal, deps.shutdownSignal]
        : [context.signal];
      const signal = AbortSignal.any(signals);
      let wake: (() => void) | undefined;
      const onChange = (): void => {
        const resolve = wake;
        wake = undefined;
        resolve?.();
      };
      listeners.add(onChange);
      signal.addEventListener("abort", onChange);
      try {
        let sent: ServingStatus | undefined;
        for (;;) {
          const current = statuses.get(request.service) ?? ServingStatus.SERVICE_UNKNOWN;
          if (current !== sent) {
            sent = current;
            yield { status: current };
            continue;
          }
          if (signal.aborted) return;
          await new Promise<void>((resolve) => (wake = resolve));
        }
      } finally {
        listeners.delete(onChange);
        signal.removeEventListener("abort", onChange);
      }
    },
  };

  return {
    control,
    routes: (router) => router.service(Health, impl),
  };
}
