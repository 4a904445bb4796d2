/**
 * Every Redis key of the State service. All keys of one workflow share the hash tag
 * `{wf:<id>}`, so each script touches one slot and works under Redis Cluster.
 *
 *   <prefix>{wf:<id>}:meta  hash  v (version), b (used bytes), mw, mv (limits), ct (create ms), et (expire ms)
 *   <prefix>{wf:<id>}:data  hash  user key -> canonical JSON text
 *   <prefix>{wf:<id>}:len   hash  user key -> element count, for keys holding arrays
 */
export interface StateKeys {
  readonly meta: string;
  readonly data: string;
  readonly len: string;
}

export const defaultKeyPrefix = "agentainer:state:";

export function stateKeys(prefix: string, workflowId: string): StateKeys {
  const tag = `${prefix}{wf:${workflowId}}`;
  return { meta: `${tag}:meta`, data: `${tag}:data`, len: `${tag}:len` };
}
