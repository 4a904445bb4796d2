import { fromBinary, toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import type { EventBus, Subscription } from "./event-bus.js";

/** Publishes a protobuf message as an event. */
export function publishEvent<D extends DescMessage>(
  bus: EventBus,
  subject: string,
  schema: D,
  message: MessageShape<D>,
): void {
  bus.publish(subject, toBinary(schema, message));
}

/** Subscribes to protobuf events; messages that fail to decode are reported to `onError`. */
export function subscribeEvents<D extends DescMessage>(
  bus: EventBus,
  subject: string,
  schema: D,
  handler: (message: MessageShape<D>, subject: string) => void,
  onError: (err: unknown, subject: string) => void = () => {},
): Subscription {
  return bus.subscribe(subject, (m) => {
    let decoded: MessageShape<D>;
    try {
      decoded = fromBinary(schema, m.data);
    } catch (err) {
      onError(err, m.subject);
      return;
    }
    handler(decoded, m.subject);
  });
}
