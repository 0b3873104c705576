/**
 * Command line of `joi-revoke-recipient`: parses arguments, runs
 * {@link revoke}, prints the plan, progress and the validation, and returns
 * the exit code: 0 done and valid, 1 done but validation failed or joi not
 * reloaded, 2 refused
 * (nothing changed), 3 failed midway (re-run the same command to finish).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { formatFinding, formatSummary } from "../validate/mod.ts";
import { RevokeUsageError } from "./edit.ts";
import { recover } from "./journal.ts";
import { revoke, withRevokeLock } from "./revoke.ts";

/** Usage text. */
export const USAGE = `usage: joi-revoke-recipient [options] <recipient_id>
       joi-revoke-recipient --recover [options]
  --dry-run          print the plan, change nothing
  --recover          only finish or roll back an interrupted revocation
  --config-dir=DIR   joi's policy files (default <root>/etc/joi)
  --pid-file=FILE    joi's pid file when systemd is not running (default /run/joi/joi.pid)
  --root=PREFIX      staged tree for the validation (see joi-validate-config)
  --passwd-file=F, --group-file=F, --lsattr-bin=PATH   as joi-validate-config
exit status: 0 revoked and valid, 1 revoked but validation failed or joi not reloaded,
             2 refused (nothing changed), 3 failed midway (re-run to finish)`;

/** Output sinks. */
export interface Io {
  /** stdout line. */
  out: (line: string) => void;
  /** stderr line. */
  err: (line: string) => void;
}

const consoleIo: Io = { out: (l) => console.log(l), err: (l) => console.error(l) };

/** Blocks forever after announcing `step` (the test barrier; needs --test-hooks). */
function pauseAt(step: string, io: Io): (s: string) => Promise<void> {
  return async (s) => {
    if (s !== step) return;
    io.err(`PAUSED ${s}`);
    await new Promise(() => setInterval(() => {}, 1 << 30));
  };
}

/** Runs the CLI; returns the exit code. */
export async function main(args: string[], io: Io = consoleIo): Promise<number> {
  let values, positionals;
  try {
    ({ values, positionals } = parseArgs({
      args,
      strict: true,
      allowPositionals: true,
      options: {
        "dry-run": { type: "boolean", default: false },
        recover: { type: "boolean", default: false },
        "config-dir": { type: "string" },
        "pid-file": { type: "string" },
        root: { type: "string" },
        "passwd-file": { type: "string" },
        "group-file": { type: "string" },
        "lsattr-bin": { type: "string" },
        "test-hooks": { type: "boolean", default: false },
        "pause-at": { type: "string" },
        help: { type: "boolean", default: false },
      },
    }));
    if (values["pause-at"] !== undefined && !values["test-hooks"]) {
      throw new Error("--pause-at is a test hook: it is accepted only with --test-hooks");
    }
    if (!values.help && !values.recover && positionals.length !== 1) {
      throw new Error(`expected exactly one recipient id, got ${positionals.length}`);
    }
  } catch (e) {
    io.err(`joi-revoke-recipient: ${e instanceof Error ? e.message : e}`);
    io.err(USAGE);
    return 2;
  }
  if (values.help) {
    io.out(USAGE);
    return 0;
  }
  const root = (values.root ?? "").replace(/\/+$/, "");
  const configDir = values["config-dir"] ?? `${root}/etc/joi`;
  if (values.recover) {
    try {
      const r = await withRevokeLock(configDir, () => recover(configDir));
      io.out(
        r.kind === "none"
          ? "nothing to recover"
          : r.kind === "rolled_back"
          ? "rolled back an uncommitted revocation (no policy file had changed)"
          : `finished the interrupted revocation of ${r.intent.recipient}`,
      );
      return 0;
    } catch (e) {
      io.err(`joi-revoke-recipient: ${e instanceof Error ? e.message : e}`);
      return 3;
    }
  }
  try {
    const result = await revoke({
      recipient: positionals[0]!, // exactly one, checked with the arguments above
      configDir,
      root: values.root,
      passwdFile: values["passwd-file"],
      groupFile: values["group-file"],
      lsattrBin: values["lsattr-bin"],
      pidFile: values["pid-file"],
      dryRun: values["dry-run"],
      log: io.out,
      hook: values["pause-at"] ? pauseAt(values["pause-at"], io) : undefined,
    });
    if (!result.report) return 0;
    for (const f of result.report.findings) io.out(formatFinding(f));
    io.out(formatSummary(result.report.summary));
    if (!result.reloaded) {
      io.err(
        "joi-revoke-recipient: the files are updated but joi was not told to reload: " +
          "until it is (systemctl reload joi, or kill -HUP its pid) it still admits the recipient",
      );
      return 1;
    }
    return result.report.summary.ok ? 0 : 1;
  } catch (e) {
    if (e instanceof RevokeUsageError) {
      io.err(`joi-revoke-recipient: ${e.message}`);
      return 2;
    }
    io.err(
      `joi-revoke-recipient: ${e instanceof Error ? e.message : e}\n` +
        `Re-run the same command to finish: every step is idempotent and an interrupted ` +
        `file update is completed or rolled back first.`,
    );
    return 3;
  }
}
