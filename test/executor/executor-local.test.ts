import { fileURLToPath } from "node:url";
import { LocalRuntime } from "../../services/executor/runtime/local.js";
import { executorSuite } from "./executor-suite.js";

const root = fileURLToPath(new URL("../..", import.meta.url));

// The local-process runtime: the same contract with the host's sh and node, no isolation.
executorSuite({
  name: "local-process",
  runtime: () => Promise.resolve(new LocalRuntime()),
  shellImage: "ignored-by-the-local-runtime",
  program: (name) => ({
    image: "ignored-by-the-local-runtime",
    command: [process.execPath, "--import", "tsx", `agents/${name}.ts`],
    workingDir: root,
  }),
  streamAgent: {
    image: "ignored-by-the-local-runtime",
    command: [process.execPath, "--import", "tsx", "agents/test-agent.ts"],
    workingDir: root,
  },
});
