/**
 * Findings of `joi-validate-config`: one problem each, with a stable `code`
 * for machines and tests, what is wrong, where, and how to fix it.
 *
 * @module
 */

/** How bad a finding is. CRITICAL and ERROR fail the validation; WARNING does not. */
export type Severity = "CRITICAL" | "ERROR" | "WARNING";

/** One problem found on the system or in the configuration. */
export interface Finding {
  /** CRITICAL (isolation broken), ERROR (drift that must be fixed) or WARNING. */
  severity: Severity;
  /** Stable identifier, e.g. `critical_in_private_group`. */
  code: string;
  /** What is wrong, naming the exact user, group, flag or value. */
  what: string;
  /** Where: a path, a `file:line:col`, a user or group name. */
  where: string;
  /** How to fix it (a command or an edit). */
  fix: string;
}

/** Counts of one validation run. */
export interface Summary {
  /** Number of CRITICAL findings. */
  critical: number;
  /** Number of ERROR findings. */
  errors: number;
  /** Number of WARNING findings. */
  warnings: number;
  /** True when there is no CRITICAL and no ERROR finding. */
  ok: boolean;
}

/** Counts findings by severity. */
export function summarize(findings: readonly Finding[]): Summary {
  const critical = findings.filter((f) => f.severity === "CRITICAL").length;
  const errors = findings.filter((f) => f.severity === "ERROR").length;
  const warnings = findings.filter((f) => f.severity === "WARNING").length;
  return { critical, errors, warnings, ok: critical === 0 && errors === 0 };
}

const ORDER: Record<Severity, number> = { CRITICAL: 0, ERROR: 1, WARNING: 2 };

/** Sorts findings most severe first, keeping the check order within a severity. */
export function sortFindings(findings: readonly Finding[]): Finding[] {
  return findings
    .map((f, i) => ({ f, i }))
    .sort((a, b) => ORDER[a.f.severity] - ORDER[b.f.severity] || a.i - b.i)
    .map(({ f }) => f);
}

/** One line: `SEVERITY code: what [where] -> fix`. */
export function formatFinding(f: Finding): string {
  return `${f.severity} ${f.code}: ${f.what} [${f.where}] -> fix: ${f.fix}`;
}

/** The closing line of a human report. */
export function formatSummary(s: Summary): string {
  const counts = `${s.critical} critical, ${s.errors} errors, ${s.warnings} warnings`;
  return s.ok ? `Configuration validation passed (${counts})` : `VALIDATION FAILED: ${counts}`;
}

/** Collects findings for one check family. */
export class Findings {
  /** The findings in the order they were added. */
  readonly list: Finding[] = [];

  /** Adds a finding. */
  add(severity: Severity, code: string, what: string, where: string, fix: string): void {
    this.list.push({ severity, code, what, where, fix });
  }
  /** Adds a CRITICAL finding. */
  critical(code: string, what: string, where: string, fix: string): void {
    this.add("CRITICAL", code, what, where, fix);
  }
  /** Adds an ERROR finding. */
  error(code: string, what: string, where: string, fix: string): void {
    this.add("ERROR", code, what, where, fix);
  }
  /** Adds a WARNING finding. */
  warning(code: string, what: string, where: string, fix: string): void {
    this.add("WARNING", code, what, where, fix);
  }
}

/** Octal mode as `0750` / `02750`. */
export function fmtMode(mode: number): string {
  return `0${(mode & 0o7777).toString(8)}`;
}
