/**
 * The switch itself, in the order ai-switch.md gives, failing safe:
 *
 * 1. take the lock; 2. stop the GPU services; 3. flush VRAM (unless
 * `--no-flush`); 4. check, then 5. apply the new ruleset in one transaction
 * and 6. read it back; 7. restart the services; 8. write the state file;
 * 9. append the log line.
 *
 * Any failure after the rules changed restores the previous ruleset (or, if
 * there was none, blocks every domain), restarts the services and leaves the
 * state file as it was; the log says which step failed. A switch to the
 * current domain only checks (and if needed repairs) the live ruleset.
 *
 * @module
 */
import type { Logger } from "../../services/common/log.ts";
import { type AiSwitchConfig, bridgeName, checkTarget } from "./config.ts";
import type { FlushReport, Gpu } from "./gpu.ts";
import type { HistoryEntry, HistoryLog, SwitchResult } from "./history.ts";
import type { Lock } from "./lock.ts";
import type { Nft } from "./nft.ts";
import { matches, renderTable, transaction } from "./ruleset.ts";
import type { Services } from "./services.ts";

/** The steps of a switch, in order. */
export const STEPS = [
  "lock",
  "stop_services",
  "flush_vram",
  "check_rules",
  "apply_rules",
  "verify_rules",
  "start_services",
  "write_state",
  "write_log",
] as const;

/** A step name of {@link STEPS}. */
export type Step = typeof STEPS[number];

/** The warning logged when `--no-flush` is used. */
export const NO_FLUSH_WARNING =
  "VRAM not flushed (--no-flush): isolation weakened, the new domain may read residual model state of the previous one";

/** What the engine is given. Every side effect goes through one of these. */
export interface SwitchDeps {
  /** Resolved infra.yml figures. */
  config: AiSwitchConfig;
  /** nftables driver. */
  nft: Nft;
  /** GPU driver. */
  gpu: Gpu;
  /** GPU services driver. */
  services: Services;
  /** Takes the switch lock. */
  lock: () => Promise<Lock>;
  /** Opens the switch log for appending. */
  openLog: () => Promise<HistoryLog>;
  /** Reads the state file (`null`: none yet). */
  readState: () => Promise<string | null>;
  /** Writes the state file atomically. */
  writeState: (domain: string) => Promise<void>;
  /** Puts back the state read before (`null`: remove). */
  restoreState: (previous: string | null) => Promise<void>;
  /** Clock. */
  now: () => Date;
  /** Progress lines for the operator (stdout). */
  out: (line: string) => void;
  /** Structured log (stderr). */
  logger: Logger;
}

/** What was asked. */
export interface SwitchRequest {
  /** The domain to give access to. */
  domain: string;
  /** Flush VRAM (default true; `--no-flush` sets false). */
  flush: boolean;
  /** Print every step and the exact ruleset, change nothing. */
  dryRun: boolean;
}

/** How a switch ended. */
export interface SwitchOutcome {
  /** `dry-run` for a dry run, otherwise the logged result. */
  result: SwitchResult | "dry-run";
  /** The domain before. */
  from: string | null;
  /** The domain asked for. */
  to: string;
  /** The step that failed and why, for `failed`. */
  failure?: { step: Step; message: string };
  /** What the rollback did (and anything it could not do). */
  rollback: string[];
  /** Warnings (e.g. --no-flush, GPU reset unsupported). */
  warnings: string[];
  /** The flush report, when a flush ran. */
  flush?: FlushReport;
}

class StepError extends Error {
  constructor(readonly step: Step, override readonly cause: unknown) {
    super(`${step}: ${(cause as Error)?.message ?? String(cause)}`);
  }
}

async function step<T>(name: Step, deps: SwitchDeps, fn: () => Promise<T>): Promise<T> {
  deps.out(`ai-switch: ${name}`);
  try {
    return await fn();
  } catch (e) {
    throw new StepError(name, e);
  }
}

