import { pino, type Logger, type LevelWithSilent } from "pino";

export type { Logger } from "pino";

export interface LoggerOptions {
  /** Component name, e.g. "state"; becomes the `service` field of every line. */
  name: string;
  level?: LevelWithSilent;
  /** Where lines go; defaults to stdout. Tests pass a stream to read them. */
  destination?: NodeJS.WritableStream;
}

/** JSON lines on stdout (pino), one logger per service; children add context with `.child({...})`. */
export function createLogger(options: LoggerOptions): Logger {
  const base = { service: options.name };
  const level = options.level ?? "info";
  return options.destination === undefined
    ? pino({ level, base })
    : pino({ level, base }, options.destination as pino.DestinationStream);
}
