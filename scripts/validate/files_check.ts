/**
 * Check family: files whose exact content provision writes (joi.service and
 * the retrieve units, the audit rules; the sudoers file where retrieval runs
 * through sudo). The installed file must equal what provision would generate
 * now, byte for byte, and have its owner and mode; and no file provision
 * removes (a revoked channel's units, a leftover sudoers file) may remain.
 *
 * @module
 */
import type { DesiredState, PathSpec } from "../provision/plan.ts";
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
    const kind = spec.validate === "sudoers"
      ? "sudoers"
      : spec.path.endsWith(".rules")
      ? "audit_rules"
      : "retrieval_unit";
    // who runs as whom is decided by these two: a changed one is critical
    const decisive = kind !== "audit_rules";
    const at = root + spec.path;
    const st = pathState(at);
    if (!st || st.type !== "file") {
      f.add(
        decisive ? "ERROR" : "WARNING",
        `${kind}_missing`,
        `${at} ${st ? `is a ${st.type}, not a file` : "does not exist"}`,
        at,
        "run joi-provision (then systemctl daemon-reload)",
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
        decisive ? "CRITICAL" : "ERROR",
        `${kind}_modified`,
        `${at} differs from what provision generates, first at line ${d.line}: ` +
          `installed ${JSON.stringify(shorten(d.installed))}, ` +
          `expected ${JSON.stringify(shorten(d.expected))}`,
        `${at}:${d.line}`,
        "re-run joi-provision to rewrite it (never edit it by hand; use a drop-in for local " +
          "settings)",
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

/** Files provision removes that are still there (read from the folders under `root`). */
export function checkAbsent(want: DesiredState, root: string): Findings {
  const f = new Findings();
  const wanted = new Set(want.paths.map((p) => p.path));
  for (const rule of want.absent) {
    let names: string[];
    try {
      names = [...Deno.readDirSync(root + rule.dir)].map((e) => e.name).sort();
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) continue;
      f.error(
        "unreadable",
        `cannot list ${root + rule.dir}: ${e instanceof Error ? e.message : e}`,
        root + rule.dir,
        "run joi-validate-config as root",
      );
      continue;
    }
    for (const name of names) {
      const path = `${rule.dir}/${name}`;
      if (!rule.stale(name) || wanted.has(path)) continue;
      f.error(
        "stale_retrieval_file",
        `${root + path} should not exist (${rule.why})`,
        root + path,
        "run joi-provision (it removes it), then systemctl daemon-reload",
      );
    }
  }
  return f;
}