/**
 * At boot: puts back the access the state file records, or
 * `ai_access_default` when there is none (then written as the state), in the
 * live rules only: nothing runs on the GPU yet, so no service is stopped and
 * nothing flushed. A recorded domain infra.yml no longer has, or neither a
 * state nor a default, blocks every domain (fail closed).
 */
export async function restoreAccess(deps: SwitchDeps): Promise<SwitchOutcome> {
  const lock = await step("lock", deps, deps.lock).catch((e: StepError) => {
    throw (e.cause as Error) ?? e;
  });
  try {
    const warnings: string[] = [];
    let state: string | null = null;
    try {
      state = await deps.readState();
    } catch (e) {
      warnings.push(`${(e as Error).message}; using ai_access_default`);
    }
    const domain = state ?? deps.config.defaultDomain;
    const log = await deps.openLog();
    try {
      let target: string | undefined;
      try {
        if (domain !== null) target = checkTarget(deps.config, domain);
      } catch (e) {
        warnings.push((e as Error).message);
      }
      if (target === undefined) {
        const outcome: SwitchOutcome = {
          result: "failed",
          from: state,
          to: "none",
          failure: {
            step: "check_rules",
            message: domain === null
              ? "no state file and no ai_access_default in infra.yml"
              : `the recorded domain ${JSON.stringify(domain)} cannot have access`,
          },
          rollback: [],
          warnings,
        };
        await blockAll(deps, outcome);
        await log.append(entry(deps, outcome, false));
        return outcome;
      }
      if (state === null) {
        await step("write_state", deps, () => deps.writeState(target));
        deps.out(`ai-switch: no state file: ${target} (ai_access_default) has access`);
      }
      const outcome: SwitchOutcome = {
        result: "ok",
        from: state,
        to: target,
        rollback: [],
        warnings,
      };
      return await sameDomain(deps, log, outcome, await deps.nft.list(), renderTable(target));
    } finally {
      log.close();
    }
  } finally {
    lock.release();
  }
}

/** Runs (or, with `dryRun`, describes) a switch. Never throws for a failed step: see the outcome. */
export async function runSwitch(deps: SwitchDeps, req: SwitchRequest): Promise<SwitchOutcome> {
  const target = checkTarget(deps.config, req.domain);
  if (req.dryRun) return await dryRun(deps, req, target);
  const lock = await step("lock", deps, deps.lock).catch((e: StepError) => {
    throw (e.cause as Error) ?? e;
  });
  try {
    return await locked(deps, req, target);
  } finally {
    lock.release();
  }
}

