/**
 * `joi-revoke-recipient <id>` as a library: plan (pure), then carry out the
 * documented procedure without its fragile parts. Order, chosen so that a
 * crash at any point can be finished by simply running the command again:
 *
 * 1. finish or roll back an earlier interrupted commit;
 * 2. edit the YAML files structurally and validate the whole new policy set
 *    in memory (nothing is written if it would not load);
 * 3. accounts: leave every group, lock and expire, end processes; then the
 *    retrieval files: joi.service rewritten without their channels' sockets,
 *    those channels' retrieve units removed, their sockets stopped (each step
 *    is idempotent, and the recipient is still in recipients.yaml, so a re-run
 *    repeats the plan);
 * 4. commit the files (staging, backup, intent, renames: see journal.ts);
 * 5. tell joi to reload; 6. run joi-validate-config.
 *
 * @module
 */
import {
  formatIssue,
  loadPolicies,
  parsePolicySet,
  type Policies,
  PolicyError,
  policyFileNames,
  policyNames,
} from "../../services/common/policy/mod.ts";
import { type Accounts, readAccounts } from "../provision/system.ts";
import { type Action as ProvisionAction, describe, diff, systemView } from "../provision/plan.ts";
import { applyActions } from "../provision/apply.ts";
import { householdUnitsOf } from "../provision/provision.ts";
import { retrieveUnitNames } from "../../services/common/units/mod.ts";
import { INSTALLED } from "../validate/options.ts";
import { expectedState, type Report, validate, type ValidateOptions } from "../validate/mod.ts";
import {
  type EditedFile,
  editTexts,
  type Revocation,
  revocationOf,
  RevokeUsageError,
} from "./edit.ts";
import {
  commit,
  discard,
  recover,
  type Recovery,
  stage,
  STAGING_DIR,
  type StepHook,
} from "./journal.ts";
import {
  accountCommands,
  type Command,
  DEFAULT_TOOLS,
  type Reload,
  reloadMethod,
  retireCommands,
  runCommand,
  show,
  systemdRunning,
  type Tools,
} from "./system.ts";

/** Options of a revocation. */
export interface RevokeOptions extends ValidateOptions {
  /** The recipient id. */
  recipient: string;
  /** joi's policy folder (default `<root>/etc/joi`). */
  configDir?: string | undefined;
  /** joi's pid file, used when systemd is not running (default `/run/joi/joi.pid`). */
  pidFile?: string | undefined;
  /** Only print the plan. */
  dryRun?: boolean | undefined;
  /** Binaries. */
  tools?: Tools | undefined;
  /** Whether systemd runs (default: detected). */
  systemd?: boolean | undefined;
  /** Clock (backup names). */
  now?: (() => Date) | undefined;
  /** Progress lines. */
  log?: ((line: string) => void) | undefined;
  /** Test barrier at each step. */
  hook?: StepHook | undefined;
}

/** The plan of a revocation. */
export interface RevokePlan {
  /** What is removed. */
  revocation: Revocation;
  /** New text of each edited file. */
  edits: Partial<Record<EditedFile, string>>;
  /** Account commands. */
  commands: Command[];
  /** How joi is reloaded. */
  reload: Reload;
  /**
   * The retrieval files brought to the household without the recipient
   * (joi.service rewritten, their channels' retrieve units removed: provision's
   * own actions), and the systemd commands that retire those units.
   */
  retrieval: { actions: ProvisionAction[]; retire: Command[] };
  /** Purge commands printed, never run. */
  purge: string[];
}

/** Result of {@link revoke}. */
export interface RevokeResult {
  /** The plan that was (or, with dryRun, would be) carried out. */
  plan: RevokePlan;
  /** The recovery of an earlier interrupted run. */
  recovery: Recovery;
  /** The validation after the revocation (undefined with dryRun). */
  report?: Report;
  /** Whether joi was told to reload (false: its memory still admits the recipient). */
  reloaded: boolean;
}

/** Computes the plan without changing anything. */
export function planRevoke(o: RevokeOptions, configDir: string, accounts: Accounts): RevokePlan {
  let policies: Policies;
  try {
    policies = loadPolicies(configDir);
  } catch (e) {
    const detail = e instanceof PolicyError ? e.issues.map(formatIssue).join("\n") : String(e);
    throw new RevokeUsageError(
      `the current policies do not load; fix them first (nothing changed):\n${detail}`,
    );
  }
  const revocation = revocationOf(policies.recipients, o.recipient);
  const current: Record<string, string> = Object.fromEntries(
    policyNames.map((n) => policyFileNames[n])
      .map((f) => [f, Deno.readTextFileSync(`${configDir}/${f}`)]),
  );
  const edits = editTexts(current as Record<EditedFile, string>, revocation);
  const all: Record<string, string> = { ...current, ...edits };
  let after: Policies;
  try {
    after = parsePolicySet(all, configDir);
  } catch (e) {
    const detail = e instanceof PolicyError ? e.issues.map(formatIssue).join("\n") : String(e);
    throw new RevokeUsageError(
      `the policies without ${o.recipient} would not load (nothing changed):\n${detail}`,
    );
  }
  const tools = o.tools ?? DEFAULT_TOOLS;
  const root = (o.root ?? "").replace(/\/+$/, "");
  const state = `${root}${INSTALLED.stateDir}`;
  const id = revocation.id;
  // provision's view of the household without the recipient, limited to its
  // generated files: what to rewrite (joi.service, the audit rules that name
  // the units) and what to remove (their channels' retrieve units)
  const want = expectedState(after.recipients, householdUnitsOf(after));
  const units = `${INSTALLED.unitsDir}/`;
  const retrieval = diff(want, systemView(accounts, root, true)).filter((a) =>
    (a.kind === "write" && a.spec.content !== undefined) ||
    (a.kind === "remove" && a.path.startsWith(units))
  );
  const systemd = o.systemd ?? systemdRunning();
  const sockets = revocation.channels.map((c) => retrieveUnitNames(c).socket);
  return {
    revocation,
    edits,
    retrieval: { actions: retrieval, retire: retireCommands(tools, sockets, systemd) },
    commands: accountCommands(revocation, accounts, tools),
    reload: reloadMethod(tools, o.pidFile ?? "/run/joi/joi.pid", systemd),
    purge: [
      `rm -rf ${state}/knowledge/${id}`,
      `rm -rf ${state}/knowledge/group/${id}_public`,
      `rm -rf ${state}/data/${id}`,
    ],
  };
}

