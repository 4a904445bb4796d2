// The CLI against separate services (the mesh's shape): `agentainer serve state` as a spawned
// process, --server / --pool-server / --state-server and what the CLI says when an address does
// not serve the service a command needs; and `agentainer up` configured by PORT and HOST.
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StateService } from "../../gen/agentainer/state/v1/state_pb.js";
import { freePort } from "../support/servers.js";
import { cli, run, start, type Running } from "./spawn.js";

describe("agentainer serve state, and the CLI pointed at one service", { timeout: 120_000 }, () => {
  let state: Running;
  let stateUrl: string;

  beforeAll(async () => {
    const port = await freePort();
    stateUrl = `http://127.0.0.1:${port}`;
    state = await start(["serve", "state"], /server listening/, {
      PORT: String(port),
      HOST: "127.0.0.1",
      LOG_LEVEL: "info",
    });
  });

  afterAll(async () => {
    await state?.stop();
  });

  it("answers the CLI's workflow state incr at --state-server (or AGENTAINER_STATE_SERVER)", async () => {
    const client = createClient(StateService, createGrpcTransport({ baseUrl: stateUrl }));
    await client.createWorkflowState({ workflowId: "wf_mesh" });
    const down = "http://127.0.0.1:1"; // --server is not needed by incr
    const first = cli(
      down,
      "--state-server",
      stateUrl,
      "workflow",
      "state",
      "incr",
      "wf_mesh",
      "n",
    );
    expect(first).toMatchObject({ code: 0, stdout: "1\n", stderr: "" });
    const second = run(["--server", down, "workflow", "state", "incr", "wf_mesh", "n", "-3"], {
      AGENTAINER_STATE_SERVER: stateUrl,
    });
    expect(second).toMatchObject({ code: 0, stdout: "-2\n" });
    expect((await client.get({ workflowId: "wf_mesh", key: "n" })).value).toMatchObject({
      kind: { case: "numberValue", value: -2 },
    });
  });

  it("names the option to set when an address does not serve the command's service", () => {
    const pool = cli(stateUrl, "pool", "list");
    expect(pool.code).toBe(3);
    expect(pool.stderr).toBe(
      `agentainer: ${stateUrl} does not serve the Pool service: set --pool-server (or AGENTAINER_POOL_SERVER) to its address, e.g. http://host:7072\n`,
    );
    const workflow = cli(stateUrl, "workflow", "list");
    expect(workflow.code).toBe(3);
    expect(workflow.stderr).toMatch(
      new RegExp(`^agentainer: ${stateUrl} does not serve the Workflow service: point --server `),
    );
    const stateOnPool = run(["--pool-server", stateUrl, "pool", "get", "p"]);
    expect(stateOnPool.code).toBe(3);
    expect(stateOnPool.stderr).toMatch(/does not serve the Pool service: set --pool-server/);
    const unreachable = cli(stateUrl, "--pool-server", "http://127.0.0.1:1", "pool", "list");
    expect(unreachable.code).toBe(3);
    expect(unreachable.stderr).toBe(
      "agentainer: cannot reach the Pool service at http://127.0.0.1:1 (--pool-server, AGENTAINER_POOL_SERVER)\n",
    );
  });
});

describe("agentainer up configured from the environment", { timeout: 120_000 }, () => {
  it("listens on PORT and HOST, and --port wins over PORT", async () => {
    const port = await freePort();
    const up = await start(["up"], /listening on/, { PORT: String(port), HOST: "127.0.0.1" });
    try {
      expect(up.output()).toContain(`listening on http://127.0.0.1:${port}`);
      expect(cli(`http://127.0.0.1:${port}`, "workflow", "list").code).toBe(0);
    } finally {
      await up.stop();
    }
    const bad = run(["up"], { PORT: "abc" });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('PORT: must be a port number, 0 to 65535 (got "abc")');
    const flag = await freePort();
    const both = await start(["up", "--port", String(flag)], /listening on/, { PORT: "1" });
    try {
      expect(both.output()).toContain(`listening on http://127.0.0.1:${flag}`);
    } finally {
      await both.stop();
    }
  });
});

describe("agentainer up with AGENTAINER_API_TOKEN", { timeout: 120_000 }, () => {
  it("refuses the CLI without the token in one line, and answers it with the token", async () => {
    const token = "cli-test-token-0123456789";
    const port = await freePort();
    const server = `http://127.0.0.1:${port}`;
    const up = await start(["up", "--port", String(port)], /listening on/, {
      AGENTAINER_API_TOKEN: token,
    });
    try {
      const without = run(["--server", server, "workflow", "list"], { AGENTAINER_API_TOKEN: "" });
      expect(without.code).toBe(1);
      expect(without.stderr).toMatch(
        /^agentainer: unauthenticated: this server requires an API token/,
      );
      expect(without.stderr.split("\n")).toHaveLength(2);
      const wrong = run(["--server", server, "pool", "list"], {
        AGENTAINER_API_TOKEN: "not-the-token-0123456789",
      });
      expect(wrong.stderr).toBe("agentainer: unauthenticated: the API token is wrong\n");
      const ok = run(["--server", server, "workflow", "list"], { AGENTAINER_API_TOKEN: token });
      expect(ok.code).toBe(0);
      expect(ok.stdout).toMatch(/^ID\s+NAME\s+STATUS/);
    } finally {
      await up.stop();
    }
  });
});