async function locked(
  deps: SwitchDeps,
  req: SwitchRequest,
  target: string,
): Promise<SwitchOutcome> {
  const warnings: string[] = [];
  let previous: string | null;
  try {
    previous = await deps.readState();
  } catch (e) {
    previous = null;
    warnings.push(`${(e as Error).message}; treating the current domain as unknown`);
  }
  const log = await deps.openLog();
  try {
    const expected = renderTable(target);
    const live = await deps.nft.list();
    const outcome: SwitchOutcome = {
      result: "ok",
      from: previous,
      to: target,
      rollback: [],
      warnings,
    };
    if (previous === target) {
      return await sameDomain(deps, log, outcome, live, expected);
    }
    if (!req.flush) {
      warnings.push(NO_FLUSH_WARNING);
      deps.logger.warn("isolation_weakened", { from: previous, to: target, reason: "no_flush" });
    }
    let rulesChanged = false;
    let stateWritten = false;
    try {
      await step("stop_services", deps, () => deps.services.stopAll());
      if (req.flush) {
        outcome.flush = await step("flush_vram", deps, () => deps.gpu.flush());
        if (!outcome.flush.reset.ok) {
          warnings.push(`GPU reset not supported (non-fatal): ${outcome.flush.reset.error}`);
        }
      }
      await step("check_rules", deps, () => deps.nft.check(expected));
      await step("apply_rules", deps, () => deps.nft.apply(expected));
      rulesChanged = true;
      await step("verify_rules", deps, async () => {
        const now = await deps.nft.list();
        if (!matches(now, expected)) {
          throw new Error(`the live table differs from the ruleset just applied for ${target}`);
        }
      });
      await step("start_services", deps, () => deps.services.startAll());
      await step("write_state", deps, async () => {
        stateWritten = true;
        await deps.writeState(target);
      });
      await step("write_log", deps, () => log.append(entry(deps, outcome, req.flush)));
      deps.logger.info("switched", { from: previous, to: target, flush: req.flush });
      return outcome;
    } catch (e) {
      const err = e instanceof StepError ? e : new StepError("write_log", e);
      outcome.result = "failed";
      outcome.failure = { step: err.step, message: (err.cause as Error)?.message ?? String(err) };
      deps.logger.error("switch_failed", { from: previous, to: target, step: err.step });
      // A failed transaction changes nothing; make sure rather than assume.
      if (err.step === "apply_rules") rulesChanged = !(await unchanged(deps, live));
      await rollback(deps, outcome, { live, rulesChanged, stateWritten, previous });
      if (err.step !== "write_log") {
        try {
          await log.append(entry(deps, outcome, req.flush));
        } catch (le) {
          outcome.rollback.push(`could not write the log line: ${(le as Error).message}`);
        }
      }
      return outcome;
    }
  } finally {
    log.close();
  }
}

async function sameDomain(
  deps: SwitchDeps,
  log: HistoryLog,
  outcome: SwitchOutcome,
  live: string | null,
  expected: string,
): Promise<SwitchOutcome> {
  if (matches(live, expected)) {
    deps.out(`ai-switch: ${outcome.to} already has access and the live rules match: nothing to do`);
    outcome.result = "unchanged";
    await log.append(entry(deps, outcome, false));
    return outcome;
  }
  deps.out(`ai-switch: ${outcome.to} is current but the live rules do not match: repairing`);
  deps.logger.security("ruleset_drift", { domain: outcome.to, table_present: live !== null });
  try {
    await step("check_rules", deps, () => deps.nft.check(expected));
    await step("apply_rules", deps, () => deps.nft.apply(expected));
    await step("verify_rules", deps, async () => {
      if (!matches(await deps.nft.list(), expected)) {
        throw new Error(`the live table still differs after the repair`);
      }
    });
    outcome.result = "repaired";
  } catch (e) {
    const err = e as StepError;
    outcome.result = "failed";
    outcome.failure = { step: err.step, message: (err.cause as Error)?.message ?? String(err) };
    // Whatever is live does not match: fail closed.
    await blockAll(deps, outcome);
  }
  await log.append(entry(deps, outcome, false));
  return outcome;
}

async function rollback(
  deps: SwitchDeps,
  outcome: SwitchOutcome,
  s: { live: string | null; rulesChanged: boolean; stateWritten: boolean; previous: string | null },
): Promise<void> {
  deps.out(`ai-switch: rolling back after ${outcome.failure?.step} failed`);
  if (s.rulesChanged) {
    if (s.live !== null) {
      try {
        await deps.nft.apply(s.live);
        if (!matches(await deps.nft.list(), s.live)) throw new Error("restored table differs");
        outcome.rollback.push("previous ruleset restored");
      } catch (e) {
        outcome.rollback.push(`previous ruleset not restored (${(e as Error).message})`);
        await blockAll(deps, outcome);
      }
    } else {
      await blockAll(deps, outcome);
    }
  }
  try {
    await deps.services.startAll();
    outcome.rollback.push("services restarted");
  } catch (e) {
    outcome.rollback.push(`services not restarted: ${(e as Error).message}`);
  }
  if (s.stateWritten) {
    try {
      await deps.restoreState(s.previous);
      outcome.rollback.push("state file restored");
    } catch (e) {
      outcome.rollback.push(`state file not restored: ${(e as Error).message}`);
    }
  }
}

