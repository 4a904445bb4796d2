// The README's quick start: `agentainer example word-count` on the embedded default, with Docker
// and with the local-process runtime.
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("../../", import.meta.url));

function example(env: Record<string, string>) {
  return spawnSync(process.execPath, ["bin/agentainer.js", "example", "word-count"], {
    cwd: root,
    env: { ...process.env, ...env },
    encoding: "utf8",
    timeout: 120_000,
  });
}

describe("agentainer example word-count", () => {
  for (const runtime of ["docker", "local"]) {
    it(`counts the bundled documents' words on the ${runtime} runtime`, () => {
      const r = example({ EXECUTOR_RUNTIME: runtime });
      expect(r.status).toBe(0);
      expect(r.stderr).toContain(`(${runtime} runtime`);
      expect(r.stdout).toMatch(/step map: succeeded, 4\/4 done/);
      expect(r.stdout).toMatch(/workflow wf_\w+: succeeded/);
      expect(r.stdout).toContain("70 words in 4 documents, 26 distinct");
      expect(r.stdout).toMatch(/^\s+10\s+it$/m);
    });
  }
});
