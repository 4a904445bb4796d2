/**
 * Every NATS subject of the suite, built in one place: `agentainer.<domain>.<entity>.<event>`,
 * with the workflow id as a last token where consumers filter by workflow. Workflow ids are
 * restricted to [A-Za-z0-9_-] so they are always a single, literal token.
 */
export const subjects = {
  state: {
    /** A workflow's state changed (payload agentainer.state.v1.StateChanged). */
    workflowChanged: (workflowId: string) => `agentainer.state.workflow.changed.${workflowId}`,
    /** Every state change of every workflow. */
    anyWorkflowChanged: "agentainer.state.workflow.changed.>",
  },
} as const;
