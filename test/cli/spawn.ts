// Spawning the `agentainer` command as a user runs it: one-shot CLI calls, and long-running
// servers (`agentainer up`, `agentainer serve <service>`) that announce when they listen.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const root = fileURLToPath(new URL("../../", import.meta.url));
export const bin = join(root, "bin/agentainer.js");

export interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `agentainer <args>` to its end. */
export function run(args: string[], env: Record<string, string> = {}): Ran {
  const r = spawnSync(process.execPath, [bin, ...args], {
    cwd: root,
    env: { ...process.env, ...env },
    encoding: "utf8",
    timeout: 120_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Runs `agentainer --server <server> <args>` to its end. */
export const cli = (server: string, ...args: string[]): Ran => run(["--server", server, ...args]);

export interface Running {
  child: ChildProcess;
  /** Everything it wrote to stderr and stdout so far. */
  output(): string;
  stop(): Promise<void>;
}

/** Starts `agentainer <args>` and resolves once its output matches `ready`. */
export async function start(
  args: string[],
  ready: RegExp,
  env: Record<string, string> = {},
): Promise<Running> {
  const child = spawn(process.execPath, [bin, ...args], {
    cwd: root,
    env: { ...process.env, LOG_LEVEL: "warn", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let text = "";
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      text += chunk.toString();
      if (ready.test(text)) resolve();
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    child.once("exit", (code) =>
      reject(new Error(`agentainer ${args[0]} exited (${code}): ${text}`)),
    );
  });
  return {
    child,
    output: () => text,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await exited;
    },
  };
}
