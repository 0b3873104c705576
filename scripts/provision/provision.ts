/**
 * One provision run: load `recipients.yaml` and `channel_users.yaml`, check
 * they agree and that the retrieve code cannot be changed by the service
 * user, compute the plan, apply the difference (unless dry-run), and confirm
 * nothing is left to do.
 *
 * Retrieval `units` (production, the default): joi.service and each channel's
 * retrieve socket and service are rendered from the policies of the config
 * directory into the units folder (then `systemctl daemon-reload`), units of
 * channels the household no longer has are removed, and so is a sudoers file
 * an older install left. Retrieval `sudo` (the local run, the sudo tests):
 * the sudoers file and the retrieve entry point.
 *
 * @module
 */
import { deriveChannels, loadPolicyFile, type Policies } from "../../services/common/policy/mod.ts";
import {
  type Layout,
  localLayout,
  retrieveFixedArgv,
  retrieveSpec,
  sudoersArgsPattern,
} from "../../services/common/permissions/mod.ts";
import {
  householdUnitNames,
  isRetrieveUnitName,
  productionAddressesFrom,
  renderUnits,
  type UnitFile,
  unitHousehold,
} from "../../services/common/units/mod.ts";
import { applyActions, type Tools } from "./apply.ts";
import {
  type Action,
  describe,
  type DesiredState,
  desiredState,
  diff,
  type Retrieval,
  systemView,
} from "./plan.ts";
import { pathState, readAccounts } from "./system.ts";
import type { Recipients } from "../../services/common/policy/recipients.ts";

/** Options of {@link provision}. */
export interface ProvisionOptions {
  /** Directory holding recipients.yaml and channel_users.yaml. */
  configDir: string;
  /** joi's state directory (knowledge/ and data/ go here). */
  stateDir: string;
  /** The code directory holding scripts/retrieve.ts (root-owned in production). */
  codeDir: string;
  /** The retrieve entry point (default `/usr/local/bin/joi-retrieve`). */
  retrieveBin?: string | undefined;
  /** sudoers file (default `/etc/sudoers.d/joi`). */
  sudoersPath?: string | undefined;
  /** audit rules (default `/etc/audit/rules.d/joi.rules`). */
  auditRulesPath?: string | undefined;
  /** sudo log (default `/var/log/joi-sudo.log`). */
  sudoLog?: string | undefined;
  /** A Deno binary to install as the entry point (sudo retrieval; omit: leave it as it is). */
  entrySource?: string | undefined;
  /** How retrieval runs: `units` (production, default) or `sudo` (local run, tests). */
  retrieval?: "units" | "sudo" | undefined;
  /** Where units go (units retrieval; default `/etc/systemd/system`). */
  unitsDir?: string | undefined;
  /** Staging prefix: files only, no account changes. */
  root?: string | undefined;
  /** Print the plan, change nothing. */
  dryRun?: boolean | undefined;
  /** Tools (tests may not override; the defaults are the Debian paths). */
  tools?: Tools | undefined;
  /** Progress lines. */
  onAction?: ((line: string) => void) | undefined;
}

/** What a run did. */
export interface ProvisionResult {
  /** The actions, described (planned for dry-run, applied otherwise). */
  actions: string[];
  /** The raw actions. */
  planned: Action[];
  /** The desired state. */
  want: DesiredState;
  /** Whether anything was changed. */
  applied: boolean;
}

/** The layout provision renders the retrieve command line from. */
export function provisionLayout(o: ProvisionOptions): Layout {
  return {
    ...localLayout(),
    mode: "production",
    codeDir: o.codeDir,
    joiConfigDir: o.configDir,
    joiStateDir: o.stateDir,
    retrieveBin: o.retrieveBin ?? "/usr/local/bin/joi-retrieve",
  };
}

/** Loads recipients.yaml and checks channel_users.yaml lists exactly its channels. */
export function loadHousehold(configDir: string): Recipients {
  const recipients = loadPolicyFile("recipients", `${configDir}/recipients.yaml`);
  const channelUsers = loadPolicyFile("channelUsers", `${configDir}/channel_users.yaml`);
  const want = deriveChannels(recipients);
  const have = channelUsers.allowed_channel_users;
  const problems: string[] = [];
  for (const [c, u] of Object.entries(want)) {
    if (have[c] !== u) problems.push(`${c} should map to ${u} (has ${have[c] ?? "nothing"})`);
  }
  for (const c of Object.keys(have)) {
    if (!(c in want)) problems.push(`${c} does not follow from recipients.yaml`);
  }
  if (problems.length) {
    throw new Error(
      `provision: ${configDir}/channel_users.yaml disagrees with recipients.yaml: ` +
        problems.join("; "),
    );
  }
  return recipients;
}

