import { Command } from "commander";
import { AgentMode } from "../gen/agentainer/executor/v1/executor_pb.js";
import {
  DeletePoolResponseSchema,
  ListPoolsResponseSchema,
  PoolSchema,
  PoolStatus,
  type Pool,
} from "../gen/agentainer/pool/v1/pool_pb.js";
import { action, out } from "./action.js";
import { parseCount } from "./args.js";
import { json, table } from "./output.js";

function row(p: Pool): string[] {
  const m = p.metrics;
  return [
    p.poolId,
    (PoolStatus[p.status] ?? "?").toLowerCase(),
    p.template?.image ?? "",
    (AgentMode[p.template?.mode ?? 0] ?? "?").toLowerCase(),
    `${p.policy?.minSize ?? 0}..${p.policy?.maxSize ?? 0}`,
    `${m?.idle ?? 0}/${m?.leased ?? 0}/${m?.starting ?? 0}`,
    `${m?.hits ?? 0n}/${m?.misses ?? 0n}`,
  ];
}

const headers = ["POOL", "STATUS", "IMAGE", "MODE", "SIZE", "IDLE/LEASED/STARTING", "HITS/MISSES"];

/**
 * `agentainer pool ...`: the Pool service's pools, at --pool-server (by default --server: the
 * mesh's Workflow service does not serve them, so set --pool-server to the Pool service there).
 */
export function poolCommand(): Command {
  const pool = new Command("pool").description("list, create, drain and delete warm-agent pools");
  const list = pool.command("list").description("every pool with its live metrics");
  list.action(
    action(
      () => list,
      async (c, g) => {
        const r = await c.pool.listPools({});
        out(g.json ? json(ListPoolsResponseSchema, r) : table(headers, r.pools.map(row)));
      },
    ),
  );
  const get = pool.command("get").description("one pool").argument("<pool_id>");
  get.action(
    action(
      () => get,
      async (c, g, poolId: string) => {
        const p = (await c.pool.getPool({ poolId })).pool!;
        out(g.json ? json(PoolSchema, p) : table(headers, [row(p)]));
      },
    ),
  );
  const createCmd = pool
    .command("create")
    .description("create a pool of warm agents")
    .argument("<pool_id>")
    .requiredOption("--image <image>", "the agents' image")
    .option("--command <argv...>", "the agents' main process (must stay up)")
    .option("--stream", "STREAM agents (line-delimited JSON) instead of EXEC")
    .option("--min <n>", "agents kept warm", "0")
    .option("--max <n>", "most agents", "4")
    .option("--warm-up", "start min agents now");
  createCmd.action(
    action(
      () => createCmd,
      async (
        c,
        g,
        poolId: string,
        o: {
          image: string;
          command?: string[];
          stream?: boolean;
          min: string;
          max: string;
          warmUp?: boolean;
        },
      ) => {
        const r = await c.pool.createPool({
          poolId,
          template: {
            image: o.image,
            command: o.command ?? [],
            mode: o.stream ? AgentMode.STREAM : AgentMode.EXEC,
          },
          policy: {
            minSize: parseCount(o.min, "--min"),
            maxSize: parseCount(o.max, "--max", 1),
            warmUp: Boolean(o.warmUp),
          },
        });
        out(
          g.json ? json(PoolSchema, r.pool!) : `${r.pool!.poolId}${r.created ? "" : " (exists)"}\n`,
        );
      },
    ),
  );
  const drain = pool
    .command("drain")
    .description("stop handing out agents and remove them")
    .argument("<pool_id>");
  drain.action(
    action(
      () => drain,
      async (c, g, poolId: string) => {
        const p = (await c.pool.drainPool({ poolId })).pool!;
        out(g.json ? json(PoolSchema, p) : table(headers, [row(p)]));
      },
    ),
  );
  const del = pool
    .command("delete")
    .description("delete a pool and its agents (prints nothing; a missing pool is a note)")
    .argument("<pool_id>")
    .option("--force", "even with leases held");
  del.action(
    action(
      () => del,
      async (c, g, poolId: string, o: { force?: boolean }) => {
        const r = await c.pool.deletePool({ poolId, force: Boolean(o.force) });
        if (g.json) out(json(DeletePoolResponseSchema, r));
        else if (!r.existed)
          process.stderr.write(`agentainer: no pool "${poolId}" (nothing to delete)\n`);
      },
    ),
  );
  return pool;
}
