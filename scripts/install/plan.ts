/**
 * What `deno task install --role R` lays out on a VM, as a list of actions
 * computed before anything is touched (so `--dry-run` prints exactly what a
 * real run does). Paths are absolute system paths; {@link applyPlan} prefixes
 * them with `--root` for staging.
 *
 * The install runs from that VM's bundle (`deno task bundle --role R` on the
 * build host): the code, the Deno binary, the VM's own Nebula files and its
 * own wire keys. {@link checkBundle} refuses a bundle that holds the CA key or
 * another node's key (a whole checkout copied by mistake).
 *
 * @module
 */
import { renderJournald, renderLogrotate } from "../../services/common/log_retention.ts";
import type { UnitFile } from "../../services/common/units/mod.ts";

/**
 * The machine roles: the three VMs, and the anklume host (ai-switch, which
 * restores the exclusive AI-tools access at boot).
 */
export type Role = "joi" | "mesh" | "openhab" | "anklume";

/** Every role, in the order the guide installs them. */
export const ROLE_NAMES: readonly Role[] = ["joi", "mesh", "openhab", "anklume"];

/** The roles on the Nebula overlay (the three VMs). */
export const VM_ROLES: readonly Role[] = ["joi", "mesh", "openhab"];

/** One step of an installation. */
export type Action =
  | { kind: "user"; name: string; groups: string[]; note: string }
  | { kind: "dir"; path: string; mode: number; owner: string; group: string }
  | {
    kind: "copy";
    from: string;
    to: string;
    mode: number;
    owner: string;
    group: string;
    /** false: an existing file keeps its content (its owner and mode are still set). */
    overwrite: boolean;
  }
  | {
    kind: "tree";
    from: string;
    to: string;
    note: string;
    /** Keep symlinks as symlinks (node_modules); otherwise they are materialised. */
    links?: boolean;
  }
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
  /** The service user (joi's comes from recipients.yaml's `service_user`); `root`: none made. */
  user: string;
  /** Its supplementary groups (created first, as their own users' groups). */
  groups: string[];
  /** Where its policies live. */
  configDir: string;
  /** The policy files it reads. */
  policyFiles: string[];
  /** Keys it generates here and never leave the VM. */
  generatedKeys: string[];
  /** Wire keys it receives in its bundle (made on the build host). */
  bundledKeys: string[];
  /** Secrets the operator writes on the VM (named by a note). */
  operatorSecrets: string[];
  /** The household-independent units install writes (provision writes joi's others). */
  units: string[];
  /** Entry modules pre-cached in `/opt/joi/.deno`. */
  entries: string[];
  /** The units the guide enables on this VM once it is configured. */
  enable: string[];
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
    generatedKeys: ["memory.key"],
    bundledKeys: ["mesh_to_joi.key", "joi_to_mesh.key", "openhab_to_joi.key"],
    operatorSecrets: [],
    units: ["nebula.service", "joi-index.service", "joi-validate.service", "joi-validate.timer"],
    entries: [
      "services/joi/main.ts",
      "scripts/validate.ts",
      "scripts/provision.ts",
      "scripts/doctor.ts",
      "scripts/revoke.ts",
      "scripts/retrieve.ts",
      "scripts/index.ts",
      "scripts/memory.ts",
    ],
    enable: ["nebula.service", "joi.service", "joi-validate.timer"],
  },
  mesh: {
    user: "joi-mesh",
    groups: ["signal-cli"],
    configDir: "/etc/mesh-proxy",
    policyFiles: ["identities.yaml", "groups.yaml", "policy.yaml", "network.yaml", "mesh.yaml"],
    generatedKeys: [],
    bundledKeys: ["mesh_to_joi.key", "joi_to_mesh.key"],
    operatorSecrets: [],
    units: ["nebula.service", "joi-mesh.service", "signal-cli.socket", "signal-cli.service"],
    entries: ["services/mesh/main.ts", "scripts/doctor.ts"],
    enable: ["nebula.service", "signal-cli.socket", "joi-mesh.service"],
  },
  openhab: {
    user: "joi-relay",
    groups: [],
    configDir: "/etc/joi-relay",
    policyFiles: ["policy.yaml", "network.yaml"],
    generatedKeys: [],
    bundledKeys: ["openhab_to_joi.key"],
    operatorSecrets: ["openhab_token"],
    units: ["nebula.service", "joi-openhab-relay.service"],
    entries: ["services/openhab_relay/main.ts", "scripts/doctor.ts"],
    enable: ["nebula.service", "joi-openhab-relay.service"],
  },
  anklume: {
    user: "root",
    groups: [],
    configDir: "",
    policyFiles: [],
    generatedKeys: [],
    bundledKeys: [],
    operatorSecrets: [],
    units: ["anklume-ai-switch.service"],
    entries: ["scripts/ai_switch.ts"],
    enable: ["anklume-ai-switch.service"],
  },
};

/** The wire keys of the deployment (made once on the build host, in `var/keys`). */
export const WIRE_KEYS = ["mesh_to_joi.key", "joi_to_mesh.key", "openhab_to_joi.key"] as const;