/** Human lines of a plan. */
export function planLines(p: RevokePlan): string[] {
  const r = p.revocation;
  return [
    `Revoking recipient ${r.id} (users ${r.users.join(", ")}; channels ${r.channels.join(", ")})`,
    ...p.commands.map((c) => `  run: ${show(c)}`),
    ...p.retrieval.actions.map((a) => `  retrieval: ${describe(a)}`),
    ...p.retrieval.retire.map((c) => `  run: ${show(c)}`),
    ...Object.keys(p.edits).map((f) => `  edit: ${f} (structural, atomic, with a backup)`),
    p.reload.kind === "none"
      ? `  reload: not possible: ${p.reload.reason}`
      : `  reload: ${show(p.reload.command)}`,
    "  then: joi-validate-config",
    "OPTIONAL purge of the recipient's folders (not done; run by hand if wanted):",
    ...p.purge.map((l) => `  ${l}`),
  ];
}

/** The lock file that serialises revocations (flock, released when the process dies). */
export const LOCK_FILE = ".revoke.lock";

/** Runs `fn` holding an exclusive (blocking) lock on `<configDir>/.revoke.lock`; waits while another revocation holds it. */
export async function withRevokeLock<T>(configDir: string, fn: () => Promise<T>): Promise<T> {
  const f = Deno.openSync(`${configDir}/${LOCK_FILE}`, {
    read: true,
    write: true,
    create: true,
    mode: 0o600,
  });
  try {
    try {
      f.lockSync(true);
    } catch (e) {
      throw new RevokeUsageError(`cannot lock ${configDir}/${LOCK_FILE}: ${e}`);
    }
    return await fn();
  } finally {
    f.close();
  }
}

/** Revokes a recipient (or, with `dryRun`, only plans it). One revocation at a time. */
export function revoke(o: RevokeOptions): Promise<RevokeResult> {
  const root = (o.root ?? "").replace(/\/+$/, "");
  const configDir = o.configDir ?? `${root}${INSTALLED.configDir}`;
  if (o.dryRun) return revokeLocked(o);
  let interrupted = true;
  try {
    Deno.lstatSync(`${configDir}/${STAGING_DIR}`);
  } catch {
    interrupted = false;
  }
  if (!interrupted) {
    // refuse an unknown id or a broken config before touching anything (not even the lock file)
    const passwd = o.passwdFile ?? `${root}/etc/passwd`;
    const group = o.groupFile ?? `${root}/etc/group`;
    planRevoke(o, configDir, readAccounts(passwd, group));
  }
  return withRevokeLock(configDir, () => revokeLocked(o));
}

async function revokeLocked(o: RevokeOptions): Promise<RevokeResult> {
  const log = o.log ?? (() => {});
  const hook = o.hook ?? (() => {});
  const root = (o.root ?? "").replace(/\/+$/, "");
  const configDir = o.configDir ?? `${root}${INSTALLED.configDir}`;
  const passwd = o.passwdFile ?? `${root}/etc/passwd`;
  const group = o.groupFile ?? `${root}/etc/group`;
  const recovery: Recovery = o.dryRun ? { kind: "none" } : await recover(configDir);
  if (recovery.kind === "rolled_forward") {
    log(`finished the interrupted revocation of ${recovery.intent.recipient}`);
  } else if (recovery.kind === "rolled_back") {
    log("discarded an uncommitted staging folder left by an interrupted run");
  }
  const plan = planRevoke(o, configDir, readAccounts(passwd, group));
  for (const line of planLines(plan)) log(line);
  if (o.dryRun) return { plan, recovery, reloaded: false };

  for (const c of plan.commands) await runCommand(c);
  await hook("accounts");
  applyActions(plan.retrieval.actions, { root, etc: passwd.replace(/\/passwd$/, "") });
  for (const c of plan.retrieval.retire) await runCommand(c);
  await hook("retrieval");

  const files = Object.keys(plan.edits);
  const allFiles = policyNames.map((n) => policyFileNames[n]);
  discard(configDir);
  stage(configDir, allFiles, plan.edits as Record<string, string>);
  await hook("staged");
  // only the edited files are renamed; the unchanged copies are discarded with the folder
  await commit(configDir, plan.revocation.id, files, (o.now ?? (() => new Date()))(), hook);
  log(`policy files updated: ${files.join(", ")}`);

  let reloaded = false;
  if (plan.reload.kind === "none") {
    log(`ERROR: joi not reloaded: ${plan.reload.reason}`);
  } else {
    reloaded = true;
    await runCommand(plan.reload.command);
    log(`joi told to reload (${show(plan.reload.command)}); the mesh syncs on its next request`);
  }
  await hook("reloaded");
  const report = validate({ ...o, configDir, passwdFile: passwd, groupFile: group });
  return { plan, recovery, report, reloaded };
}
