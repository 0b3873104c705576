/**
 * Check family: files whose exact content provision writes (the sudoers file
 * and the audit rules). The installed file must equal what provision would
 * generate now, byte for byte, and have its owner and mode (sudoers 0440:
 * `visudo -c` does not check the mode).
 *
 * @module
 */
import type { PathSpec } from "../provision/plan.ts";
import { type Accounts, pathState } from "../provision/system.ts";
import { Findings, fmtMode } from "./finding.ts";
import { namesOf } from "./tree_check.ts";

/** The first line where two texts differ, 1-based, with both versions. */
export function firstDifference(
  installed: string,
  expected: string,
): { line: number; installed: string; expected: string } | undefined {
  if (installed === expected) return undefined;
  const a = installed.split("\n");
  const b = expected.split("\n");
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if (a[i] !== b[i]) {
      return { line: i + 1, installed: a[i] ?? "(end of file)", expected: b[i] ?? "(end of file)" };
    }
  }
  return { line: a.length, installed: "", expected: "" };
}

const shorten = (s: string, n = 120) => s.length > n ? `${s.slice(0, n)}...` : s;

/** Checks every content file of `specs` under `root`. */
export function checkContentFiles(
  specs: readonly PathSpec[],
  accounts: Accounts,
  root: string,
): Findings {
  const f = new Findings();
  const names = namesOf(accounts);
  for (const spec of specs) {
    if (spec.content === undefined) continue;
    const kind = spec.validate === "sudoers" ? "sudoers" : "audit_rules";
    const at = root + spec.path;
    const st = pathState(at);
    if (!st || st.type !== "file") {
      f.add(
        kind === "sudoers" ? "ERROR" : "WARNING",
        `${kind}_missing`,
        `${at} ${st ? `is a ${st.type}, not a file` : "does not exist"}`,
        at,
        "run joi-provision",
      );
      continue;
    }
    let text: string;
    try {
      text = Deno.readTextFileSync(at);
    } catch (e) {
      f.error(
        "unreadable",
        `cannot read ${at}: ${e instanceof Error ? e.message : e}`,
        at,
        "run joi-validate-config as root",
      );
      continue;
    }
    const d = firstDifference(text, spec.content);
    if (d) {
      f.add(
        kind === "sudoers" ? "CRITICAL" : "ERROR",
        `${kind}_modified`,
        `${at} differs from what provision generates, first at line ${d.line}: ` +
          `installed ${JSON.stringify(shorten(d.installed))}, ` +
          `expected ${JSON.stringify(shorten(d.expected))}`,
        `${at}:${d.line}`,
        "re-run joi-provision to rewrite it (never edit it by hand)",
      );
    }
    if (st.uid !== 0 || st.gid !== 0) {
      f.error(
        `${kind}_owner`,
        `${at} is owned by ${names.user(st.uid)}:${names.group(st.gid)}, expected root:root`,
        at,
        `chown root:root ${at}`,
      );
    }
    if (st.mode !== spec.mode) {
      f.error(
        `${kind}_mode`,
        `${at} has mode ${fmtMode(st.mode)}, expected ${fmtMode(spec.mode)}`,
        at,
        `chmod ${fmtMode(spec.mode)} ${at}`,
      );
    }
  }
  return f;
}
