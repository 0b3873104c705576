/**
 * The `ai-switch` command line: `switch`, `restore`, `status`, `history`.
 *
 * ```
 * ai-switch switch --domain D [--no-flush] [--dry-run]
 * ai-switch restore              (at boot: the state file's domain, or ai_access_default)
 * ai-switch status [--json]
 * ai-switch history [--json] [--limit N]
 * ```
 *
 * Paths default to infra.yml's `global.ai_switch` values; binaries are run by
 * absolute path and default to their Debian locations. Every path can be set
 * by an explicit option (tests point them at stand-ins), never by the
 * environment.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { createLogger, type Logger } from "../../services/common/log.ts";
import { type AiSwitchConfig, AiSwitchError } from "./config.ts";
import { type Bins, DEFAULT_BINS, runCommand, type Runner } from "./exec.ts";
import { Gpu } from "./gpu.ts";
import { formatEntry, openHistory, readHistory } from "./history.ts";
import { loadConfig } from "./infra_source.ts";
import { acquireLock } from "./lock.ts";
import { Nft } from "./nft.ts";
import { Services } from "./services.ts";
import { readState, restoreState, writeState } from "./state.ts";
import { formatStatus, readStatus } from "./status.ts";
import { restoreAccess, runSwitch, type SwitchDeps } from "./switch.ts";

/** Default infra.yml location, relative to the code directory. */
export const DEFAULT_INFRA = "./policies/infra.yml";
/**
 * Default lock file, in a folder only root may write: in world-writable
 * `/run/lock` any local user could create the lock file first and block every
 * switch.
 */
export const DEFAULT_LOCK_FILE = "/run/anklume/ai-switch.lock";
/** Default wait for a running switch, seconds. */
export const DEFAULT_LOCK_TIMEOUT_S = 60;

/**
 * Exit codes: `drift` is `status` finding live rules that do not match the
 * current domain (for monitoring; `switch --domain <current>` repairs them).
 */
export const EXIT = { ok: 0, failed: 1, usage: 2, drift: 3 } as const;

const USAGE = `usage:
  ai-switch switch --domain D [--no-flush] [--dry-run]
  ai-switch restore              (at boot: the state file's domain, or ai_access_default)
  ai-switch status [--json]      (exit 3 if the live rules do not match the current domain)
  ai-switch history [--json] [--limit N]
options (all commands):
  --infra PATH        infra.yml (default ${DEFAULT_INFRA})
  --state-file PATH   default: infra.yml global.ai_switch.state_file
  --log-file PATH     default: infra.yml global.ai_switch.log_file
  --lock-file PATH    default ${DEFAULT_LOCK_FILE}
  --lock-timeout S    wait for a running switch, seconds (default ${DEFAULT_LOCK_TIMEOUT_S})
  --nft-bin, --nvidia-smi-bin, --systemctl-bin, --incus-bin, --kill-bin PATH
                      absolute paths of the binaries (defaults: Debian locations)`;

/** What the CLI needs from the outside world (tests inject output sinks). */
export interface CliIo {
  /** stdout lines. */
  out: (line: string) => void;
  /** stderr lines. */
  err: (line: string) => void;
  /** Runner for the binaries. */
  run: Runner;
  /** Clock. */
  now: () => Date;
  /** Structured logger. */
  logger: Logger;
}

/** The real I/O. */
export function realIo(): CliIo {
  return {
    out: (l) => console.log(l),
    err: (l) => console.error(l),
    run: runCommand,
    now: () => new Date(),
    logger: createLogger("ai_switch"),
  };
}

/** Parsed options. */
interface Options {
  command: "switch" | "restore" | "status" | "history";
  domain?: string | undefined;
  flush: boolean;
  dryRun: boolean;
  json: boolean;
  limit?: number | undefined;
  infra: string;
  stateFile?: string | undefined;
  logFile?: string | undefined;
  lockFile: string;
  lockTimeoutMs: number;
  bins: Bins;
}

