/**
 * What `deno task install --role R` lays out on a VM, as a list of actions
 * computed before anything is touched (so `--dry-run` prints exactly what a
 * real run does). Paths are absolute system paths; {@link applyPlan} prefixes
 * them with `--root` for staging.
 *
 * @module
 */
import { renderJournald, renderLogrotate } from "../../services/common/log_retention.ts";
import type { UnitFile } from "../../services/common/units.ts";

/** The three machine roles. */
export type Role = "joi" | "mesh" | "openhab";

/** One step of an installation. */
export type Action =
  | { kind: "user"; name: string; groups: string[]; note: string }
  | { kind: "group"; name: string; note: string }
  | { kind: "dir"; path: string; mode: number; owner: string; group: string }
  | { kind: "copy"; from: string; to: string; mode: number; overwrite: boolean }
  | { kind: "tree"; from: string; to: string; note: string }
  | {
    kind: "file";
    path: string;
    content: string;
    mode: number;
    owner: string;
    group: string;
    overwrite: boolean;
  }
  | { kind: "key"; path: string; owner: string }
  | { kind: "cache"; dir: string; entries: string[] }
  | { kind: "note"; text: string };

/** Per-role facts. */
export interface RoleSpec {
  /** The service user. */
  user: string;
  /** Its supplementary groups. */
  groups: string[];
  /** Where its policies live. */
  configDir: string;
  /** The policy files it reads. */
  policyFiles: string[];
  /** Keys it generates here (the HMAC keys are made once, on joi, and copied). */
  generatedKeys: string[];
  /** Keys that must be copied from elsewhere (never generated twice). */
  copiedKeys: string[];
  /** Its units. */
  units: string[];
  /** Its entry modules (pre-cached). */
  entries: string[];
  /** State directories it owns. */
  stateDirs: string[];
}

/** The roles of the architecture document's three VMs. */
export const ROLES: Record<Role, RoleSpec> = {
  joi: {
    user: "joi",
    groups: [],
    configDir: "/etc/joi",
    policyFiles: [
      "recipients.yaml",
      "channel_users.yaml",
      "identities.yaml",
      "groups.yaml",
      "policy.yaml",
      "llm.yaml",
      "tools.yaml",
      "network.yaml",
      "infra.yml",
    ],
    generatedKeys: ["mesh_to_joi.key", "joi_to_mesh.key", "openhab_to_joi.key", "memory.key"],
    copiedKeys: [],
    units: ["joi.service", "joi-knowledge.service", "joi-validate.service", "joi-validate.timer"],
    entries: [
      "services/joi/main.ts",
      "services/knowledge_broker/main.ts",
      "scripts/validate.ts",
      "scripts/provision.ts",
      "scripts/doctor.ts",
    ],
    stateDirs: ["/var/lib/joi", "/var/log/joi"],
  },
  mesh: {
    user: "joi-mesh",
    groups: ["signal-cli"],
    configDir: "/etc/mesh-proxy",
    policyFiles: ["identities.yaml", "groups.yaml", "policy.yaml", "network.yaml", "mesh.yaml"],
    generatedKeys: [],
    copiedKeys: ["mesh_to_joi.key", "joi_to_mesh.key"],
    units: ["joi-mesh.service", "signal-cli.socket", "signal-cli.service"],
    entries: ["services/mesh/main.ts", "scripts/doctor.ts"],
    stateDirs: ["/var/log/joi"],
  },
  openhab: {
    user: "joi-relay",
    groups: [],
    configDir: "/etc/joi-relay",
    policyFiles: ["policy.yaml", "network.yaml"],
    generatedKeys: [],
    copiedKeys: ["openhab_token", "openhab_to_joi.key"],
    units: ["joi-openhab-relay.service"],
    entries: ["services/openhab_relay/main.ts", "scripts/doctor.ts"],
    stateDirs: [],
  },
};

/** What the plan needs from outside. */
export interface PlanInput {
  role: Role;
  /** The repository (source of code and example policies). */
  repo: string;
  /** The real Deno binary to copy as the retrieve entry point. */
  denoBinary: string;
  /** The rendered units (from the manifest). */
  units: UnitFile[];
  /** `/opt/joi/deno.json`: npm packages from node_modules only, production tasks. */
  denoJson: string;
}

/** The code shipped to `/opt/joi` (tests and local-run files stay behind). */
export const CODE_PATHS = [
  "deno.json",
  "deno.lock",
  "README.md",
  "services",
  "scripts",
  "policies",
];

