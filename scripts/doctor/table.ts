/**
 * `deno task doctor`'s verdicts and the table they are printed in: one row per
 * check, green (fine), yellow (works, but look at it) or red (broken: the
 * fix column says what to do). The exit status is 1 when any row is red.
 *
 * @module
 */

/** How a check came out. */
export type Status = "green" | "yellow" | "red";

/** One row of the table. */
export interface Row {
  /** What was checked (`ollama`, `keys`, `link`...). */
  check: string;
  status: Status;
  /** What was found, in one line. */
  detail: string;
  /** What to do about it (always given for red, often for yellow). */
  fix?: string | undefined;
}

/** A green row. */
export const green = (check: string, detail: string): Row => ({ check, status: "green", detail });
/** A yellow row. */
export const yellow = (check: string, detail: string, fix?: string): Row => ({
  check,
  status: "yellow",
  detail,
  fix,
});
/** A red row. */
export const red = (check: string, detail: string, fix: string): Row => ({
  check,
  status: "red",
  detail,
  fix,
});

const COLOUR: Record<Status, string> = { green: "32", yellow: "33", red: "31" };
const WORD: Record<Status, string> = { green: "GREEN", yellow: "YELLOW", red: "RED" };

/** Renders the rows as a table (ANSI colours when `colour`). */
export function renderTable(rows: readonly Row[], colour: boolean): string[] {
  const width = (f: (r: Row) => string, title: string) =>
    Math.min(40, Math.max(title.length, ...rows.map((r) => f(r).length)));
  const w1 = width((r) => r.check, "CHECK");
  const w2 = 6;
  const pad = (s: string, w: number) => s.length >= w ? s : s + " ".repeat(w - s.length);
  const out = [`${pad("CHECK", w1)}  ${pad("STATUS", w2)}  DETAIL  ->  FIX`];
  for (const r of rows) {
    const word = pad(WORD[r.status], w2);
    const status = colour ? `\x1b[${COLOUR[r.status]}m${word}\x1b[0m` : word;
    out.push(`${pad(r.check, w1)}  ${status}  ${r.detail}${r.fix ? `  ->  ${r.fix}` : ""}`);
  }
  const n = (s: Status) => rows.filter((r) => r.status === s).length;
  out.push("");
  out.push(`${n("green")} green, ${n("yellow")} yellow, ${n("red")} red`);
  return out;
}

/** The exit status of a run: 1 when a row is red. */
export function exitCode(rows: readonly Row[]): number {
  return rows.some((r) => r.status === "red") ? 1 : 0;
}
