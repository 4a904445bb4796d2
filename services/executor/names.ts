import { randomBytes } from "node:crypto";

const invalid = /[^a-zA-Z0-9_.-]+/g;

/**
 * A Docker-safe container name from parts (`<workflow>-<step>-<index>`): runs of characters
 * Docker does not allow become "-", the name starts with a letter or digit, and it stays short
 * enough to leave room for a uniqueness suffix.
 */
export function containerName(...parts: Array<string | number>): string {
  const joined = parts
    .map((p) => String(p).replace(invalid, "-"))
    .join("-")
    .replace(/^[^a-zA-Z0-9]+/, "")
    .slice(0, 180);
  return joined === "" ? "agentainer" : joined;
}

/** The name with a short random suffix, for when the plain one is taken. */
export function withSuffix(name: string): string {
  return `${name}-${randomBytes(3).toString("hex")}`;
}
