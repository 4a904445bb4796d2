/**
 * The word-count mapper (a stream agent): for each task, counts the words of `input.item` (a
 * text) and returns { "<word>": count }. Used by the MapReduce quick start and the tests.
 */
import { serve } from "../sdk/agent.js";

await serve((input) => {
  const text = String((input as { item?: unknown } | null)?.item ?? "");
  const counts: Record<string, number> = {};
  for (const word of text.toLowerCase().match(/[\p{L}\p{N}']+/gu) ?? []) {
    counts[word] = (counts[word] ?? 0) + 1;
  }
  return counts;
});
