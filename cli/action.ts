import type { Command } from "commander";
import { connect, explain, type Clients } from "./client.js";

/** The global options (cli/main.ts), as every command body sees them. */
export interface Global {
  server: string;
  poolServer?: string;
  stateServer?: string;
  json: boolean;
  debug?: boolean;
}

/** The API token of a server started with AGENTAINER_API_TOKEN: read from the environment only. */
export const apiToken = (): string | undefined => process.env.AGENTAINER_API_TOKEN || undefined;

/** Prints a failure in one line (a stack trace first with --debug) and returns its exit code. */
export function report(err: unknown, server: string, debug: boolean | undefined): number {
  if (debug) process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  const e = explain(err, server);
  process.stderr.write(`agentainer: ${e.message}\n`);
  return e.exitCode;
}

/**
 * Runs one command body with the clients and global options; a returned number is the exit
 * code, a thrown error becomes one line on stderr and its exit code (docs/cli.md).
 */
export function action<A extends unknown[]>(
  cmd: () => Command,
  body: (clients: Clients, g: Global, ...args: A) => Promise<number | void>,
) {
  return async (...args: A) => {
    const g = cmd().optsWithGlobals<Global>();
    const clients = connect({ ...g, apiToken: apiToken() });
    try {
      const code = await body(clients, g, ...args);
      if (typeof code === "number") process.exitCode = code;
    } catch (err) {
      process.exitCode = report(err, clients.server, g.debug);
    }
  };
}

/** Writes to stdout. */
export const out = (s: string): void => void process.stdout.write(s);
