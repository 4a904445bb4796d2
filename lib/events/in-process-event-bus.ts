import { subjectMatches, type BusMessage, type EventBus, type Subscription } from "./event-bus.js";

/**
 * The event bus of the one-process mode and of unit tests. Delivers asynchronously (after the
 * publisher's current task) and in publish order, like NATS from a single connection.
 */
export class InProcessEventBus implements EventBus {
  private readonly handlers = new Set<{ pattern: string; handler: (m: BusMessage) => void }>();
  private pending: BusMessage[] = [];
  private scheduled = false;
  private closed = false;

  /** `onHandlerError` hears what a handler threw; the other handlers and messages still run. */
  constructor(
    private readonly onHandlerError: (err: unknown, subject: string) => void = (err, subject) =>
      process.emitWarning(`event handler for ${subject} failed: ${String(err)}`),
  ) {}

  publish(subject: string, data: Uint8Array): void {
    if (this.closed) return;
    this.pending.push({ subject, data });
    if (!this.scheduled) {
      this.scheduled = true;
      queueMicrotask(() => this.deliver());
    }
  }

  subscribe(subject: string, handler: (message: BusMessage) => void): Subscription {
    const entry = { pattern: subject, handler };
    this.handlers.add(entry);
    return { unsubscribe: () => this.handlers.delete(entry) };
  }

  flush(): Promise<void> {
    return new Promise((resolve) => setImmediate(resolve));
  }

  close(): Promise<void> {
    this.closed = true;
    this.handlers.clear();
    this.pending = [];
    return Promise.resolve();
  }

  private deliver(): void {
    this.scheduled = false;
    const batch = this.pending;
    this.pending = [];
    for (const message of batch) {
      for (const { pattern, handler } of [...this.handlers]) {
        if (!subjectMatches(pattern, message.subject)) continue;
        try {
          handler(message);
        } catch (err) {
          this.onHandlerError(err, message.subject);
        }
      }
    }
  }
}
