import { connect, type NatsConnection } from "nats";
import type { Logger } from "pino";
import type { BusMessage, EventBus, Subscription } from "./event-bus.js";

/** The event bus of the mesh: core NATS publish/subscribe on one connection. */
export class NatsEventBus implements EventBus {
  private constructor(
    private readonly nc: NatsConnection,
    private readonly logger: Logger,
  ) {}

  static async connect(url: string, logger: Logger, name = "agentainer"): Promise<NatsEventBus> {
    const nc = await connect({
      servers: url,
      name,
      reconnect: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 500,
    });
    logger.info({ nats: nc.getServer() }, "connected to NATS");
    const bus = new NatsEventBus(nc, logger);
    void bus.watchStatus();
    return bus;
  }

  publish(subject: string, data: Uint8Array): void {
    try {
      this.nc.publish(subject, data);
    } catch (err) {
      // Publishing on a closed or draining connection: the event is lost, the state is not.
      this.logger.warn({ err, subject }, "event not published");
    }
  }

  subscribe(subject: string, handler: (message: BusMessage) => void): Subscription {
    const sub = this.nc.subscribe(subject, {
      callback: (err, msg) => {
        if (err) {
          this.logger.warn({ err, subject }, "subscription error");
          return;
        }
        try {
          handler({ subject: msg.subject, data: msg.data });
        } catch (handlerErr) {
          this.logger.error({ err: handlerErr, subject: msg.subject }, "event handler failed");
        }
      },
    });
    return { unsubscribe: () => sub.unsubscribe() };
  }

  async flush(): Promise<void> {
    await this.nc.flush();
  }

  async close(): Promise<void> {
    if (this.nc.isClosed()) return;
    await this.nc.drain();
  }

  private async watchStatus(): Promise<void> {
    for await (const status of this.nc.status()) {
      if (status.type === "disconnect" || status.type === "reconnect") {
        this.logger.warn({ nats: status.data }, `NATS ${status.type}`);
      }
    }
  }
}
