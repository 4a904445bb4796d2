import type { ConnectRouter, HandlerContext, ServiceImpl } from "@connectrpc/connect";
import {
  DeadlineExceededError,
  FailedPreconditionError,
  InvalidArgumentError,
} from "../../lib/errors.js";
import type { Logger } from "../../lib/logger.js";
import { durationToMs, msToDuration } from "../../lib/time.js";
import { PoolService } from "../../gen/agentainer/pool/v1/pool_pb.js";
import type { AgentBackend } from "./backend.js";
import {
  dispositionToProto,
  leaseToProto,
  outcomeFromProto,
  poolToProto,
  statusFromProto,
} from "./convert.js";
import { createLeaseStreamHandler, type LeaseCalls } from "./lease-stream.js";
import { mergePolicy, policyFromProto } from "./policy.js";
import type { PoolManager } from "./pool-manager.js";
import { checkPoolId, poolIdFor, templateFromProto, templateKey } from "./template.js";

const controlCharacters = /[\u0000-\u001f\u007f]/;
const hourMs = 3_600_000;
const dayMs = 24 * hourMs;

export interface PoolServiceDeps {
  pools: PoolManager;
  backend: AgentBackend;
  /** Checks an image is present on the Executor (NotFoundError naming it otherwise). */
  checkImage: (image: string) => Promise<void>;
  maxSizeLimit: number;
  defaultWaitMs: number;
  now: () => number;
  logger: Logger;
  /** Aborted when the server shuts down: open LeaseAgents streams end. */
  shutdownSignal: AbortSignal;
}

function checkHolder(holder: string): void {
  if (holder === "" || holder.length > 256 || controlCharacters.test(holder)) {
    throw new InvalidArgumentError(
      "holder must be 1 to 256 characters without control characters (for instance <workflow>/<step>/<task>)",
      { field: "holder" },
    );
  }
}

function ttl(ms: number, field: string): number {
  if (ms !== 0 && (ms < 1000 || ms > dayMs)) {
    throw new InvalidArgumentError(`${field} must be between 1 s and 24 h (or unset)`, { field });
  }
  return ms;
}

/** The lease RPCs, shared by their unary handlers and the LeaseAgents stream. */
function createLeaseCalls(deps: PoolServiceDeps): LeaseCalls {
  const { pools } = deps;
  return {
    async acquire(req, signal) {
      checkHolder(req.holder);
      const waitMs =
        req.waitTimeout === undefined
          ? deps.defaultWaitMs
          : durationToMs(req.waitTimeout, "wait_timeout");
      if (waitMs > hourMs) {
        throw new InvalidArgumentError("wait_timeout must be at most 1 h", {
          field: "wait_timeout",
        });
      }
      const leaseTtl = ttl(durationToMs(req.leaseTtl, "lease_ttl"), "lease_ttl");
      const r = await pools.acquire(req.poolId, req.holder, waitMs, leaseTtl, signal);
      return { lease: leaseToProto(r.lease), hit: r.hit, wait: msToDuration(r.waitedMs) };
    },

    async renewLease(req) {
      const lease = await pools.renew(
        req.leaseId,
        ttl(durationToMs(req.ttl, "ttl"), "ttl"),
        req.holder,
      );
      return { lease: leaseToProto(lease) };
    },

    async release(req) {
      const r = await pools.release(
        req.leaseId,
        outcomeFromProto(req.outcome),
        req.holder,
        req.reason,
      );
      return { disposition: dispositionToProto[r.disposition], agentUses: BigInt(r.uses) };
    },
  };
}

