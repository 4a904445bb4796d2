// The README's quick start: `agentainer example word-count` on the embedded default, with Docker
// and with the local-process runtime, in a pipe and in a real terminal (tmux).
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { bin, root } from "./spawn.js";

function example(env: Record<string, string>) {
  return spawnSync(process.execPath, ["bin/agentainer.js", "example", "word-count"], {
    cwd: root,
    env: { ...process.env, ...env },
    encoding: "utf8",
    timeout: 120_000,
  });
}

describe("agentainer example word-count", { timeout: 120_000 }, () => {
  for (const runtime of ["docker", "local"]) {
    it(`counts the bundled documents' words on the ${runtime} runtime`, () => {
      const r = example({ EXECUTOR_RUNTIME: runtime });
      expect(r.status).toBe(0);
      expect(r.stderr).toMatch(
        new RegExp(
          `^started the suite in this process \\(${runtime} runtime${runtime === "local" ? ": NO isolation" : ""}\\)\\nworkflow wf_\\w+: 4 documents\\n$`,
        ),
      );
      expect(r.stdout).toMatch(/^step map: succeeded, 4\/4 done$/m);
      expect(r.stdout).toMatch(
        /^step reduce: succeeded, 1\/1 done\nworkflow wf_\w+: succeeded\n\n/m,
      );
      expect(r.stdout).toContain("70 words in 4 documents, 26 distinct");
      expect(r.stdout).toMatch(/^\s+10\s+it$/m);
    });
  }

  it("shows a bar per step and the summary in a terminal, as the README says", async () => {
    const session = `agentainer-example-${process.pid}`;
    spawnSync("tmux", [
      "new-session",
      "-d",
      "-s",
      session,
      "-x",
      "120",
      "-y",
      "30",
      "-c",
      root,
      `${process.execPath} ${bin} example word-count; echo "exit=$?"; sleep 60`,
    ]);
    try {
      let screen = "";
      for (let i = 0; i < 900 && !screen.includes("exit="); i++) {
        await new Promise((r) => setTimeout(r, 100));
        screen = spawnSync("tmux", ["capture-pane", "-p", "-t", session], {
          encoding: "utf8",
        }).stdout;
      }
      const lines = screen.split("\n");
      expect(lines.slice(0, 5).join("\n")).toMatch(
        new RegExp(
          [
            "^started the suite in this process \\((docker|local) runtime[^)]*\\)",
            "workflow (wf_\\w+): 4 documents",
            "map +\\[#{30}\\] succeeded +4/4 done",
            "reduce +\\[#{30}\\] succeeded +1/1 done",
            "workflow \\2: succeeded$",
          ].join("\n"),
        ),
      );
      expect(lines[5]).toBe("");
      expect(lines[6]).toBe("70 words in 4 documents, 26 distinct");
      expect(screen).toContain("exit=0");
    } finally {
      spawnSync("tmux", ["kill-session", "-t", session]);
    }
  });
});