/** Computes the installation plan of one role. */
export function planInstall(input: PlanInput): Action[] {
  const r = ROLES[input.role];
  const a: Action[] = [];
  for (const g of r.groups) {
    a.push({ kind: "group", name: g, note: "the signal-cli socket's group" });
  }
  a.push({ kind: "user", name: r.user, groups: r.groups, note: `runs the ${input.role} service` });
  a.push({ kind: "dir", path: "/opt/joi", mode: 0o755, owner: "root", group: "root" });
  for (const p of CODE_PATHS) {
    a.push({
      kind: "tree",
      from: `${input.repo}/${p}`,
      to: `/opt/joi/${p}`,
      note: "code, root-owned, read-only",
    });
  }
  a.push({
    kind: "tree",
    from: `${input.repo}/node_modules`,
    to: "/opt/joi/node_modules",
    note: "npm packages from deno.lock, so services start with --cached-only",
  });
  a.push({
    kind: "file",
    path: "/opt/joi/deno.json",
    content: input.denoJson,
    mode: 0o644,
    owner: "root",
    group: "root",
    overwrite: true,
  });
  a.push({ kind: "cache", dir: "/opt/joi/.deno", entries: r.entries });
  a.push({ kind: "dir", path: r.configDir, mode: 0o750, owner: "root", group: r.user });
  for (const f of r.policyFiles) {
    a.push({
      kind: "copy",
      from: `${input.repo}/policies/${f}`,
      to: `${r.configDir}/${f}`,
      mode: 0o640,
      overwrite: false,
    });
  }
  a.push({
    kind: "dir",
    path: `${r.configDir}/secrets`,
    mode: 0o700,
    owner: r.user,
    group: r.user,
  });
  for (const k of r.generatedKeys) {
    a.push({ kind: "key", path: `${r.configDir}/secrets/${k}`, owner: r.user });
  }
  for (const k of r.copiedKeys) {
    a.push({
      kind: "note",
      text: k === "openhab_token"
        ? `create an API token in openHAB (Settings > API Security) and write it to ${r.configDir}/secrets/openhab_token (0600 ${r.user})`
        : `copy ${k} from the joi VM's /etc/joi/secrets/ to ${r.configDir}/secrets/${k} (0600 ${r.user})`,
    });
  }
  for (const d of r.stateDirs) {
    a.push({ kind: "dir", path: d, mode: 0o750, owner: r.user, group: r.user });
  }
  if (input.role === "joi") {
    a.push({
      kind: "copy",
      from: input.denoBinary,
      to: "/usr/local/bin/joi-retrieve",
      mode: 0o755,
      overwrite: true,
    });
    a.push({
      kind: "note",
      text: "then: chattr +i /usr/local/bin/joi-retrieve; deno task provision; joi-validate-config",
    });
  }
  if (input.role === "mesh") {
    a.push({
      kind: "file",
      path: "/etc/mesh-proxy/signal-cli.env",
      content:
        "# The Signal account signal-cli serves (E.164), read by signal-cli.service\nSIGNAL_ACCOUNT=+15550000000\n",
      mode: 0o640,
      owner: "root",
      group: "signal-cli",
      overwrite: false,
    });
  }
  a.push({
    kind: "note",
    text:
      `copy ca.crt, ${input.role}.crt, ${input.role}.key (0600 nebula) and ${input.role}.yml as /etc/nebula/config.yml from the build host's var/nebula/`,
  });
  for (const name of ["nebula.service", ...r.units]) {
    const unit = input.units.find((u) => u.name === name);
    if (!unit) throw new Error(`install: no rendered unit named ${name}`);
    a.push({
      kind: "file",
      path: `/etc/systemd/system/${name}`,
      content: unit.text,
      mode: 0o644,
      owner: "root",
      group: "root",
      overwrite: true,
    });
  }
  a.push(...retentionActions(input.role));
  a.push({
    kind: "note",
    text: `then: systemctl daemon-reload && systemctl enable --now ${
      r.units.filter((u) => !u.endsWith(".service") || !u.startsWith("joi-validate")).join(" ")
    }`,
  });
  return a;
}

/**
 * Log retention (logrotate, journald) on every VM, and on joi the folder
 * where the daily validation leaves its report for joi's drift watch (root
 * writes it, the setgid group lets joi read it). See
 * services/common/log_retention.ts and services/common/watch/drift_report.ts.
 */
export function retentionActions(role: Role): Action[] {
  const a: Action[] = [];
  if (role === "joi") {
    a.push({
      kind: "dir",
      path: "/var/lib/joi-validate",
      mode: 0o2750,
      owner: "root",
      group: "joi",
    });
  }
  const rotate = renderLogrotate(role);
  if (rotate !== null) {
    a.push({ kind: "dir", path: "/etc/logrotate.d", mode: 0o755, owner: "root", group: "root" });
    a.push({
      kind: "file",
      path: "/etc/logrotate.d/joi",
      content: rotate,
      mode: 0o644,
      owner: "root",
      group: "root",
      overwrite: true,
    });
  }
  a.push({
    kind: "dir",
    path: "/etc/systemd/journald.conf.d",
    mode: 0o755,
    owner: "root",
    group: "root",
  });
  a.push({
    kind: "file",
    path: "/etc/systemd/journald.conf.d/joi.conf",
    content: renderJournald(),
    mode: 0o644,
    owner: "root",
    group: "root",
    overwrite: true,
  });
  return a;
}

/** One line per action, for `--dry-run`. */
export function describe(action: Action, root: string): string {
  const at = (p: string) => (root === "/" ? p : `${root}${p}`);
  switch (action.kind) {
    case "user":
      return `user   ${action.name}${
        action.groups.length ? ` (groups ${action.groups.join(",")})` : ""
      }: ${action.note}`;
    case "group":
      return `group  ${action.name}: ${action.note}`;
    case "dir":
      return `dir    ${at(action.path)} ${action.mode.toString(8)} ${action.owner}:${action.group}`;
    case "copy":
      return `copy   ${action.from} -> ${at(action.to)} ${action.mode.toString(8)}${
        action.overwrite ? "" : " (kept if present)"
      }`;
    case "tree":
      return `tree   ${action.from} -> ${at(action.to)}: ${action.note}`;
    case "file":
      return `file   ${at(action.path)} ${action.mode.toString(8)} ${action.owner}:${action.group}${
        action.overwrite ? "" : " (kept if present)"
      }`;
    case "key":
      return `key    ${at(action.path)} 0600 ${action.owner} (generated if absent)`;
    case "cache":
      return `cache  ${at(action.dir)}: ${action.entries.join(", ")}`;
    case "note":
      return `note   ${action.text}`;
  }
}
