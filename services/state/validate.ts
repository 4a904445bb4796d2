import { InvalidArgumentError } from "../../lib/errors.js";
import { checkId } from "../../lib/ids.js";

const controlCharacters = /[\u0000-\u001f\u007f]/;
export const maxKeyBytes = 1024;
export const maxTtlMs = 366 * 24 * 3600 * 1000;

export function checkWorkflowId(workflowId: string): void {
  checkId(workflowId, "workflow_id");
}

export function checkKey(key: string, field = "key"): void {
  if (key === "")
    throw new InvalidArgumentError(`${field} is required and must not be empty`, { field });
  const size = Buffer.byteLength(key, "utf8");
  if (size > maxKeyBytes) {
    throw new InvalidArgumentError(
      `${field} is ${size} bytes long; keys may have at most ${maxKeyBytes} bytes`,
      {
        field,
      },
    );
  }
  if (controlCharacters.test(key)) {
    throw new InvalidArgumentError(
      `${field} contains a control character; use printable characters only`,
      {
        field,
      },
    );
  }
}
