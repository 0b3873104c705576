/**
 * The unit file format: sections of `Key=value` lines, and systemd's quoting
 * of one command-line argument.
 *
 * @module
 */

/** A rendered unit file. */
export interface UnitFile {
  /** File name, e.g. `joi.service`. */
  name: string;
  /** File content. */
  text: string;
}

/** The entries of one section; an undefined value leaves the key out, an array repeats it. */
export type Section = [string, string | string[] | undefined][];

/** Renders sections (in order) as a unit file. */
export function renderUnit(sections: Record<string, Section>): string {
  const out: string[] = [];
  for (const [title, entries] of Object.entries(sections)) {
    if (out.length) out.push("");
    out.push(`[${title}]`);
    for (const [key, value] of entries) {
      if (value === undefined) continue;
      for (const v of Array.isArray(value) ? value : [value]) out.push(`${key}=${v}`);
    }
  }
  return out.join("\n") + "\n";
}

/** systemd's quoting for one ExecStart argument. */
export function execArg(arg: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(arg)) return arg.replaceAll("%", "%%");
  return `"${arg.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("%", "%%")}"`;
}
