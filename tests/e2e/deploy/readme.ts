/**
 * The README's deployment guide as steps a test can run verbatim.
 *
 * The section "Deploying on Proxmox" marks each command block with where it
 * runs, in an HTML comment on the line before the fence:
 *
 * - `<!-- e2e:run build -->` a ```sh block run on the build host;
 * - `<!-- e2e:run joi -->` (or `mesh`, `openhab`) run as root on that VM;
 * - `<!-- e2e:copy var/bundle/joi joi:/root/joi -->` the prose step "copy this
 *   to the VM" (a path on the build host, relative to where the build blocks
 *   left off, and a VM with a destination there);
 * - `<!-- e2e:day2 knowledge joi -->` a ```sh block that is not part of the
 *   installation: a named day-2 operation (adding knowledge, ...) the test runs
 *   when its scenario needs it, on that host.
 *
 * Each host's blocks run in one shell session, in order, so `cd` and `export`
 * carry over. A command is a line, or lines joined by a trailing `\`. A line
 * `$EDITOR <files>` is the operator editing files: the test does its edit
 * there. Placeholders in angle brackets (`<this repository>`) are replaced by
 * values the test gives; one the test does not know is an error, so a guide
 * that grows a placeholder cannot run with it silently.
 *
 * Every ```sh block of the section must carry a marker: a block the test does
 * not run would be a step nobody checks.
 *
 * @module
 */

/** Where a step runs. */
export type StepHost = "build" | "joi" | "mesh" | "openhab";

/** The hosts a marker may name. */
export const STEP_HOSTS: readonly StepHost[] = ["build", "joi", "mesh", "openhab"];

/** One command of a block (possibly joined from continued lines). */
export interface Command {
  /** The command text, verbatim (continuation lines joined with their `\`). */
  text: string;
  /** README line number of its first line. */
  line: number;
  /** For `$EDITOR <files>`: the files the operator edits. */
  edit?: string[];
}

/** A step of the guide. */
export type Step =
  | { kind: "run"; host: StepHost; line: number; commands: Command[] }
  | { kind: "copy"; from: string; host: Exclude<StepHost, "build">; to: string; line: number };

/** A named day-2 operation (not run during deployment). */
export interface Day2 {
  name: string;
  host: StepHost;
  line: number;
  commands: Command[];
}

/** The deployment section, parsed. */
export interface Guide {
  /** The installation, in order. */
  steps: Step[];
  /** Day-2 operations by name. */
  day2: Record<string, Day2>;
}

/** The heading that opens the deployment section. */
export const DEPLOY_HEADING = /^## Deploying on Proxmox/;

/** A README problem, with its line. */
export class ReadmeError extends Error {
  constructor(line: number, message: string) {
    super(`README.md:${line}: ${message}`);
    this.name = "ReadmeError";
  }
}