/**
 * Refuses a retrieve entry module the service user (or anyone but root) could
 * change: the file and each directory up to and including the code directory
 * must be root-owned and not writable by group or others. (The directories
 * above the code directory are the installer's; `validate` checks them.)
 */
export function checkCodeOwnership(entry: string, codeDir: string): void {
  let p = entry;
  const top = absolute(codeDir);
  if (!entry.startsWith(`${top}/`)) {
    throw new Error(`provision: retrieve entry ${entry} is not inside the code directory ${top}`);
  }
  while (p.length >= top.length && p !== "/") {
    const st = pathState(p);
    if (!st) throw new Error(`provision: ${p} does not exist (retrieve entry ${entry})`);
    const sticky = (st.mode & 0o1000) !== 0;
    if (st.type === "symlink" || st.uid !== 0 || ((st.mode & 0o022) !== 0 && !sticky)) {
      throw new Error(
        `provision: ${p} must be a root-owned ${p === entry ? "file" : "directory"} not ` +
          `writable by group or others: whoever can change ${entry} can read every channel's ` +
          `knowledge through sudo`,
      );
    }
    p = p.slice(0, p.lastIndexOf("/"));
  }
}

/** The policies the household's units are rendered from. */
export type UnitPolicies = Pick<Policies, "network" | "llm" | "tools" | "recipients">;

/**
 * The units provision writes for a household: joi.service (its sandbox names
 * each channel's socket) and each channel's retrieve socket and service,
 * rendered for the production layout.
 */
export function householdUnitsOf(p: UnitPolicies): UnitFile[] {
  const household = unitHousehold(p.recipients);
  const names = new Set(householdUnitNames(household));
  return renderUnits(productionAddressesFrom(p.network, p.llm, p.tools), household)
    .filter((u) => names.has(u.name));
}

/** {@link householdUnitsOf} the policies in `configDir`. */
export function householdUnits(configDir: string): UnitFile[] {
  return householdUnitsOf({
    network: loadPolicyFile("network", `${configDir}/network.yaml`),
    llm: loadPolicyFile("llm", `${configDir}/llm.yaml`),
    tools: loadPolicyFile("tools", `${configDir}/tools.yaml`),
    recipients: loadPolicyFile("recipients", `${configDir}/recipients.yaml`),
  });
}

/** True for the unit names provision owns in the units folder. */
export function isHouseholdUnitName(name: string): boolean {
  return name === "joi.service" || isRetrieveUnitName(name);
}

/** Runs provision. */
export function provision(o: ProvisionOptions): ProvisionResult {
  const recipients = loadHousehold(o.configDir);
  const spec = retrieveSpec(provisionLayout(o), Deno.cwd());
  const fixed = retrieveFixedArgv(spec);
  checkCodeOwnership(spec.entry, o.codeDir);
  const sudoersPath = o.sudoersPath ?? "/etc/sudoers.d/joi";
  const retrieval: Retrieval = (o.retrieval ?? "units") === "units"
    ? {
      kind: "units",
      unitsDir: o.unitsDir ?? "/etc/systemd/system",
      units: householdUnits(o.configDir),
      isManagedUnit: isHouseholdUnitName,
      sudoersPath,
    }
    : {
      kind: "sudo",
      argsPattern: sudoersArgsPattern(fixed),
      sudoersPath,
      sudoLog: o.sudoLog ?? "/var/log/joi-sudo.log",
      entrySource: o.entrySource,
    };
  const want = desiredState({
    recipients,
    stateDir: absolute(o.stateDir),
    configDir: absolute(o.configDir),
    retrieveBin: o.retrieveBin ?? "/usr/local/bin/joi-retrieve",
    auditRulesPath: o.auditRulesPath ?? "/etc/audit/rules.d/joi.rules",
    retrieval,
  });
  const root = (o.root ?? "").replace(/\/+$/, "");
  const staging = root !== "";
  const planned = diff(want, systemView(readAccounts(), root, staging));
  const actions = planned.map(describe);
  if (o.dryRun || planned.length === 0) return { actions, planned, want, applied: false };
  applyActions(planned, {
    root,
    tools: o.tools,
    onAction: o.onAction,
    trees: [absolute(o.stateDir)],
  });
  const left = diff(want, systemView(readAccounts(), root, staging));
  if (left.length && !staging) {
    throw new Error(
      `provision: still differs after applying: ${left.map(describe).join("; ")}`,
    );
  }
  return { actions, planned, want, applied: true };
}

function absolute(p: string): string {
  if (p.startsWith("/")) return p.replace(/\/+$/, "");
  const out: string[] = [];
  for (const part of `${Deno.cwd()}/${p}`.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") out.pop();
    else out.push(part);
  }
  return "/" + out.join("/");
}