/** PoolService handlers: request → validation → PoolManager → response. */
export function createPoolService(deps: PoolServiceDeps): ServiceImpl<typeof PoolService> {
  const { pools } = deps;
  const toProto = (p: Parameters<typeof poolToProto>[0]) => poolToProto(p, deps.now());
  const leases = createLeaseCalls(deps);
  return {
    async createPool(req) {
      const template = templateFromProto(req.template);
      const policy = policyFromProto(req.policy, template.mode, deps.maxSizeLimit);
      const poolId = req.poolId === "" ? poolIdFor(template) : req.poolId;
      checkPoolId(poolId);
      await deps.checkImage(template.image);
      const { pool, created } = await pools.create(poolId, template, templateKey(template), policy);
      return { pool: toProto(pool), created };
    },

    async updatePool(req) {
      const pool = pools.get(req.poolId);
      if (req.template !== undefined) {
        const wanted = templateFromProto(req.template);
        if (templateKey(wanted) !== pool.templateKey) {
          throw new FailedPreconditionError(
            `the template of pool "${req.poolId}" is immutable and differs from the one given; create a new pool for it`,
            { field: "template" },
          );
        }
      }
      const policy = mergePolicy(
        pool.policy,
        req.policy,
        req.updateMask?.paths ?? [],
        pool.template.mode,
        deps.maxSizeLimit,
      );
      return { pool: toProto(await pools.updatePolicy(req.poolId, policy)) };
    },

    async deletePool(req) {
      return { existed: await pools.delete(req.poolId, req.force) };
    },

    getPool(req) {
      return Promise.resolve({ pool: toProto(pools.get(req.poolId)) });
    },

    listPools(req) {
      const size = req.pageSize === 0 ? 100 : req.pageSize;
      if (!Number.isInteger(size) || size < 1 || size > 1000) {
        throw new InvalidArgumentError(`page_size must be 0 to 1000; got ${req.pageSize}`, {
          field: "page_size",
        });
      }
      const statuses = new Set(req.statuses.map((s, i) => statusFromProto(s, `statuses[${i}]`)));
      const filterKey = JSON.stringify([...statuses].sort());
      let after = "";
      if (req.pageToken !== "") {
        try {
          const [key, last] = JSON.parse(Buffer.from(req.pageToken, "base64url").toString()) as [
            string,
            string,
          ];
          if (key !== filterKey || typeof last !== "string") throw new Error("mismatch");
          after = last;
        } catch {
          throw new InvalidArgumentError(
            "page_token is not one this server issued for these filters: start again with an empty token",
            { field: "page_token" },
          );
        }
      }
      const all = pools
        .list()
        .filter((p) => (statuses.size === 0 || statuses.has(p.status)) && p.poolId > after);
      const page = all.slice(0, size);
      const last = page[page.length - 1];
      return Promise.resolve({
        pools: page.map(toProto),
        nextPageToken:
          all.length > size && last
            ? Buffer.from(JSON.stringify([filterKey, last.poolId])).toString("base64url")
            : "",
      });
    },

    acquire: (req, context: HandlerContext) => leases.acquire(req, context.signal),
    renewLease: (req) => leases.renewLease(req),
    release: (req) => leases.release(req),
    ...createLeaseStreamHandler(leases, deps.logger, deps.shutdownSignal),

    async drainPool(req, context: HandlerContext) {
      const pool = pools.drain(req.poolId);
      if (req.wait) {
        while (pool.status !== "drained") {
          if (context.signal.aborted) {
            throw new DeadlineExceededError(
              `pool "${req.poolId}" was not drained when the call's deadline passed; the drain goes on`,
            );
          }
          await new Promise((r) => setTimeout(r, 50));
          pools.reconcile(pool);
        }
      }
      return { pool: toProto(pool) };
    },

    async warmPool(req, context: HandlerContext) {
      if (req.count < 1) {
        throw new InvalidArgumentError(`count must be at least 1; got ${req.count}`, {
          field: "count",
        });
      }
      const pool = pools.get(req.poolId);
      const holdMs = durationToMs(req.hold, "hold") || pool.policy.idleTimeoutMs;
      if (holdMs > dayMs)
        throw new InvalidArgumentError("hold must be at most 24 h", { field: "hold" });
      const since = deps.now();
      const r = pools.warm(req.poolId, req.count, holdMs, req.reason);
      if (req.wait) await pools.whenWarm(r.pool, since, context.signal);
      return { pool: toProto(r.pool), target: r.target, started: r.started };
    },
  };
}

/** Registers the PoolService on a router. */
export function poolRoutes(deps: PoolServiceDeps) {
  return (router: ConnectRouter) => router.service(PoolService, createPoolService(deps));
}
