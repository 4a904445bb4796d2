import { InMemoryStateStore } from "../../services/state/memory-store.js";
import { describeStateContract } from "./state-contract.js";

describeStateContract("in-memory", () =>
  Promise.resolve({ store: new InMemoryStateStore(), cleanup: () => Promise.resolve() }),
);
