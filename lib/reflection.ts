import type {
  DescEnum,
  DescExtension,
  DescFile,
  DescMessage,
  DescService,
} from "@bufbuild/protobuf";
import { toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code, type ConnectRouter, type HandlerContext } from "@connectrpc/connect";
import { ServerReflection as ServerReflectionV1 } from "../gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ServerReflectionV1alpha } from "../gen/grpc/reflection/v1alpha/reflection_pb.js";

/** A reflection question, as both grpc.reflection.v1 and v1alpha spell it. */
export type ReflectionQuery =
  | { case: "fileByFilename"; value: string }
  | { case: "fileContainingSymbol"; value: string }
  | { case: "fileContainingExtension"; value: { containingType: string; extensionNumber: number } }
  | { case: "allExtensionNumbersOfType"; value: string }
  | { case: "listServices"; value: string }
  | { case: undefined; value?: undefined };

/** A reflection answer, assignable to the message_response oneof of both versions. */
export type ReflectionAnswer =
  | { case: "fileDescriptorResponse"; value: { fileDescriptorProto: Uint8Array[] } }
  | {
      case: "allExtensionNumbersResponse";
      value: { baseTypeName: string; extensionNumber: number[] };
    }
  | { case: "listServicesResponse"; value: { service: { name: string }[] } }
  | { case: "errorResponse"; value: { errorCode: number; errorMessage: string } };

export interface ReflectionIndex {
  /** Answers one question. `sent` holds the file names this stream already sent; it is updated. */
  answer(query: ReflectionQuery, sent: Set<string>): ReflectionAnswer;
}

/** Indexes the files of the given services (and their transitive imports) by file name and symbol. */
export function createReflectionIndex(services: readonly DescService[]): ReflectionIndex {
  const files = new Map<string, DescFile>();
  const symbols = new Map<string, DescFile>();
  const extensions = new Map<string, DescFile>(); // "<extendee>:<number>"
  const extensionNumbers = new Map<string, number[]>();
  const encoded = new Map<DescFile, Uint8Array>();

  const addExtension = (file: DescFile, ext: DescExtension): void => {
    symbols.set(ext.typeName, file);
    extensions.set(`${ext.extendee.typeName}:${ext.number}`, file);
    const numbers = extensionNumbers.get(ext.extendee.typeName) ?? [];
    extensionNumbers.set(ext.extendee.typeName, [...numbers, ext.number]);
  };
  const addEnum = (file: DescFile, desc: DescEnum): void => {
    symbols.set(desc.typeName, file);
    const scope = desc.parent?.typeName ?? file.proto.package;
    for (const value of desc.values)
      symbols.set(scope ? `${scope}.${value.name}` : value.name, file);
  };
  const addMessage = (file: DescFile, desc: DescMessage): void => {
    symbols.set(desc.typeName, file);
    for (const field of desc.fields) symbols.set(`${desc.typeName}.${field.name}`, file);
    for (const oneof of desc.oneofs) symbols.set(`${desc.typeName}.${oneof.name}`, file);
    for (const nested of desc.nestedMessages) addMessage(file, nested);
    for (const nested of desc.nestedEnums) addEnum(file, nested);
    for (const ext of desc.nestedExtensions) addExtension(file, ext);
  };
  const addFile = (file: DescFile): void => {
    if (files.has(file.proto.name)) return;
    files.set(file.proto.name, file);
    for (const dep of file.dependencies) addFile(dep);
    for (const desc of file.messages) addMessage(file, desc);
    for (const desc of file.enums) addEnum(file, desc);
    for (const ext of file.extensions) addExtension(file, ext);
    for (const service of file.services) {
      symbols.set(service.typeName, file);
      for (const method of service.methods) symbols.set(`${service.typeName}.${method.name}`, file);
    }
  };
  for (const service of services) addFile(service.file);
  const serviceNames = [...new Set(services.map((s) => s.typeName))].sort();

  const encode = (file: DescFile): Uint8Array => {
    let bytes = encoded.get(file);
    if (bytes === undefined) {
      bytes = toBinary(FileDescriptorProtoSchema, file.proto);
      encoded.set(file, bytes);
    }
    return bytes;
  };

  // The file itself (always), then its transitive imports this stream has not sent yet.
  const withDependencies = (file: DescFile, sent: Set<string>): ReflectionAnswer => {
    const out: Uint8Array[] = [];
    const visit = (f: DescFile, requested: boolean): void => {
      if (!requested && sent.has(f.proto.name)) return;
      sent.add(f.proto.name);
      out.push(encode(f));
      for (const dep of f.dependencies) visit(dep, false);
    };
    visit(file, true);
    return { case: "fileDescriptorResponse", value: { fileDescriptorProto: out } };
  };
  const error = (code: Code, message: string): ReflectionAnswer => ({
    case: "errorResponse",
    value: { errorCode: code, errorMessage: message },
  });
  const stripDot = (name: string): string => (name.startsWith(".") ? name.slice(1) : name);

  return {
    answer(query, sent) {
      switch (query.case) {
        case "listServices":
          return {
            case: "listServicesResponse",
            value: { service: serviceNames.map((name) => ({ name })) },
          };
        case "fileByFilename": {
          const file = files.get(query.value);
          return file
            ? withDependencies(file, sent)
            : error(Code.NotFound, `file "${query.value}" not found`);
        }
        case "fileContainingSymbol": {
          const file = symbols.get(stripDot(query.value));
          return file
            ? withDependencies(file, sent)
            : error(Code.NotFound, `symbol "${query.value}" not found`);
        }
        case "fileContainingExtension": {
          const { containingType, extensionNumber } = query.value;
          const file = extensions.get(`${stripDot(containingType)}:${extensionNumber}`);
          return file
            ? withDependencies(file, sent)
            : error(Code.NotFound, `extension ${extensionNumber} of "${containingType}" not found`);
        }
        case "allExtensionNumbersOfType": {
          const typeName = stripDot(query.value);
          if (!symbols.has(typeName))
            return error(Code.NotFound, `type "${query.value}" not found`);
          const numbers = extensionNumbers.get(typeName) ?? [];
          return {
            case: "allExtensionNumbersResponse",
            value: { baseTypeName: typeName, extensionNumber: numbers },
          };
        }
        case undefined:
          return error(Code.InvalidArgument, "empty reflection request");
      }
    },
  };
}