function absolute(name: string, value: string | undefined, fallback: string): string {
  const v = value ?? fallback;
  if (!v.startsWith("/")) {
    throw new AiSwitchError(`--${name} must be an absolute path, got ${JSON.stringify(v)}`);
  }
  return v;
}

/** Parses `args`; throws {@link AiSwitchError} with what is wrong. */
export function parseOptions(args: string[]): Options {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      strict: true,
      options: {
        domain: { type: "string" },
        "no-flush": { type: "boolean", default: false },
        "dry-run": { type: "boolean", default: false },
        json: { type: "boolean", default: false },
        limit: { type: "string" },
        infra: { type: "string" },
        "state-file": { type: "string" },
        "log-file": { type: "string" },
        "lock-file": { type: "string" },
        "lock-timeout": { type: "string" },
        "nft-bin": { type: "string" },
        "nvidia-smi-bin": { type: "string" },
        "systemctl-bin": { type: "string" },
        "incus-bin": { type: "string" },
        "kill-bin": { type: "string" },
        help: { type: "boolean", default: false },
      },
    });
  } catch (e) {
    throw new AiSwitchError(`${(e as Error).message}\n${USAGE}`);
  }
  const { values: v, positionals } = parsed;
  if (v.help) throw new AiSwitchError(USAGE);
  if (positionals.length !== 1) {
    throw new AiSwitchError(
      `expected exactly one command (switch, restore, status, history)\n${USAGE}`,
    );
  }
  const command = positionals[0];
  if (
    command !== "switch" && command !== "restore" && command !== "status" &&
    command !== "history"
  ) {
    throw new AiSwitchError(`unknown command ${JSON.stringify(command)}\n${USAGE}`);
  }
  if (command === "switch" && !v.domain) {
    throw new AiSwitchError(`switch needs --domain D\n${USAGE}`);
  }
  if (command !== "switch" && (v.domain || v["no-flush"] || v["dry-run"])) {
    throw new AiSwitchError(`--domain, --no-flush and --dry-run belong to switch\n${USAGE}`);
  }
  const seconds = v["lock-timeout"] === undefined
    ? DEFAULT_LOCK_TIMEOUT_S
    : Number(v["lock-timeout"]);
  if (!Number.isFinite(seconds) || seconds < 0 || seconds > 3600) {
    throw new AiSwitchError(`--lock-timeout must be seconds in 0..3600, got ${v["lock-timeout"]}`);
  }
  let limit: number | undefined;
  if (v.limit !== undefined) {
    limit = Number(v.limit);
    if (!Number.isSafeInteger(limit) || limit < 1) {
      throw new AiSwitchError(`--limit must be a positive integer, got ${v.limit}`);
    }
  }
  return {
    command,
    domain: v.domain,
    flush: !v["no-flush"],
    dryRun: v["dry-run"],
    json: v.json,
    limit,
    infra: v.infra ?? DEFAULT_INFRA,
    stateFile: v["state-file"] === undefined
      ? undefined
      : absolute("state-file", v["state-file"], ""),
    logFile: v["log-file"] === undefined ? undefined : absolute("log-file", v["log-file"], ""),
    lockFile: absolute("lock-file", v["lock-file"], DEFAULT_LOCK_FILE),
    lockTimeoutMs: seconds * 1000,
    bins: {
      nft: absolute("nft-bin", v["nft-bin"], DEFAULT_BINS.nft),
      nvidiaSmi: absolute("nvidia-smi-bin", v["nvidia-smi-bin"], DEFAULT_BINS.nvidiaSmi),
      systemctl: absolute("systemctl-bin", v["systemctl-bin"], DEFAULT_BINS.systemctl),
      incus: absolute("incus-bin", v["incus-bin"], DEFAULT_BINS.incus),
      kill: absolute("kill-bin", v["kill-bin"], DEFAULT_BINS.kill),
    },
  };
}

