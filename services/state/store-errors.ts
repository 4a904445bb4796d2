import {
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  ResourceExhaustedError,
} from "../../lib/errors.js";

/** The errors both stores throw, worded once so Redis and memory behave identically. */
export const storeErrors = {
  noState: (workflowId: string) =>
    new NotFoundError(
      `workflow "${workflowId}" has no state; create it with CreateWorkflowState (the Workflow service does so when it creates a workflow)`,
      { field: "workflow_id" },
    ),
  valueTooLarge: (field: string, size: number, limit: number) =>
    new ResourceExhaustedError(
      `${field} would take ${size} bytes, over the per-value limit of ${limit} bytes; store less in one key or split it across keys`,
      { field },
    ),
  workflowTooLarge: (workflowId: string, field: string, after: number, limit: number) =>
    new ResourceExhaustedError(
      `workflow "${workflowId}" state would reach ${after} bytes, over its limit of ${limit} bytes; delete keys you no longer need or keep large data outside the state`,
      { field },
    ),
  wrongType: (key: string, type: string, needs: string) =>
    new FailedPreconditionError(
      `key "${key}" holds ${/^[aeiou]/.test(type) ? "an" : "a"} ${type}; ${needs}`,
      {
        field: "key",
      },
    ),
  notFinite: (key: string, delta: string | number) =>
    new InvalidArgumentError(
      `incrementing "${key}" by ${delta} leaves the finite numbers; use a smaller delta`,
      { field: "delta" },
    ),
};

/** What each type-checked operation needs, for wrongType messages. */
export const typeNeeds = {
  increment: "Increment needs a number (or an absent key); Set a number first or use another key",
  append: "AppendToList needs a JSON array (or an absent key); use another key or Set it to []",
  addToSet: "AddToSet needs a JSON array (or an absent key); use another key or Set it to []",
};
