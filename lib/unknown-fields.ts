import type { DescField, DescMessage, Message } from "@bufbuild/protobuf";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";

/** Where a request carries a field this server's schema does not know. */
export interface UnknownField {
  /** Path of the message holding it, in proto field names (`steps[2].pool_policy`); "" is the request. */
  readonly path: string;
  /** Its field number on the wire. */
  readonly number: number;
  /** Full name of the message type that does not define it. */
  readonly typeName: string;
}

interface WithUnknown {
  $unknown?: ReadonlyArray<{ no: number }>;
}

/**
 * The first field in `message` (or any message inside it) that came off the wire without a
 * definition in `schema`. Binary protobuf keeps such fields aside instead of failing; an
 * orchestrator that silently ignored, say, a failure strategy a newer client sent would run the
 * workflow wrong, so requests carrying one are refused (JSON requests already fail to parse).
 */
export function findUnknownField(schema: DescMessage, message: Message): UnknownField | undefined {
  const unknown = (message as WithUnknown).$unknown;
  if (unknown !== undefined && unknown.length > 0) {
    return { path: "", number: unknown[0]!.no, typeName: schema.typeName };
  }
  for (const field of schema.fields) {
    const found = inField(field, fieldValue(message, field));
    if (found !== undefined) return found;
  }
  return undefined;
}

function fieldValue(message: Message, field: DescField): unknown {
  const record = message as unknown as Record<string, unknown>;
  if (field.oneof === undefined) return record[field.localName];
  const oneof = record[field.oneof.localName] as { case?: string; value?: unknown } | undefined;
  return oneof?.case === field.localName ? oneof.value : undefined;
}

function inField(field: DescField, value: unknown): UnknownField | undefined {
  if (value === undefined || value === null) return undefined;
  switch (field.fieldKind) {
    case "message":
      return nested(field.message, value as Message, field.name);
    case "list":
      if (field.listKind !== "message") return undefined;
      return first(value as Message[], (m, i) => nested(field.message, m, `${field.name}[${i}]`));
    case "map":
      if (field.mapKind !== "message") return undefined;
      return first(Object.entries(value as Record<string, Message>), ([k, m]) =>
        nested(field.message, m, `${field.name}[${JSON.stringify(k)}]`),
      );
    case "scalar":
    case "enum":
      return undefined;
  }
}

function nested(schema: DescMessage, message: Message, at: string): UnknownField | undefined {
  const found = findUnknownField(schema, message);
  if (found === undefined) return undefined;
  return { ...found, path: found.path === "" ? at : `${at}.${found.path}` };
}

function first<T>(items: readonly T[], f: (item: T, index: number) => UnknownField | undefined) {
  for (let i = 0; i < items.length; i++) {
    const found = f(items[i]!, i);
    if (found !== undefined) return found;
  }
  return undefined;
}

function refuse(found: UnknownField): ConnectError {
  const where = found.path === "" ? "the request" : found.path;
  return new ConnectError(
    `${where}: unknown field number ${found.number} in ${found.typeName}; this server does not ` +
      "support it (a client built from newer .proto files?): remove it, or upgrade the server",
    Code.InvalidArgument,
  );
}

/** Refuses requests (unary, and every message of a client stream) that carry an unknown field. */
export function createUnknownFieldsInterceptor(): Interceptor {
  return (next) => async (req) => {
    const schema = req.method.input;
    if (!req.stream) {
      const found = findUnknownField(schema, req.message);
      if (found !== undefined) throw refuse(found);
      return next(req);
    }
    const messages = req.message;
    return next({
      ...req,
      message: (async function* () {
        for await (const message of messages) {
          const found = findUnknownField(schema, message);
          if (found !== undefined) throw refuse(found);
          yield message;
        }
      })(),
    });
  };
}
