// The `agentainer` CLI as a user runs it: spawned processes against a spawned `agentainer up`.
import { spawnSync } from "node:child_process";
import { writeFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../support/servers.js";
import { bin, cli, root, start, type Running } from "./spawn.js";

describe("the agentainer CLI against agentainer up", { timeout: 120_000 }, () => {
  let up: Running;
  let server: string;
  const dir = mkdtempSync(join(tmpdir(), "agentainer-cli-"));
  const file = (name: string, lines: string[]) => {
    const path = join(dir, name);
    writeFileSync(path, lines.join("\n") + "\n");
    return path;
  };
  const mapReduceAgents = [
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
  ];
  const agent = [
    "    image: agentainer/node-agent:local",
    "    command: [node, /agents/flow-agent.mjs]",
  ];

  beforeAll(async () => {
    const port = await freePort();
    server = `http://127.0.0.1:${port}`;
    up = await start(["up", "--port", String(port)], /listening on/);
  });

  afterAll(async () => {
    await up?.stop();
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
    expect(unknownKey.stderr).toBe(
      `agentainer: ${bad}:4: steps[0].imag: unknown field (did you mean "image"?)\n`,
    );
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

  describe("exit codes (docs/cli.md)", () => {
    it("ends a failed workflow's watch and create --watch with 5", () => {
      const failing = file("fail.yaml", [
        "name: failing",
        "steps:",
        "  - id: boom",
        ...agent,
        "    input: { fail: true }",
      ]);
      const watched = cli(server, "workflow", "create", failing, "--watch");
      expect(watched.code).toBe(5);
      expect(watched.stdout).toMatch(/^step boom: failed, 0\/1 done, 1 failed$/m);
      expect(watched.stdout).toMatch(/^workflow wf_\w+: failed/m);
      const id = /workflow (wf_\w+): failed/.exec(watched.stdout)![1]!;
      const again = cli(server, "workflow", "watch", id);
      expect(again.code).toBe(5);
      expect(again.stdout).toMatch(new RegExp(`^workflow ${id}: failed`, "m"));
    });

    it("ends a failed MapReduce with 5", () => {
      const items = join(dir, "fail-items.json");
      writeFileSync(items, JSON.stringify([{ double: 1 }, { fail: true }]));
      const r = cli(
        server,
        "workflow",
        "mapreduce",
        "--name",
        "mr-fails",
        "--mapper",
        "agentainer/node-agent:local",
        "--mapper-command",
        "node",
        "/agents/flow-agent.mjs",
        "--reducer",
        "agentainer/node-agent:local",
        "--reducer-command",
        "node",
        "/agents/flow-agent.mjs",
        "--items",
        items,
        // One at a time, so item 0 ends before item 1 fails: with two at once the failure
        // may cancel item 0 first, and the count below would be 0/2 done.
        "--parallel",
        "1",
      );
      expect(r.code).toBe(5);
      expect(r.stdout).toMatch(/^step map: failed, 1\/2 done, 1 failed$/m);
    });

    it("gives 3 when the server cannot be reached, for create as for every command", () => {
      const r = cli("http://127.0.0.1:1", "workflow", "create", "examples/pipeline.yaml");
      expect(r.code).toBe(3);
      expect(r.stderr).toMatch(
        /^agentainer: cannot reach the Agentainer server at http:\/\/127\.0\.0\.1:1: /,
      );
      const watched = cli("http://127.0.0.1:1", "workflow", "watch", "wf_x");
      expect(watched.code).toBe(3);
      expect(watched.stderr.split("\n")).toHaveLength(2);
    });

    it("gives 1 when the server refuses (already exists, not found) and 2 for bad input", () => {
      const id = `wf_cli${process.pid}`;
      expect(cli(server, "workflow", "create", "examples/pipeline.yaml", "--id", id).code).toBe(0);
      const dup = cli(server, "workflow", "create", "examples/pipeline.yaml", "--id", id);
      expect(dup.code).toBe(1);
      expect(dup.stderr).toMatch(/^agentainer: already exists: /);
      const unknown = cli(server, "workflow", "watch", "wf_unknown");
      expect(unknown.code).toBe(1);
      expect(unknown.stderr).toBe('agentainer: not found: no workflow "wf_unknown"\n');
      const absent = cli(server, "workflow", "create", join(dir, "absent.yaml"));
      expect(absent.code).toBe(2);
      expect(absent.stderr).toMatch(/^agentainer: cannot read .*absent\.yaml: ENOENT/);
      expect(cli(server, "workflow", "get").code).toBe(2); // missing argument
      expect(cli(server, "workflow", "list", "--status", "nope").code).toBe(2);
      expect(cli(server, "workflow", "state", "incr", id, "n", "x").code).toBe(2);
    });
  });

  it("shows a stack trace only with --debug", () => {
    const plain = cli(server, "workflow", "get", "wf_nope");
    expect(plain.stderr).toBe('agentainer: not found: no workflow "wf_nope"\n');
    const debug = cli(server, "--debug", "workflow", "get", "wf_nope");
    expect(debug.code).toBe(1);
    expect(debug.stderr).toMatch(/^ConnectError: \[not_found\]/);
    expect(debug.stderr).toMatch(/^\s+at /m);
    expect(debug.stderr.trimEnd().split("\n").at(-1)).toBe(
      'agentainer: not found: no workflow "wf_nope"',
    );
  });

  describe("workflow create from flags", () => {
    it("creates the seed's workflow without a file, saying it has no steps", () => {
      const r = cli(
        server,
        "workflow",
        "create",
        "--name",
        "data-pipeline",
        "--max-parallel",
        "10",
      );
      expect(r.code).toBe(0);
      const id = r.stdout.trim();
      expect(id).toMatch(/^wf_\w+$/);
      expect(r.stderr).toMatch(/has no steps, so a run of it succeeds at once; give --step/);
      const got = JSON.parse(cli(server, "--json", "workflow", "get", id).stdout);
      expect(got).toMatchObject({
        name: "data-pipeline",
        status: "WORKFLOW_STATUS_PENDING",
        config: { maxParallel: 10 },
      });
    });

    it("runs --step steps one after another with a --timeout duration", () => {
      const step = (id: string) => `${id}=agentainer/node-agent:local node /agents/flow-agent.mjs`;
      const r = cli(
        server,
        "--json",
        "workflow",
        "create",
        "--name",
        "flags",
        "--step",
        step("one"),
        "--step",
        step("two"),
        "--timeout",
        "1h30m",
        "--start",
      );
      expect(r.code).toBe(0);
      const w = JSON.parse(r.stdout);
      expect(w.config.timeout).toBe("5400s");
      expect(w.steps).toMatchObject([
        {
          id: "one",
          image: "agentainer/node-agent:local",
          command: ["node", "/agents/flow-agent.mjs"],
        },
        { id: "two", dependsOn: ["one"] },
      ]);
      expect(cli(server, "workflow", "watch", w.id).code).toBe(0);
      const got = JSON.parse(cli(server, "--json", "workflow", "get", w.id).stdout);
      expect(got.result.parents.one.index).toBe(0);
    });

    it("takes 2h, 30m, 90s and seconds for --timeout, and refuses the rest in one line", () => {
      for (const [text, seconds] of [
        ["2h", "7200s"],
        ["30m", "1800s"],
        ["90s", "90s"],
        ["45", "45s"],
      ]) {
        const r = cli(server, "--json", "workflow", "create", "--name", "t", "--timeout", text!);
        expect(JSON.parse(r.stdout).config.timeout).toBe(seconds);
      }
      const bad = cli(server, "workflow", "create", "--name", "t", "--timeout", "2 hours");
      expect(bad.code).toBe(2);
      expect(bad.stderr).toBe(
        'agentainer: --timeout: "2 hours" is not a duration (use e.g. 90s, 30m, 2h, 1h30m, 500ms, or seconds)\n',
      );
      const noName = cli(server, "workflow", "create");
      expect(noName.code).toBe(2);
      expect(noName.stderr).toMatch(
        /^agentainer: give a workflow file .*, or --name with a --step ID=IMAGE/,
      );
      const badStep = cli(server, "workflow", "create", "--name", "t", "--step", "noimage");
      expect(badStep.code).toBe(2);
      expect(badStep.stderr).toBe(
        'agentainer: --step: "noimage" is not ID=IMAGE [COMMAND ARGS...]\n',
      );
    });
  });

  it("lists by --status and deletes", () => {
    const pending = cli(server, "workflow", "create", "--name", "to-delete").stdout.trim();
    const done = cli(server, "workflow", "create", "--name", "done", "--watch");
    expect(done.code).toBe(0);
    const doneId = /workflow (wf_\w+): succeeded/.exec(done.stdout)![1]!;
    const listed = (...statuses: string[]) =>
      JSON.parse(cli(server, "--json", "workflow", "list", "--status", ...statuses).stdout)
        .workflows as { id: string; status: string }[];
    const pendings = listed("pending");
    expect(pendings.map((w) => w.id)).toContain(pending);
    expect(pendings.map((w) => w.id)).not.toContain(doneId);
    expect(new Set(pendings.map((w) => w.status))).toEqual(new Set(["WORKFLOW_STATUS_PENDING"]));
    expect(listed("succeeded", "failed").map((w) => w.id)).toContain(doneId);
    const table = cli(server, "workflow", "list", "--status", "pending");
    expect(table.stdout).toMatch(new RegExp(`^${pending}\\s+to-delete\\s+pending`, "m"));

    const deleted = cli(server, "workflow", "delete", pending);
    expect(deleted).toMatchObject({ code: 0, stdout: "", stderr: "" });
    expect(cli(server, "workflow", "get", pending).code).toBe(1);
    expect(listed("pending").map((w) => w.id)).not.toContain(pending);
    const json = cli(server, "--json", "workflow", "delete", doneId);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual({});
    expect(cli(server, "workflow", "delete", doneId).code).toBe(1);
  });

  it("runs a MapReduce over --input at --items-path on --pool-size agents, with --no-wait", () => {
    const input = join(dir, "input.json");
    writeFileSync(input, JSON.stringify({ docs: ["a b", "b c c"], other: 1 }));
    const r = cli(
      server,
      "workflow",
      "mapreduce",
      "--name",
      "mr-input",
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
      "--input",
      input,
      "--items-path",
      "/docs",
      "--parallel",
      "2",
      "--pool-size",
      "1",
      "--no-wait",
    );
    expect(r.code).toBe(0);
    expect(r.stderr).toBe("");
    const id = r.stdout.trim();
    expect(id).toMatch(/^wf_\w+$/);
    const w = JSON.parse(cli(server, "--json", "workflow", "get", id).stdout);
    expect(w.steps[0]).toMatchObject({
      mapItems: { fromInput: "/docs" },
      poolPolicy: { minSize: 1, maxSize: 1 },
    });
    expect(cli(server, "workflow", "watch", id).code).toBe(0);
    const done = JSON.parse(cli(server, "--json", "workflow", "get", id).stdout);
    expect(done.result).toMatchObject({ total: 5, documents: 2, words: { a: 1, b: 2, c: 2 } });
    const json = cli(
      server,
      "--json",
      "workflow",
      "mapreduce",
      "--name",
      "mr-json",
      ...mapReduceAgents,
      "--items",
      "examples/word-count.items.json",
      "--no-wait",
    );
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({
      id: expect.stringMatching(/^wf_/),
      name: "mr-json",
    });
  });

  it("runs a MapReduce whose items come from a --splitter, with --env for every task", () => {
    const r = cli(
      server,
      "workflow",
      "mapreduce",
      "--name",
      "mr-split",
      ...mapReduceAgents,
      "--splitter",
      "agentainer/busybox:local",
      "--splitter-command",
      JSON.stringify([
        "sh",
        "-c",
        `echo '{"docs":["x y","y '"$SPLIT_WORD"'"]}' > "$AGENTAINER_RESULT_FILE"`,
      ]),
      "--splitter-items-path",
      "/docs",
      "--env",
      "SPLIT_WORD=z",
      "--env",
      "WORD_MAPPER_DELAY_MS=1",
    );
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(/result: (.*)/.exec(r.stdout)![1]!);
    expect(result).toMatchObject({ total: 4, documents: 2, words: { x: 1, y: 2, z: 1 } });

    const bad = cli(
      server,
      "workflow",
      "mapreduce",
      "--name",
      "m",
      ...mapReduceAgents,
      "--splitter",
      "agentainer/busybox:local",
      "--items",
      "examples/word-count.items.json",
    );
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("--splitter makes the items");
    const env = cli(
      server,
      "workflow",
      "mapreduce",
      "--name",
      "m",
      ...mapReduceAgents,
      "--items",
      "examples/word-count.items.json",
      "--env",
      "NOEQUALS",
    );
    expect(env.code).toBe(2);
    expect(env.stderr).toContain("--env NOEQUALS: expected KEY=VALUE");
  });

  it("prints exactly one JSON document with --json", () => {
    const created = cli(server, "workflow", "create", "examples/pipeline.yaml", "--watch");
    const id = /workflow (wf_\w+): succeeded/.exec(created.stdout)![1]!;
    const jobs = cli(server, "--json", "workflow", "jobs", id, "--page-size", "1");
    expect(jobs.code).toBe(0);
    expect((JSON.parse(jobs.stdout).jobs as { stepId: string }[]).map((j) => j.stepId)).toEqual([
      "extract",
      "transform",
      "load",
    ]);
    expect(
      JSON.parse(cli(server, "--json", "workflow", "state", "set", id, "k", "1").stdout),
    ).toMatchObject({ version: expect.stringMatching(/^\d+$/) });
    expect(
      JSON.parse(cli(server, "--json", "workflow", "state", "incr", id, "k", "2.5").stdout),
    ).toMatchObject({ value: 3.5 });
    expect(JSON.parse(cli(server, "--json", "workflow", "state", "get", id, "k").stdout)).toBe(3.5);
    const watched = cli(server, "--json", "workflow", "watch", id);
    const lines = watched.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { workflowId: string });
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.every((e) => e.workflowId === id)).toBe(true);
  });
});
