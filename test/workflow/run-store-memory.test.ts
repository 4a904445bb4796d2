import { InMemoryRunStore } from "../../services/workflow/memory-run-store.js";
import { runStoreContract } from "./run-store-contract.js";

runStoreContract("memory", () => new InMemoryRunStore());