/** Builds the engine's dependencies from options, config and I/O. */
export function buildDeps(o: Options, config: AiSwitchConfig, io: CliIo): SwitchDeps {
  return {
    config,
    nft: new Nft(io.run, o.bins.nft),
    gpu: new Gpu(io.run, o.bins.nvidiaSmi, o.bins.kill),
    services: new Services(io.run, o.bins, config),
    lock: () =>
      acquireLock(o.lockFile, {
        timeoutMs: o.lockTimeoutMs,
        onWait: (holder) => io.out(`ai-switch: another switch (${holder}) is running: waiting`),
      }),
    openLog: () => openHistory(config.logFile),
    readState: () => readState(config.stateFile),
    writeState: (d) => writeState(config.stateFile, d),
    restoreState: (p) => restoreState(config.stateFile, p),
    now: io.now,
    out: io.out,
    logger: io.logger,
  };
}

/** Runs the CLI; returns the exit code. Never throws. */
export async function main(args: string[], io: CliIo = realIo()): Promise<number> {
  let o: Options;
  try {
    o = parseOptions(args);
  } catch (e) {
    io.err(`ai-switch: ${(e as Error).message}`);
    return EXIT.usage;
  }
  try {
    const { config: loaded, notes } = loadConfig(o.infra);
    for (const n of notes) io.err(`ai-switch: note: ${n}`);
    const config: AiSwitchConfig = {
      ...loaded,
      stateFile: o.stateFile ?? loaded.stateFile,
      logFile: o.logFile ?? loaded.logFile,
    };
    const deps = buildDeps(o, config, io);
    if (o.command === "status") {
      const s = await readStatus(config, deps);
      if (o.json) io.out(JSON.stringify(s));
      else for (const l of formatStatus(s)) io.out(l);
      return s.policy === "exclusive" && !s.rulesMatch ? EXIT.drift : EXIT.ok;
    }
    if (o.command === "history") {
      const { entries, errors } = await readHistory(config.logFile);
      const shown = o.limit ? entries.slice(-o.limit) : entries;
      if (o.json) io.out(JSON.stringify({ entries: shown, errors }));
      else {
        for (const e of shown) io.out(formatEntry(e));
        for (const e of errors) io.err(`ai-switch: ${config.logFile}: ${e}`);
      }
      return EXIT.ok;
    }
    if (o.command === "restore" && config.policy !== "exclusive") {
      io.out("ai-switch: ai_access_policy is not exclusive: nothing to restore");
      return EXIT.ok;
    }
    const outcome = o.command === "restore"
      ? await restoreAccess(deps)
      : await runSwitch(deps, { domain: o.domain!, flush: o.flush, dryRun: o.dryRun });
    for (const w of outcome.warnings) io.err(`ai-switch: warning: ${w}`);
    if (outcome.result === "failed") {
      io.err(
        `ai-switch: switch ${outcome.from ?? "none"} -> ${outcome.to} failed at ` +
          `${outcome.failure!.step}: ${outcome.failure!.message}`,
      );
      io.err(`ai-switch: rollback: ${outcome.rollback.join("; ") || "nothing to undo"}`);
      return EXIT.failed;
    }
    if (outcome.result !== "dry-run") {
      io.out(`ai-switch: ${outcome.from ?? "none"} -> ${outcome.to}: ${outcome.result}`);
    }
    return EXIT.ok;
  } catch (e) {
    if (e instanceof AiSwitchError) {
      io.err(`ai-switch: ${e.message}`);
      return EXIT.usage;
    }
    if (e instanceof Deno.errors.NotCapable) {
      io.err(
        `ai-switch: ${(e as Error).message}: the path is outside ai-switch's sandbox; ` +
          `keep infra.yml's paths and the ai_switch entry of services/common/permissions/mod.ts in step`,
      );
      return EXIT.failed;
    }
    io.err(`ai-switch: ${(e as Error).message}`);
    return EXIT.failed;
  }
}
