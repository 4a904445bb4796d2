/**
 * The few error classes domain code throws. Domain code never imports Connect: the error
 * interceptor (lib/error-interceptor.ts) is the one place that maps these to gRPC status codes.
 * Every message says what was wrong and what to do about it.
 */
export type ErrorKind =
  | "invalid_argument"
  | "not_found"
  | "already_exists"
  | "failed_precondition"
  | "resource_exhausted"
  | "unavailable"
  | "deadline_exceeded"
  | "permission_denied"
  | "cancelled";

export class AgentainerError extends Error {
  readonly kind: ErrorKind;
  /** The request field the error is about, when there is one (e.g. "key", "values.foo"). */
  readonly field: string | undefined;

  constructor(kind: ErrorKind, message: string, options?: { field?: string; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.kind = kind;
    this.field = options?.field;
  }
}

export class InvalidArgumentError extends AgentainerError {
  constructor(message: string, options?: { field?: string; cause?: unknown }) {
    super("invalid_argument", message, options);
  }
}

export class NotFoundError extends AgentainerError {
  constructor(message: string, options?: { field?: string; cause?: unknown }) {
    super("not_found", message, options);
  }
}

export class AlreadyExistsError extends AgentainerError {
  constructor(message: string, options?: { field?: string; cause?: unknown }) {
    super("already_exists", message, options);
  }
}

export class FailedPreconditionError extends AgentainerError {
  constructor(message: string, options?: { field?: string; cause?: unknown }) {
    super("failed_precondition", message, options);
  }
}

export class ResourceExhaustedError extends AgentainerError {
  constructor(message: string, options?: { field?: string; cause?: unknown }) {
    super("resource_exhausted", message, options);
  }
}

export class UnavailableError extends AgentainerError {
  constructor(message: string, options?: { field?: string; cause?: unknown }) {
    super("unavailable", message, options);
  }
}

export class PermissionDeniedError extends AgentainerError {
  constructor(message: string, options?: { field?: string; cause?: unknown }) {
    super("permission_denied", message, options);
  }
}

export class DeadlineExceededError extends AgentainerError {
  constructor(message: string, options?: { field?: string; cause?: unknown }) {
    super("deadline_exceeded", message, options);
  }
}