export interface ReflectionServiceDeps {
  /** The services to describe; both reflection services are added. */
  services: readonly DescService[];
  /** Ends open reflection streams when aborted. */
  shutdownSignal?: AbortSignal;
}

/** gRPC server reflection, v1 and v1alpha over the same index. */
export function createReflectionService(deps: ReflectionServiceDeps): {
  routes(router: ConnectRouter): void;
} {
  const index = createReflectionIndex([
    ...deps.services,
    ServerReflectionV1,
    ServerReflectionV1alpha,
  ]);

  async function* answers<R extends { messageRequest: ReflectionQuery }>(
    requests: AsyncIterable<R>,
    context: HandlerContext,
  ): AsyncGenerator<{ request: R; answer: ReflectionAnswer }> {
    const signals = deps.shutdownSignal ? [context.signal, deps.shutdownSignal] : [context.signal];
    const sent = new Set<string>();
    for await (const request of untilAborted(requests, AbortSignal.any(signals))) {
      yield { request, answer: index.answer(request.messageRequest, sent) };
    }
  }

  return {
    routes(router) {
      router.service(ServerReflectionV1, {
        async *serverReflectionInfo(requests, context) {
          for await (const { request, answer } of answers(requests, context)) {
            yield { validHost: request.host, originalRequest: request, messageResponse: answer };
          }
        },
      });
      router.service(ServerReflectionV1alpha, {
        async *serverReflectionInfo(requests, context) {
          for await (const { request, answer } of answers(requests, context)) {
            yield { validHost: request.host, originalRequest: request, messageResponse: answer };
          }
        },
      });
    },
  };
}

/** Yields from `iterable` until it ends or `signal` aborts, whichever comes first. */
async function* untilAborted<T>(
  iterable: AsyncIterable<T>,
  signal: AbortSignal,
): AsyncGenerator<T> {
  const iterator = iterable[Symbol.asyncIterator]();
  let onAbort = (): void => {};
  const aborted = new Promise<"aborted">((resolve) => {
    onAbort = () => resolve("aborted");
    signal.addEventListener("abort", onAbort, { once: true });
  });
  try {
    while (!signal.aborted) {
      const next = iterator.next();
      const result = await Promise.race([next, aborted]);
      if (result === "aborted") {
        next.catch(() => {}); // the stream is being torn down; a late failure is no longer of interest
        return;
      }
      if (result.done === true) return;
      yield result.value;
    }
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}
