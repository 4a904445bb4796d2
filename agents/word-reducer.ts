/**
 * The word-count reducer (a one-shot agent): sums the mappers' counts (`input.results`, null for
 * failed items), returns { words: {...}, total, documents, failed }, and records the total in the
 * workflow's state under "total_words". Used by the MapReduce quick start and the tests.
 */
import { runTask } from "../sdk/task.js";

await runTask(async (input, ctx) => {
  const doc = (input ?? {}) as {
    results?: Array<Record<string, number> | null>;
    failures?: unknown[];
  };
  const words: Record<string, number> = {};
  let documents = 0;
  for (const counts of doc.results ?? []) {
    if (counts === null) continue;
    documents++;
    for (const [word, n] of Object.entries(counts)) words[word] = (words[word] ?? 0) + n;
  }
  const total = Object.values(words).reduce((a, b) => a + b, 0);
  await ctx.state.set("total_words", total);
  return { words, total, documents, failed: (doc.failures ?? []).length };
});
