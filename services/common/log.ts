/**
 * JSON-lines logging shared by every joi program.
 *
 * One line per event on stderr (systemd's journal keeps it), plus an optional
 * append-only file. Security events go to their own stream so an operator can
 * watch `security.log` alone. Secrets never reach a log: callers pass hashes
 * or ids, and {@link redact} masks fields whose names look secret.
 *
 * @module
 */

/** Severity of a log line. */
export type Level = "debug" | "info" | "warn" | "error" | "security";

/** Structured fields of a log line. Values must be JSON-serialisable. */
export type Fields = Record<string, unknown>;

/** A sink receives one serialised line (without the trailing newline). */
export type Sink = (line: string, level: Level) => void;

const SECRET_FIELD = /(secret|password|token|key|hmac|signature|text|body)$/i;

/**
 * Masks values whose field names suggest a secret or message content.
 * Message text is never logged: only its length.
 */
export function redact(fields: Fields): Fields {
  const out: Fields = {};
  for (const [k, v] of Object.entries(fields)) {
    if (SECRET_FIELD.test(k) && typeof v === "string") {
      out[k] = `[redacted ${v.length} chars]`;
    } else {
      out[k] = v;
    }
  }
  return out;
}

/** A logger bound to one program name. */
export interface Logger {
  /** Debug detail, off unless the logger was created with `debug: true`. */
  debug(event: string, fields?: Fields): void;
  /** Normal operation. */
  info(event: string, fields?: Fields): void;
  /** Something degraded but handled. */
  warn(event: string, fields?: Fields): void;
  /** Something failed. */
  error(event: string, fields?: Fields): void;
  /** A security-relevant event: blocked action, unknown sender, replay, ... */
  security(event: string, fields?: Fields): void;
  /** A logger for a sub-component, sharing the sinks. */
  child(component: string): Logger;
}

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  /** Extra sinks (files, test collectors). stderr is always used unless `quiet`. */
  sinks?: Sink[];
  /** Do not write to stderr (tests). */
  quiet?: boolean;
  /** Emit debug lines. */
  debug?: boolean;
  /** Clock, for tests. */
  now?: () => number;
}

const encoder = new TextEncoder();

/** Creates a logger for `program` (e.g. "joi", "mesh"). */
export function createLogger(program: string, options: LoggerOptions = {}): Logger {
  const sinks = [...(options.sinks ?? [])];
  if (!options.quiet) {
    sinks.push((line) => {
      try {
        Deno.stderr.writeSync(encoder.encode(line + "\n"));
      } catch {
        // stderr closed: nothing sensible left to do
      }
    });
  }
  const now = options.now ?? Date.now;
  const make = (component: string | undefined): Logger => {
    const emit = (level: Level, event: string, fields: Fields = {}) => {
      if (level === "debug" && !options.debug) return;
      const record: Fields = {
        ts: new Date(now()).toISOString(),
        level,
        program,
        ...(component ? { component } : {}),
        event,
        ...redact(fields),
      };
      let line: string;
      try {
        line = JSON.stringify(record);
      } catch {
        line = JSON.stringify({ ts: record.ts, level, program, event, note: "unserialisable" });
      }
      for (const sink of sinks) sink(line, level);
    };
    return {
      debug: (e, f) => emit("debug", e, f),
      info: (e, f) => emit("info", e, f),
      warn: (e, f) => emit("warn", e, f),
      error: (e, f) => emit("error", e, f),
      security: (e, f) => emit("security", e, f),
      child: (c) => make(component ? `${component}.${c}` : c),
    };
  };
  return make(undefined);
}

/**
 * A sink appending to a file (mode 0640). Security lines can be routed to a
 * second file with `onlySecurity`.
 *
 * The file is rotated by logrotate (`log_retention.ts`): at most once per
 * `checkMs` the sink compares the file at `path` with the one it has open,
 * and when it was moved away (or deleted) it opens a new one at `path`. No
 * signal and no copy-and-truncate, so no line is lost between the two.
 */
export function fileSink(path: string, onlySecurity = false, checkMs = 1000): Sink {
  const open = () => Deno.openSync(path, { append: true, create: true, mode: 0o640 });
  let file = open();
  let checked = Date.now();
  const rotated = (): boolean => {
    try {
      return Deno.statSync(path).ino !== file.statSync().ino;
    } catch {
      return true; // moved away and not yet recreated
    }
  };
  return (line, level) => {
    if (onlySecurity && level !== "security") return;
    const now = Date.now();
    if (now - checked >= checkMs) {
      checked = now;
      if (rotated()) {
        try {
          const next = open();
          file.close();
          file = next;
        } catch {
          // cannot open a new file: keep writing to the moved one rather than lose the line
        }
      }
    }
    file.writeSync(encoder.encode(line + "\n"));
  };
}

/** A sink that keeps lines in memory, for tests. */
export function memorySink(): Sink & { lines: Fields[] } {
  const lines: Fields[] = [];
  const sink: Sink = (line) => {
    lines.push(JSON.parse(line));
  };
  return Object.assign(sink, { lines });
}
