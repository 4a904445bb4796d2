/**
 * Lifecycle events travel on an EventBus: NATS in the mesh, in-process in the one-process mode.
 * Subjects follow NATS rules: dot-separated tokens; `*` matches one token and `>` the rest.
 * Delivery is at most once and asynchronous; correctness never depends on an event arriving
 * (state is stored before it is announced, and consumers detect gaps with versions).
 */
export interface BusMessage {
  readonly subject: string;
  readonly data: Uint8Array;
}

export interface Subscription {
  /** Stops delivery to this handler. Idempotent. */
  unsubscribe(): void;
}

export interface EventBus {
  /** Hands an event to the transport. Never waits for subscribers. */
  publish(subject: string, data: Uint8Array): void;
  /** Calls `handler` for every message whose subject matches `subject` (wildcards allowed). */
  subscribe(subject: string, handler: (message: BusMessage) => void): Subscription;
  /** Waits until everything published so far has left this process (NATS flush). */
  flush(): Promise<void>;
  /** Drains and closes the connection. */
  close(): Promise<void>;
}

/** NATS subject matching: `*` is one token, a trailing `>` is one or more tokens. */
export function subjectMatches(pattern: string, subject: string): boolean {
  const p = pattern.split(".");
  const s = subject.split(".");
  for (let i = 0; i < p.length; i++) {
    const token = p[i];
    if (token === ">") return s.length > i;
    if (i >= s.length) return false;
    if (token !== "*" && token !== s[i]) return false;
  }
  return p.length === s.length;
}