/** The Nebula files of a role's bundle (in `var/nebula`), and where install puts them. */
export function nebulaFiles(
  role: Role,
): { name: string; to: string; mode: number; owner: string; group: string }[] {
  if (!VM_ROLES.includes(role)) return [];
  return [
    // certificates are public: each service reads its own for the expiry watch
    // (joi's /health, the doctor); only the key is the nebula user's
    { name: "ca.crt", to: "/etc/nebula/ca.crt", mode: 0o644, owner: "root", group: "nebula" },
    {
      name: `${role}.crt`,
      to: `/etc/nebula/${role}.crt`,
      mode: 0o644,
      owner: "root",
      group: "nebula",
    },
    {
      name: `${role}.key`,
      to: `/etc/nebula/${role}.key`,
      mode: 0o600,
      owner: "nebula",
      group: "nebula",
    },
    {
      name: `${role}.yml`,
      to: "/etc/nebula/config.yml",
      mode: 0o640,
      owner: "root",
      group: "nebula",
    },
    // applied by root in nebula.service's ExecStartPre
    { name: "guard.nft", to: "/etc/nebula/guard.nft", mode: 0o644, owner: "root", group: "root" },
    { name: "nebula", to: "/usr/local/bin/nebula", mode: 0o755, owner: "root", group: "root" },
  ];
}

/** What a bundle holds: the names in its `var/nebula` and `var/keys`. */
export interface BundleListing {
  /** File names in `var/nebula` (undefined: no such folder). */
  nebula: string[] | undefined;
  /** File names in `var/keys` (undefined: no such folder). */
  keys: string[] | undefined;
}

/**
 * Refuses a bundle that is not exactly `role`'s: the CA key or another
 * node's key anywhere, a missing file, or anything unexpected. The message
 * says how to make the right one.
 */
export function checkBundle(role: Role, listing: BundleListing): void {
  const make = `make it on the build host with \`deno task bundle --role ${role}\` and copy ` +
    `var/bundle/${role}/ (not the whole checkout) to this VM`;
  const nebula = listing.nebula ?? [];
  const keys = listing.keys ?? [];
  const foreign = [
    ...nebula.filter((n) => n === "ca.key" || (n.endsWith(".key") && n !== `${role}.key`))
      .map((n) => `var/nebula/${n}`),
    ...keys.filter((k) => !ROLES[role].bundledKeys.includes(k)).map((k) => `var/keys/${k}`),
  ];
  if (foreign.length) {
    throw new Error(
      `install: refusing a bundle that holds ${foreign.join(", ")}: a VM holds only its own ` +
        `keys (the CA key never leaves the build host); ${make}`,
    );
  }
  const wantNebula = nebulaFiles(role).map((f) => f.name);
  const missing = [
    ...wantNebula.filter((n) => !nebula.includes(n)).map((n) => `var/nebula/${n}`),
    ...ROLES[role].bundledKeys.filter((k) => !keys.includes(k)).map((k) => `var/keys/${k}`),
  ];
  if (missing.length) throw new Error(`install: the bundle lacks ${missing.join(", ")}; ${make}`);
  const unexpected = nebula.filter((n) => !wantNebula.includes(n)).map((n) => `var/nebula/${n}`);
  if (unexpected.length) {
    throw new Error(`install: unexpected ${unexpected.join(", ")} in the bundle; ${make}`);
  }
}

