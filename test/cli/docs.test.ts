// docs/cli.md documents the program as `--help` shows it: every command, every option, every
// option's environment variable, and no command that does not exist.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "commander";
import { describe, expect, it } from "vitest";
import { createProgram } from "../../cli/main.js";
import { root } from "./spawn.js";

const doc = readFileSync(join(root, "docs/cli.md"), "utf8");
const rows = doc.split("\n").filter((l) => l.startsWith("| `"));

interface Leaf {
  path: string;
  command: Command;
}

function leaves(cmd: Command, path: string[] = []): Leaf[] {
  const subs = cmd.commands.filter((c) => c.name() !== "help");
  if (subs.length === 0) return [{ path: path.join(" "), command: cmd }];
  return subs.flatMap((c) => leaves(c, [...path, c.name()]));
}

const program = createProgram();
const commands = leaves(program);
const longFlags = (c: Command) =>
  c.options.map((o) => o.long).filter((f): f is string => f !== undefined && f !== "--help");

/** The table row documenting a command: its first cell starts with the command's path. */
const rowOf = (path: string) =>
  rows.find((r) => r.startsWith(`| \`${path} `) || r.startsWith(`| \`${path}\``));

describe("docs/cli.md", () => {
  it.each(commands.map((c) => [c.path, c] as const))(
    "documents %s with every option",
    (path, c) => {
      const row = rowOf(path);
      expect(row, `no row for ${path}`).toBeDefined();
      for (const flag of longFlags(c.command)) expect(row, `${path} ${flag}`).toContain(flag);
      for (const o of c.command.options) if (o.envVar) expect(row).toContain(`\`${o.envVar}\``);
    },
  );

  it("documents every global option and its environment variable", () => {
    for (const o of program.options) {
      if (o.long === "--help") continue;
      const row = rows.find((r) => r.startsWith(`| \`${o.flags.split(" ")[0]}`));
      expect(row, o.flags).toBeDefined();
      if (o.envVar) expect(row).toContain(`\`${o.envVar}\``);
    }
  });

  it("documents no command the program lacks", () => {
    const groups = new Set(program.commands.map((c) => c.name()));
    const documented = rows
      .map((r) => /^\| `([a-z][a-z-]*(?: [a-z][a-z-]*)*)/.exec(r)?.[1])
      .filter((p): p is string => p !== undefined && groups.has(p.split(" ")[0] as string));
    expect(documented.length).toBeGreaterThan(20);
    const known = new Set(commands.map((c) => c.path));
    for (const p of documented) expect(known, p).toContain(p);
  });
});