const RUN = /^<!--\s*e2e:run\s+(\S+)\s*-->$/;
const DAY2 = /^<!--\s*e2e:day2\s+([a-z][a-z0-9_-]*)\s+(\S+)\s*-->$/;
const COPY = /^<!--\s*e2e:copy\s+(\S+)\s+(\S+?):(\/\S*)\s*-->$/;
const MARKER = /^<!--\s*e2e:/;
const EDITOR = /^\$EDITOR\s+(.+?)\s*(?:#.*)?$/;

/** The installation steps of `readme`'s deployment section. */
export function deploymentSteps(readme: string): Step[] {
  return parseGuide(readme).steps;
}

/** Parses the deployment section of `readme` (the whole README's text). */
export function parseGuide(readme: string): Guide {
  const lines = readme.split("\n");
  const start = lines.findIndex((l) => DEPLOY_HEADING.test(l));
  if (start < 0) throw new ReadmeError(1, `no section matching ${DEPLOY_HEADING}`);
  let end = lines.findIndex((l, i) => i > start && /^## /.test(l));
  if (end < 0) end = lines.length;
  const steps: Step[] = [];
  const day2: Record<string, Day2> = {};
  let pending: { host: StepHost; line: number; day2?: string } | null = null;
  for (let i = start + 1; i < end; i++) {
    const text = lines[i]!.trim();
    const at = i + 1;
    if (MARKER.test(text)) {
      if (pending) throw new ReadmeError(pending.line, "e2e marker without a ```sh block");
      const run = RUN.exec(text);
      const copy = COPY.exec(text);
      const named = DAY2.exec(text);
      if (run || named) {
        const host = (run ? run[1] : named![2]) as StepHost;
        if (!STEP_HOSTS.includes(host)) {
          throw new ReadmeError(at, `e2e marker names host "${host}", not one of ${STEP_HOSTS}`);
        }
        if (named && day2[named[1]!]) {
          throw new ReadmeError(
            at,
            `a second e2e:day2 ${named[1]} (first at ${day2[named[1]!]!.line})`,
          );
        }
        pending = named ? { host, line: at, day2: named[1]! } : { host, line: at };
      } else if (copy) {
        const host = copy[2] as StepHost;
        if (host === "build" || !STEP_HOSTS.includes(host)) {
          throw new ReadmeError(at, `e2e:copy names "${copy[2]}", not a VM`);
        }
        steps.push({ kind: "copy", from: copy[1]!, host, to: copy[3]!, line: at });
      } else {
        throw new ReadmeError(at, `unknown e2e marker: ${text}`);
      }
      continue;
    }
    const fence = /^```(\S*)/.exec(text);
    if (!fence) {
      if (pending && text !== "") {
        throw new ReadmeError(pending.line, "e2e marker not followed by a ```sh block");
      }
      continue;
    }
    // a fenced block: find its end
    let close = i + 1;
    while (close < end && lines[close]!.trim() !== "```") close++;
    if (close >= end) throw new ReadmeError(at, "unclosed code block");
    const lang = fence[1];
    if (lang === "sh" || lang === "bash" || lang === "shell") {
      if (!pending) {
        throw new ReadmeError(at, "a command block without an e2e marker: say where it runs");
      }
      const commands = commandsOf(lines.slice(i + 1, close), i + 2);
      if (pending.day2) {
        day2[pending.day2] = {
          name: pending.day2,
          host: pending.host,
          line: pending.line,
          commands,
        };
      } else {
        steps.push({ kind: "run", host: pending.host, line: pending.line, commands });
      }
      pending = null;
    } else if (pending) {
      throw new ReadmeError(pending.line, `e2e marker before a \`\`\`${lang} block`);
    }
    i = close;
  }
  if (pending) throw new ReadmeError(pending.line, "e2e marker without a ```sh block");
  return { steps, day2 };
}

/** The commands of a block's lines (`first` is the README line of the first). */
export function commandsOf(block: string[], first: number): Command[] {
  const out: Command[] = [];
  let current: { text: string; line: number } | null = null;
  block.forEach((raw, k) => {
    const line = first + k;
    if (current) {
      current.text += `\n${raw}`;
    } else {
      const t = raw.trim();
      if (t === "" || t.startsWith("#")) return;
      current = { text: raw, line };
    }
    if (!/\\$/.test(raw)) {
      const cmd: Command = { text: current.text, line: current.line };
      const edit = EDITOR.exec(current.text.trim());
      if (edit) cmd.edit = edit[1]!.split(/\s+/);
      out.push(cmd);
      current = null;
    }
  });
  if (current) {
    throw new ReadmeError((current as { line: number }).line, "a command ends with `\\`");
  }
  return out;
}

const PLACEHOLDER = /<([A-Za-z][\w .@-]*?[\w])>/g;

/**
 * `text` with its placeholders replaced from `values` (keyed by the text
 * between the brackets); an unknown placeholder is an error naming the line.
 */
export function fillPlaceholders(
  text: string,
  line: number,
  values: Record<string, string>,
): string {
  return text.replace(PLACEHOLDER, (whole, name: string) => {
    const v = values[name];
    if (v === undefined) {
      throw new ReadmeError(
        line,
        `placeholder ${whole} has no value in the test (known: ${
          Object.keys(values).map((k) => `<${k}>`).join(", ") || "none"
        })`,
      );
    }
    return v;
  });
}