/** What the plan needs from outside. */
export interface PlanInput {
  role: Role;
  /** The bundle (or checkout) install runs from. */
  repo: string;
  /** The Deno binary: copied as the retrieve entry point on joi. */
  denoBinary: string;
  /** joi's service user (recipients.yaml `service_user`); default `joi`. */
  serviceUser?: string | undefined;
  /** The rendered units (from the manifest). */
  units: UnitFile[];
  /** `/opt/joi/deno.json`: npm packages from node_modules only, production tasks. */
  denoJson: string;
  /** The command wrappers installed in /usr/local/bin (name -> script). */
  wrappers: Record<string, string>;
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

/** The user of `role` (joi's from its recipients.yaml). */
export function roleUser(role: Role, serviceUser?: string): string {
  return role === "joi" ? serviceUser ?? ROLES.joi.user : ROLES[role].user;
}

/** Computes the installation plan of one role. */
export function planInstall(input: PlanInput): Action[] {
  const r = ROLES[input.role];
  const user = roleUser(input.role, input.serviceUser);
  const a: Action[] = [];
  // the users, each with its own group: signal-cli first (the mesh joins its group)
  const vm = VM_ROLES.includes(input.role);
  if (vm) a.push({ kind: "user", name: "nebula", groups: [], note: "runs nebula.service" });
  if (input.role === "mesh") {
    a.push({ kind: "user", name: "signal-cli", groups: [], note: "runs signal-cli.service" });
  }
  if (user !== "root") {
    a.push({ kind: "user", name: user, groups: r.groups, note: `runs the ${input.role} service` });
  }

  // the code, root-owned, with a pre-filled cache
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
    note: "npm packages from deno.lock, links kept, so services start with --cached-only",
    links: true,
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

  // configuration: root-owned, readable by the service's group only
  if (r.configDir !== "") {
    a.push({ kind: "dir", path: r.configDir, mode: 0o750, owner: "root", group: user });
  }
  for (const f of r.policyFiles) {
    a.push({
      kind: "copy",
      from: `${input.repo}/policies/${f}`,
      to: `${r.configDir}/${f}`,
      mode: 0o640,
      owner: "root",
      group: user,
      overwrite: false,
    });
  }
  if (r.configDir !== "") {
    a.push({ kind: "dir", path: `${r.configDir}/secrets`, mode: 0o700, owner: user, group: user });
  }
  for (const k of r.bundledKeys) {
    a.push({
      kind: "copy",
      from: `${input.repo}/var/keys/${k}`,
      to: `${r.configDir}/secrets/${k}`,
      mode: 0o600,
      owner: user,
      group: user,
      overwrite: true,
    });
  }
  for (const k of r.generatedKeys) {
    a.push({ kind: "key", path: `${r.configDir}/secrets/${k}`, owner: user });
  }
  for (const s of r.operatorSecrets) {
    // an empty file with the right owner and mode: the operator's editor keeps both
    a.push({
      kind: "file",
      path: `${r.configDir}/secrets/${s}`,
      content: "",
      mode: 0o600,
      owner: user,
      group: user,
      overwrite: false,
    });
    a.push({
      kind: "note",
      text: `create an API token in openHAB (Settings > API Security) and write it into ` +
        `${r.configDir}/secrets/${s}`,
    });
  }

  // Nebula: this node's certificate, key and config only
  // searchable by all (the services read their own certificate); the key and
  // config are closed by their own modes
  if (vm) a.push({ kind: "dir", path: "/etc/nebula", mode: 0o755, owner: "root", group: "nebula" });
  for (const f of nebulaFiles(input.role)) {
    a.push({
      kind: "copy",
      from: `${input.repo}/var/nebula/${f.name}`,
      to: f.to,
      mode: f.mode,
      owner: f.owner,
      group: f.group,
      overwrite: true,
    });
  }

  if (input.role === "joi") {
    a.push({
      kind: "copy",
      from: input.denoBinary,
      to: "/usr/local/bin/joi-retrieve",
      mode: 0o755,
      owner: "root",
      group: "root",
      overwrite: true,
    });
  }
  for (const [name, script] of Object.entries(input.wrappers)) {
    a.push({
      kind: "file",
      path: `/usr/local/bin/${name}`,
      content: script,
      mode: 0o755,
      owner: "root",
      group: "root",
      overwrite: true,
    });
  }
  if (input.role === "anklume") {
    // ai-switch's state file lives here (infra.yml's global.ai_switch.state_file)
    a.push({ kind: "dir", path: "/opt/anklume", mode: 0o755, owner: "root", group: "root" });
  }
  if (input.role === "mesh") {
    // signal-cli's data: `signal-cli link` runs here as signal-cli before the
    // service does; the mesh (group signal-cli) passes through to attachments/
    // (long texts, voice notes), which it reads and deletes once handled
    a.push({
      kind: "dir",
      path: "/var/lib/signal-cli",
      mode: 0o710,
      owner: "signal-cli",
      group: "signal-cli",
    });
    a.push({
      kind: "dir",
      path: "/var/lib/signal-cli/attachments",
      mode: 0o2770,
      owner: "signal-cli",
      group: "signal-cli",
    });
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
  for (const name of r.units) {
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
  // the anklume host's own journal is its owner's (ai-switch logs a line a switch)
  if (input.role !== "anklume") a.push(...retentionActions(input.role));
  if (input.role === "joi") {
    a.push({
      kind: "note",
      text: "then: edit /etc/joi/*.yaml; cd /opt/joi && deno task provision (channel users, " +
        "knowledge trees, joi.service and the retrieve units); joi-validate-config",
    });
  }
  a.push({
    kind: "note",
    text: `then: systemctl daemon-reload && systemctl enable --now ${r.enable.join(" ")}`,
  });
  return a;
}

/**
 * Log retention (logrotate, journald) on every VM, and on joi the folder
 * where the daily validation leaves its report for joi's drift watch (root
 * writes it, the setgid group lets joi read it). See
 * services/common/log_retention.ts and services/common/watch/drift_report.ts.
 */
export function retentionActions(role: Exclude<Role, "anklume">): Action[] {
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
  const own = (o: { mode: number; owner: string; group: string }) =>
    `${o.mode.toString(8).padStart(4, "0")} ${o.owner}:${o.group}`;
  switch (action.kind) {
    case "user":
      return `user   ${action.name}${
        action.groups.length ? ` (groups ${action.groups.join(",")})` : ""
      }: ${action.note}`;
    case "dir":
      return `dir    ${at(action.path)} ${own(action)}`;
    case "copy":
      return `copy   ${action.from} -> ${at(action.to)} ${own(action)}${
        action.overwrite ? "" : " (content kept if present)"
      }`;
    case "tree":
      return `tree   ${action.from} -> ${at(action.to)}: ${action.note}`;
    case "file":
      return `file   ${at(action.path)} ${own(action)}${
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