async function unchanged(deps: SwitchDeps, live: string | null): Promise<boolean> {
  try {
    const now = await deps.nft.list();
    return live === null ? now === null : matches(now, live);
  } catch {
    return false;
  }
}

async function blockAll(deps: SwitchDeps, outcome: SwitchOutcome): Promise<void> {
  try {
    await deps.nft.apply(renderTable(null));
    outcome.rollback.push("all domains blocked from ai-tools");
  } catch (e) {
    outcome.rollback.push(`could not block all domains: ${(e as Error).message}`);
    deps.logger.security("block_all_failed", { error: (e as Error).message });
  }
}

function entry(deps: SwitchDeps, o: SwitchOutcome, flush: boolean): HistoryEntry {
  const e: HistoryEntry = {
    time: deps.now().toISOString(),
    from: o.from ?? "none",
    to: o.to,
    flush,
    result: o.result === "dry-run" ? "unchanged" : o.result,
  };
  if (o.failure) {
    e.step = o.failure.step;
    e.error = o.failure.message;
  }
  if (o.warnings.length) e.warning = o.warnings.join("; ");
  return e;
}

async function dryRun(
  deps: SwitchDeps,
  req: SwitchRequest,
  target: string,
): Promise<SwitchOutcome> {
  const out = deps.out;
  let previous: string | null = null;
  try {
    previous = await deps.readState();
  } catch (e) {
    out(`dry-run: ${(e as Error).message}`);
  }
  const expected = renderTable(target);
  const live = await deps.nft.list();
  const outcome: SwitchOutcome = {
    result: "dry-run",
    from: previous,
    to: target,
    rollback: [],
    warnings: req.flush ? [] : [NO_FLUSH_WARNING],
  };
  out(`dry-run: nothing will be changed`);
  out(`dry-run: current domain: ${previous ?? "none"}; requested: ${target}`);
  if (previous === target) {
    out(
      matches(live, expected)
        ? `dry-run: the live rules match ${target}: nothing to do`
        : `dry-run: the live rules do not match ${target}: would repair them with the ruleset below`,
    );
  } else {
    out(`dry-run: lock: would take the switch lock`);
    for (const unit of deps.config.gpuServices) {
      const [bin, args] = deps.services.command("stop", unit);
      out(`dry-run: stop_services: ${[bin, ...args].join(" ")}`);
    }
    if (req.flush) {
      const apps = await deps.gpu.computeApps().catch((e) => (e as Error).message);
      out(
        `dry-run: flush_vram: would kill GPU compute processes ${
          typeof apps === "string" ? `(listing failed: ${apps})` : JSON.stringify(apps)
        }, attempt --gpu-reset, then check none remains and memory dropped`,
      );
    } else {
      out(`dry-run: flush_vram: skipped (--no-flush): ${NO_FLUSH_WARNING}`);
    }
    out(
      `dry-run: check_rules + apply_rules: one transaction, only ${
        bridgeName(target)
      } <-> net-ai-tools:`,
    );
  }
  for (const line of transaction(expected).trimEnd().split("\n")) out(line);
  try {
    await deps.nft.check(expected);
    out(`dry-run: nft -c accepts this ruleset`);
  } catch (e) {
    out(`dry-run: nft -c rejects this ruleset: ${(e as Error).message}`);
  }
  if (previous !== target) {
    for (const unit of deps.config.gpuServices) {
      const [bin, args] = deps.services.command("start", unit);
      out(`dry-run: start_services: ${[bin, ...args].join(" ")}`);
    }
    out(`dry-run: write_state: would write "${target}" to ${deps.config.stateFile}`);
    out(`dry-run: write_log: would append one line to ${deps.config.logFile}`);
  }
  return outcome;
}
