import { InvalidArgumentError } from "./errors.js";

const idPattern = /^[A-Za-z0-9_-]{1,128}$/;

/**
 * The ids the services share a syntax for (workflow, agent and pool ids): 1 to 128 characters of
 * A-Z, a-z, 0-9, _ and -, so they are always one literal token in NATS subjects and Redis keys.
 */
export function checkId(value: string, field: string): void {
  if (!idPattern.test(value)) {
    throw new InvalidArgumentError(
      value === ""
        ? `${field} is required`
        : `${field} "${value.slice(0, 140)}" is invalid; use 1 to 128 characters of A-Z, a-z, 0-9, _ and -`,
      { field },
    );
  }
}
