/**
 * The switch log: one line per switch, appended, human-readable and parsed
 * back by `ai-switch history`:
 *
 * ```
 * 2026-11-22T04:10:00.000Z pro -> perso flush=yes result=ok
 * 2026-11-22T04:11:00.000Z perso -> pro flush=no result=ok warning="VRAM not flushed: ..."
 * 2026-11-22T04:12:00.000Z pro -> anklume flush=yes result=failed step=start_services error="..."
 * ```
 *
 * Values with spaces are JSON strings; nothing secret is ever written.
 *
 * @module
 */

/** How a switch ended. */
export type SwitchResult = "ok" | "failed" | "unchanged" | "repaired";

/** One line of the log. */
export interface HistoryEntry {
  /** When the switch finished (ISO 8601). */
  time: string;
  /** The domain before (`none` if there was no state). */
  from: string;
  /** The domain asked for. */
  to: string;
  /** Whether VRAM was flushed. */
  flush: boolean;
  /** The outcome. */
  result: SwitchResult;
  /** The step that failed, for `failed`. */
  step?: string;
  /** What failed, for `failed`. */
  error?: string;
  /** A warning (e.g. isolation weakened by --no-flush). */
  warning?: string;
}

const RESULTS: SwitchResult[] = ["ok", "failed", "unchanged", "repaired"];
const LINE = /^(\S+) (\S+) -> (\S+) flush=(yes|no) result=(\S+)(.*)$/;
const FIELD = /\s+(step|error|warning)=("(?:[^"\\]|\\.)*"|\S+)/y;

/** Formats an entry as one log line (no newline). */
export function formatEntry(e: HistoryEntry): string {
  let line = `${e.time} ${e.from} -> ${e.to} flush=${e.flush ? "yes" : "no"} result=${e.result}`;
  if (e.step) line += ` step=${e.step}`;
  if (e.error) line += ` error=${JSON.stringify(oneLine(e.error))}`;
  if (e.warning) line += ` warning=${JSON.stringify(oneLine(e.warning))}`;
  return line;
}

function oneLine(s: string): string {
  return s.replace(/[\r\n]+/g, " ").slice(0, 1000);
}

/** Parses one log line; throws naming what is wrong. */
export function parseEntry(line: string): HistoryEntry {
  const m = LINE.exec(line);
  if (!m) throw new Error(`not an ai-switch log line: ${JSON.stringify(line.slice(0, 80))}`);
  // every group of LINE is mandatory, so none is undefined once it matched
  const [, time = "", from = "", to = "", flush, result, rest = ""] = m;
  if (Number.isNaN(Date.parse(time))) throw new Error(`bad time ${JSON.stringify(time)}`);
  if (!RESULTS.includes(result as SwitchResult)) {
    throw new Error(`bad result ${JSON.stringify(result)}`);
  }
  const entry: HistoryEntry = {
    time,
    from,
    to,
    flush: flush === "yes",
    result: result as SwitchResult,
  };
  FIELD.lastIndex = 0;
  let pos = 0;
  while (pos < rest.length) {
    FIELD.lastIndex = pos;
    const f = FIELD.exec(rest);
    if (!f) throw new Error(`bad field at ${JSON.stringify(rest.slice(pos, pos + 40))}`);
    const [, key, raw = ""] = f;
    const value = raw.startsWith('"') ? JSON.parse(raw) as string : raw;
    entry[key as "step" | "error" | "warning"] = value;
    pos = FIELD.lastIndex;
  }
  return entry;
}

/** Parsed lines of a log text; unparsable lines are reported with their number. */
export function parseHistory(text: string): { entries: HistoryEntry[]; errors: string[] } {
  const entries: HistoryEntry[] = [];
  const errors: string[] = [];
  for (const [i, line] of text.split("\n").entries()) {
    if (line.trim() === "") continue;
    try {
      entries.push(parseEntry(line));
    } catch (e) {
      errors.push(`line ${i + 1}: ${(e as Error).message}`);
    }
  }
  return { entries, errors };
}

/** An append handle on the log, opened before a switch changes anything. */
export interface HistoryLog {
  /** Appends one entry as a single write. */
  append(entry: HistoryEntry): Promise<void>;
  /** Closes the file. */
  close(): void;
}

/** Opens `path` for appending (created 0640); fails clearly if it cannot. */
export async function openHistory(path: string): Promise<HistoryLog> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { append: true, create: true, mode: 0o640 });
  } catch (e) {
    throw new Error(
      `cannot open the switch log ${path} for appending: ${(e as Error).message} ` +
        `(create its folder, or set --log-file)`,
    );
  }
  const enc = new TextEncoder();
  return {
    async append(entry) {
      const bytes = enc.encode(formatEntry(entry) + "\n");
      const n = await file.write(bytes);
      if (n !== bytes.length) throw new Error(`short write to ${path} (${n}/${bytes.length})`);
    },
    close() {
      file.close();
    },
  };
}

/** Reads and parses the log at `path` (empty if it does not exist). */
export async function readHistory(
  path: string,
): Promise<{ entries: HistoryEntry[]; errors: string[] }> {
  try {
    return parseHistory(await Deno.readTextFile(path));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return { entries: [], errors: [] };
    throw new Error(`cannot read the switch log ${path}: ${(e as Error).message}`);
  }
}
