import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Redis } from "ioredis";

/**
 * Loads the Lua scripts of a folder (BullMQ's convention): `<name>-<numberOfKeys>.lua`, each
 * prefixed with the folder's `_lib.lua` of shared helpers, registered with ioredis
 * `defineCommand` (EVALSHA, falling back to EVAL after a Redis restart). Fails at start when an
 * expected script is missing or misnamed.
 */
export interface ScriptRunner<Name extends string> {
  run(name: Name, keys: readonly string[], args: ReadonlyArray<string | number>): Promise<unknown>;
}

export function loadScripts<Name extends string>(
  redis: Redis,
  folder: string,
  expected: readonly Name[],
): ScriptRunner<Name> {
  const libPath = join(folder, "_lib.lua");
  const lib = readdirSync(folder).includes("_lib.lua") ? readFileSync(libPath, "utf8") + "\n" : "";
  const keyCounts = new Map<string, number>();
  for (const file of readdirSync(folder)) {
    const match = /^([a-z][a-z-]*)-(\d+)\.lua$/.exec(file);
    if (!match) continue;
    const [, name, count] = match as unknown as [string, string, string];
    const numberOfKeys = Number(count);
    redis.defineCommand(commandName(name), {
      numberOfKeys,
      lua: lib + readFileSync(join(folder, file), "utf8"),
    });
    keyCounts.set(name, numberOfKeys);
  }
  const missing = expected.filter((name) => !keyCounts.has(name));
  if (missing.length > 0) {
    throw new Error(`Lua scripts missing from ${folder}: ${missing.join(", ")}`);
  }
  const commands = redis as unknown as Record<
    string,
    (...args: Array<string | number>) => Promise<unknown>
  >;
  return {
    run(name, keys, args) {
      if (keys.length !== keyCounts.get(name)) {
        throw new Error(`script ${name} takes ${keyCounts.get(name)} keys, got ${keys.length}`);
      }
      const command = commands[commandName(name)];
      if (command === undefined) throw new Error(`script ${name} is not loaded`);
      return command.call(redis, ...keys, ...args);
    },
  };
}

function commandName(name: string): string {
  return "agentainer_" + name.replace(/-/g, "_");
}
