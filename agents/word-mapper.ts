/**
 * The word-count mapper (a stream agent): for each task, counts the words of `input.item` (a
 * text) and returns { "<word>": count }. Used by the MapReduce quick start and the tests.
 *
 * WORD_MAPPER_DELAY_MS (a task env var, bound at dispatch): wait this long before answering, to
 * stand in for real work in demos and crash-recovery tests. Default 0.
 */
import { serve } from "../sdk/agent.js";

await serve(async (input, ctx) => {
  const delay = Number(ctx.task.env.WORD_MAPPER_DELAY_MS ?? 0);
  if (Number.isFinite(delay) && delay > 0) {
    await new Promise((resolve) => setTimeout(resolve, Math.min(delay, 60_000)));
  }
  const text = String((input as { item?: unknown } | null)?.item ?? "");
  const counts: Record<string, number> = {};
  for (const word of text.toLowerCase().match(/[\p{L}\p{N}']+/gu) ?? []) {
    counts[word] = (counts[word] ?? 0) + 1;
  }
  return counts;
});
