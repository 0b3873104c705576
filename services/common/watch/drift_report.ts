/**
 * The drift report: the daily `joi-validate-config` (root, from
 * `joi-validate.timer`) writes its verdict to a small JSON file that joi may
 * read and nothing else: the file is how the result crosses from root to
 * joi, so joi gains no right beyond reading it (no sudo, no socket to root,
 * no read of what validate reads). joi's drift watch tells the owner which
 * checks failed.
 *
 * ```json
 * {"version": 1, "at": 1767225600000, "ok": false,
 *  "summary": {"critical": 0, "errors": 1, "warnings": 2},
 *  "failed": [{"severity": "ERROR", "code": "unit_drift"}]}
 * ```
 *
 * Only severities and the stable check codes travel: no paths, user names or
 * file contents of the root-only side.
 *
 * @module
 */
import { z } from "zod";

/** Where validate writes the report in production (dir `root:joi 0750`, file `0640`). */
export const DRIFT_REPORT_PATH = "/var/lib/joi-validate/report.json";

/** Schema of the report. */
export const driftReportSchema = z.object({
  version: z.literal(1),
  at: z.number().int().nonnegative(),
  ok: z.boolean(),
  summary: z.object({
    critical: z.number().int().nonnegative(),
    errors: z.number().int().nonnegative(),
    warnings: z.number().int().nonnegative(),
  }).strict(),
  failed: z.array(
    z.object({
      severity: z.enum(["CRITICAL", "ERROR", "WARNING"]),
      code: z.string().regex(/^[a-z0-9_]{1,64}$/),
    }).strict(),
  ).max(200),
}).strict();

/** A drift report. */
export type DriftReport = z.infer<typeof driftReportSchema>;

/** Builds a report from validate's findings. */
export function driftReport(
  findings: readonly { severity: "CRITICAL" | "ERROR" | "WARNING"; code: string }[],
  at: number,
): DriftReport {
  const count = (s: string) => findings.filter((f) => f.severity === s).length;
  const summary = {
    critical: count("CRITICAL"),
    errors: count("ERROR"),
    warnings: count("WARNING"),
  };
  return {
    version: 1,
    at,
    ok: summary.critical === 0 && summary.errors === 0,
    summary,
    failed: findings
      .filter((f) => /^[a-z0-9_]{1,64}$/.test(f.code))
      .slice(0, 200)
      .map((f) => ({ severity: f.severity, code: f.code })),
  };
}

/**
 * Writes `report` to `path` atomically (a temporary file beside it, renamed
 * over), mode 0640: the directory's group (joi) may read it.
 */
export function writeDriftReport(path: string, report: DriftReport): void {
  const tmp = `${path}.tmp`;
  Deno.writeTextFileSync(tmp, JSON.stringify(report) + "\n", { mode: 0o640 });
  Deno.chmodSync(tmp, 0o640);
  Deno.renameSync(tmp, path);
}

/** Reads a report: undefined when there is none yet; throws naming what is wrong. */
export async function readDriftReport(path: string): Promise<DriftReport | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw new Error(`cannot read ${path}: ${(e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new Error(`${path} is not JSON`);
  }
  const r = driftReportSchema.safeParse(json);
  if (!r.success) throw new Error(`${path} is not a drift report: ${r.error.issues[0]?.message}`);
  return r.data;
}
