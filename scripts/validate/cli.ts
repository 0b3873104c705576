/**
 * Command line of `joi-validate-config`: parses arguments, runs
 * {@link validate}, prints one line per finding and a summary (or JSON with
 * `--json`), and returns the exit code (0 passed, 1 failed, 2 bad usage).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { formatFinding, formatSummary, type Report, validate } from "./mod.ts";
import { driftReport, writeDriftReport } from "../../services/common/watch/drift_report.ts";

/** Usage text. */
export const USAGE = `usage: joi-validate-config [options]
  --config-dir=DIR   joi's policy files (default <root>/etc/joi)
  --root=PREFIX      check a staged tree: every system path is prefixed
  --passwd-file=F    users file (default <root>/etc/passwd)
  --group-file=F     groups file (default <root>/etc/group)
  --lsattr-bin=PATH  lsattr binary (default /usr/bin/lsattr; "" skips the check)
  --setpriv-bin=PATH setpriv binary (default /usr/bin/setpriv; "" skips asking the
                     kernel, as each user, what it may open)
  --json             one JSON object: {ok, summary, findings}
  --report=FILE      also leave the verdict (severities and check codes only) in FILE for
                     joi's drift watch (production: /var/lib/joi-validate/report.json)
exit status: 0 passed, 1 CRITICAL or ERROR findings, 2 bad usage`;

/** Output sinks (injectable for tests). */
export interface Io {
  /** Standard output, one line per call. */
  out: (line: string) => void;
  /** Standard error, one line per call. */
  err: (line: string) => void;
}

const consoleIo: Io = { out: (l) => console.log(l), err: (l) => console.error(l) };

/** Renders a report as text lines. */
export function reportLines(r: Report): string[] {
  return [...r.findings.map(formatFinding), formatSummary(r.summary)];
}

/** Runs the CLI on `args`; returns the exit code. */
export function main(args: string[], io: Io = consoleIo): number {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        "config-dir": { type: "string" },
        root: { type: "string" },
        "passwd-file": { type: "string" },
        "group-file": { type: "string" },
        "lsattr-bin": { type: "string" },
        "setpriv-bin": { type: "string" },
        json: { type: "boolean", default: false },
        report: { type: "string" },
        help: { type: "boolean", default: false },
      },
    }));
  } catch (e) {
    io.err(`joi-validate-config: ${e instanceof Error ? e.message : e}`);
    io.err(USAGE);
    return 2;
  }
  if (values.help) {
    io.out(USAGE);
    return 0;
  }
  let report: Report;
  try {
    report = validate({
      root: values.root,
      configDir: values["config-dir"],
      passwdFile: values["passwd-file"],
      groupFile: values["group-file"],
      lsattrBin: values["lsattr-bin"],
      setprivBin: values["setpriv-bin"],
    });
  } catch (e) {
    io.err(`joi-validate-config: ${e instanceof Error ? e.message : e}`);
    return 2;
  }
  if (values.report) {
    try {
      writeDriftReport(values.report, driftReport(report.findings, Date.now()));
    } catch (e) {
      // validate's verdict stands (it may gate joi's start); the drift watch will see no report
      io.err(
        `joi-validate-config: cannot write the report ${values.report}: ` +
          `${e instanceof Error ? e.message : e}`,
      );
    }
  }
  if (values.json) {
    io.out(
      JSON.stringify({ ok: report.summary.ok, summary: report.summary, findings: report.findings }),
    );
  } else {
    for (const line of reportLines(report)) io.out(line);
  }
  return report.summary.ok ? 0 : 1;
}
