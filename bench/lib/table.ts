// Pure helpers for benchmark output: the same cells as an aligned text table or a markdown table.

export interface Column {
  title: string;
  /** Right-aligned (numbers). */
  right?: boolean;
}

/** Columns padded to their widest cell, two spaces apart. */
export function textTable(
  columns: readonly Column[],
  rows: ReadonlyArray<readonly string[]>,
): string {
  const widths = columns.map((c, i) =>
    Math.max(c.title.length, ...rows.map((r) => (r[i] ?? "").length)),
  );
  const line = (cells: readonly string[]): string =>
    columns
      .map((c, i) =>
        c.right ? (cells[i] ?? "").padStart(widths[i]!) : (cells[i] ?? "").padEnd(widths[i]!),
      )
      .join("  ")
      .trimEnd();
  return [line(columns.map((c) => c.title)), ...rows.map(line)].join("\n");
}

/** A GitHub-flavoured markdown table. */
export function markdownTable(
  columns: readonly Column[],
  rows: ReadonlyArray<readonly string[]>,
): string {
  const line = (cells: readonly string[]): string => `| ${cells.join(" | ")} |`;
  return [
    line(columns.map((c) => c.title)),
    line(columns.map((c) => (c.right ? "---:" : "---"))),
    ...rows.map(line),
  ].join("\n");
}
