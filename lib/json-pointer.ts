import type { JsonValue } from "@bufbuild/protobuf";
import { InvalidArgumentError } from "./errors.js";

/**
 * JSON pointers (RFC 6901): "" is the whole document, "/a/0/b~1c" walks keys and indexes
 * ("~1" is "/", "~0" is "~"). Parsed once, read many times.
 */
export function parsePointer(pointer: string, field: string): string[] {
  if (pointer === "") return [];
  if (!pointer.startsWith("/")) {
    throw new InvalidArgumentError(
      `${field} "${pointer}" is not a JSON pointer: it must be empty or start with "/" (e.g. "/documents")`,
      { field },
    );
  }
  return pointer
    .slice(1)
    .split("/")
    .map((token) => {
      if (/~[^01]|~$/.test(token)) {
        throw new InvalidArgumentError(
          `${field} "${pointer}" has a "~" not followed by 0 or 1 (write "~0" for "~", "~1" for "/")`,
          { field },
        );
      }
      return token.replace(/~1/g, "/").replace(/~0/g, "~");
    });
}

/** The value at `tokens` in `doc`, or undefined when the path does not exist. */
export function resolvePointer(doc: JsonValue, tokens: readonly string[]): JsonValue | undefined {
  let at: JsonValue | undefined = doc;
  for (const token of tokens) {
    if (Array.isArray(at)) {
      if (!/^(0|[1-9][0-9]*)$/.test(token)) return undefined;
      at = at[Number(token)];
    } else if (at !== null && typeof at === "object") {
      at = Object.prototype.hasOwnProperty.call(at, token) ? at[token] : undefined;
    } else {
      return undefined;
    }
    if (at === undefined) return undefined;
  }
  return at;
}
