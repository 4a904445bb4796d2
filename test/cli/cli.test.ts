// The `agentainer` CLI as a user runs it: spawned processes against a spawned `agentainer up`.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { writeFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../support/servers.js";

const root = fileURLToPath(new URL("../../", import.meta.url));
const bin = join(root, "bin/agentainer.js");

function cli(server: string, ...args: string[]) {
  const r = spawnSync(process.execPath, [bin, "--server", server, ...args], {
    cwd: root,
    encoding: "utf8",
    timeout: 120_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("the agentainer CLI against agentainer up", () => {
  let up: ChildProcess;
  let server: string;
  const dir = mkdtempSync(join(tmpdir(), "agentainer-cli-"));

  beforeAll(async () => {
    const port = await freePort();
    server = `http://127.0.0.1:${port}`;
    up = spawn(process.execPath, [bin, "up", "--port", String(port)], {
      cwd: root,
      env: { ...process.env, LOG_LEVEL: "warn" },
      stdio: ["ignore", "ignore", "pipe"],
    });
    await new Promise<void>((resolve, reject) => {
      let err = "";
      up.stderr!.on("data", (chunk: Buffer) => {
        err += chunk.toString();
        if (err.includes("listening on")) resolve();
      });
      up.once("exit", (code) => reject(new Error(`agentainer up exited (${code}): ${err}`)));
    });
  });

  afterAll(async () => {
    up?.kill("SIGTERM");
    await new Promise((r) => up?.once("exit", r));
  });

  it("creates from a YAML file, watches to the end, lists jobs and reads the result", () => {
    const created = cli(server, "workflow", "create", "examples/pipeline.yaml", "--watch");
    expect(created.stderr).toBe("");
    expect(created.code).toBe(0);
    expect(created.stdout).toMatch(/step load: succeeded, 1\/1 done/);
    expect(created.stdout).toMatch(/workflow (wf_\w+): succeeded/);
    const id = /workflow (wf_\w+): succeeded/.exec(created.stdout)![1]!;
    const jobs = cli(server, "workflow", "jobs", id);
    expect(jobs.code).toBe(0);
    expect(jobs.stdout.split("\n").filter((l) => l.includes("succeeded"))).toHaveLength(3);
    const got = cli(server, "--json", "workflow", "get", id);
    expect(JSON.parse(got.stdout)).toMatchObject({ id, status: "WORKFLOW_STATUS_SUCCEEDED" });
    expect(JSON.parse(got.stdout).result.parents.transform.parents.extract.value).toBe(42);
  });

  it("runs the MapReduce pattern from a file", () => {
    const r = cli(server, "--json", "workflow", "create", "examples/word-count.yaml", "--watch");
    expect(r.code).toBe(0);
    const id = (JSON.parse(r.stdout.trim().split("\n")[0]!) as { workflowId: string }).workflowId;
    const got = JSON.parse(cli(server, "--json", "workflow", "get", id).stdout);
    expect(got.result).toMatchObject({ total: 17, documents: 3, words: { the: 4, cat: 2 } });
  });

  it("runs the word-count MapReduce and waits for it", () => {
    const r = cli(
      server,
      "workflow",
      "mapreduce",
      "--name",
      "wc",
      "--mapper",
      "agentainer/node-agent:local",
      "--mapper-command",
      "node",
      "/agents/word-mapper.mjs",
      "--reducer",
      "agentainer/node-agent:local",
      "--reducer-command",
      "node",
      "/agents/word-reducer.mjs",
      "--items",
      "examples/word-count.items.json",
      "--parallel",
      "2",
    );
    expect(r.code).toBe(0);
    const result = JSON.parse(/result: (.*)/.exec(r.stdout)![1]!) as { total: number };
    expect(result.total).toBe(70);
  });

  it("sets, increments and reads state; cancels a running workflow with a non-zero watch", () => {
    const file = join(dir, "slow.yaml");
    writeFileSync(
      file,
      [
        "name: slow",
        "steps:",
        "  - id: wait",
        "    image: agentainer/node-agent:local",
        "    command: [node, /agents/flow-agent.mjs]",
        "    input: { sleepMs: 60000 }",
      ].join("\n"),
    );
    const id = cli(server, "workflow", "create", file, "--start").stdout.trim();
    expect(id).toMatch(/^wf_/);
    expect(cli(server, "workflow", "state", "set", id, "mode", '"full"').code).toBe(0);
    expect(cli(server, "workflow", "state", "incr", id, "n", "3").stdout.trim()).toBe("3");
    expect(JSON.parse(cli(server, "workflow", "state", "get", id).stdout)).toEqual({
      mode: "full",
      n: 3,
    });
    expect(cli(server, "workflow", "cancel", id, "--reason", "test").code).toBe(0);
    const watched = cli(server, "workflow", "watch", id);
    expect(watched.code).toBe(6);
    expect(watched.stdout).toMatch(/cancelled/);
  });

  it("creates, lists, drains and deletes a pool", () => {
    const made = cli(
      server,
      "pool",
      "create",
      "cli-pool",
      "--image",
      "agentainer/busybox:local",
      "--command",
      "sleep",
      "infinity",
      "--max",
      "2",
    );
    expect(made.code).toBe(0);
    expect(made.stdout.trim()).toBe("cli-pool");
    const listed = cli(server, "pool", "list");
    expect(listed.stdout).toMatch(
      /^cli-pool\s+active\s+agentainer\/busybox:local\s+exec\s+0\.\.2/m,
    );
    expect(JSON.parse(cli(server, "--json", "pool", "get", "cli-pool").stdout)).toMatchObject({
      poolId: "cli-pool",
      status: "POOL_STATUS_ACTIVE",
    });
    expect(cli(server, "pool", "drain", "cli-pool").code).toBe(0);
    expect(cli(server, "pool", "delete", "cli-pool").code).toBe(0);
    expect(cli(server, "pool", "get", "cli-pool").code).toBe(1);
  });

  it("draws a progress bar per step in a real terminal (tmux)", async () => {
    const file = join(dir, "bars.yaml");
    writeFileSync(
      file,
      [
        "name: bars",
        "steps:",
        "  - id: work",
        "    kind: map",
        "    image: agentainer/node-agent:local",
        "    command: [node, /agents/flow-agent.mjs]",
        "    map_items: { inline: [{ sleepMs: 800 }, { sleepMs: 800 }, { sleepMs: 800 }] }",
      ].join("\n"),
    );
    const id = cli(server, "workflow", "create", file).stdout.trim();
    const session = `agentainer-${process.pid}`;
    const command = `${process.execPath} ${bin} --server ${server} workflow watch ${id}; echo "exit=$?"; sleep 30`;
    spawnSync("tmux", [
      "new-session",
      "-d",
      "-s",
      session,
      "-x",
      "150",
      "-y",
      "20",
      "-c",
      root,
      command,
    ]);
    try {
      cli(server, "workflow", "start", id);
      let screen = "";
      for (let i = 0; i < 200 && !screen.includes("exit="); i++) {
        await new Promise((r) => setTimeout(r, 100));
        screen = spawnSync("tmux", ["capture-pane", "-p", "-t", session], {
          encoding: "utf8",
        }).stdout;
      }
      expect(screen).toMatch(/^work\s+\[#{30}\] succeeded\s+3\/3 done$/m);
      expect(screen).toMatch(new RegExp(`^workflow ${id}: succeeded$`, "m"));
      expect(screen).toContain("exit=0");
      // Redrawn in place: the step's line appears once, not once per update.
      expect(screen.split("\n").filter((l) => l.startsWith("work "))).toHaveLength(1);
    } finally {
      spawnSync("tmux", ["kill-session", "-t", session]);
    }
  });

  it("says what is wrong in one line with a non-zero exit", () => {
    const bad = join(dir, "bad.yaml");
    writeFileSync(bad, "name: bad\nsteps:\n  - id: a\n    imag: x\n");
    const unknownKey = cli(server, "workflow", "create", bad);
    expect(unknownKey.code).toBe(2);
    expect(unknownKey.stderr).toBe(`agentainer: ${bad}:4: key "imag" is unknown\n`);
    const cycle = join(dir, "cycle.yaml");
    writeFileSync(
      cycle,
      "name: c\nsteps:\n  - id: a\n    image: agentainer/busybox:local\n    depends_on: [b]\n  - id: b\n    image: agentainer/busybox:local\n    depends_on: [a]\n",
    );
    const cyc = cli(server, "workflow", "create", cycle);
    expect(cyc.code).toBe(2);
    expect(cyc.stderr).toBe(
      `agentainer: ${cycle}:8: invalid: steps[1].depends_on[0]: cycle a -> b -> a\n`,
    );
    expect(cli(server, "workflow", "create", join(dir, "absent.yaml")).stderr).toMatch(
      /cannot read/,
    );
    const missing = cli(server, "workflow", "get", "wf_nope");
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe('agentainer: not found: no workflow "wf_nope"\n');
    const down = cli("http://127.0.0.1:1", "workflow", "list");
    expect(down.code).toBe(3);
    expect(down.stderr).toMatch(
      /cannot reach the Agentainer server at http:\/\/127\.0\.0\.1:1: start one with `agentainer up`/,
    );
    expect(down.stderr.split("\n")).toHaveLength(2); // one line, no stack trace
  });
});
