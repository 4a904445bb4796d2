/**
 * A stream agent for tests and examples: what it does with a task depends on `input.action`.
 *   echo (default)  returns { input, task, env }
 *   state           increments input.key, appends to "log", adds to "members", returns values
 *   other-workflow  tries to read another workflow's state; returns the error code it got
 *   fail            throws input.message (the task fails with that text)
 *   sleep           waits input.ms or until cancelled; returns { cancelled }
 *   garbage         writes a line that is not JSON to stdout (breaks the protocol)
 *   exit            exits the process with input.code
 *   log             logs input.lines lines, then returns their count
 * Built into the agentainer/node-agent image as /agents/test-agent.mjs.
 */
import { serve, StateError, type Json } from "../sdk/agent.js";

type Input = { action?: string; [key: string]: Json | undefined };

await serve(async (raw, ctx) => {
  const input = (raw ?? {}) as Input;
  switch (input.action ?? "echo") {
    case "echo":
      return { input: raw, task: { ...ctx.task, input: null }, env: ctx.task.env };
    case "state": {
      const key = String(input.key ?? "count");
      const count = await ctx.state.increment(key);
      const length = await ctx.state.append("log", ctx.task.id);
      const added = await ctx.state.addToSet("members", ctx.task.index);
      const swapped = await ctx.state.compareAndSwap("owner", undefined, ctx.task.id);
      await ctx.state.set(`task:${ctx.task.id}`, { done: true });
      return { count, length, added, firstOwner: swapped.swapped, read: await ctx.state.get(key) };
    }
    case "other-workflow":
      try {
        // The protocol refuses any workflow but the task's own.
        process.stdout.write(
          JSON.stringify({
            type: "state",
            task_id: ctx.task.id,
            request_id: "x1",
            op: "get",
            key: "k",
            workflow_id: String(input.workflow),
          }) + "\n",
        );
        await ctx.state.get("definitely-absent");
        return { code: "none" };
      } catch (err) {
        return { code: err instanceof StateError ? err.code : String(err) };
      }
    case "fail":
      throw new Error(String(input.message ?? "failed on purpose"));
    case "sleep": {
      const ms = Number(input.ms ?? 60_000);
      const cancelled = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), ms);
        ctx.signal.addEventListener("abort", () => {
          clearTimeout(timer);
          resolve(true);
        });
      });
      return { cancelled };
    }
    case "garbage":
      process.stdout.write("this is not the protocol\n");
      return await new Promise<Json>(() => undefined);
    case "exit":
      process.exit(Number(input.code ?? 3));
      break;
    case "log": {
      const lines = Number(input.lines ?? 3);
      for (let i = 0; i < lines; i++) ctx.log(`line ${i}`);
      console.error("to stderr directly");
      return lines;
    }
    default:
      throw new Error(`unknown action ${String(input.action)}`);
  }
});
