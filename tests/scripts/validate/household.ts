/**
 * A freshly provisioned test household under a staging root, built with the
 * provision module (`desiredState` + `diff` + `applyActions`, production's
 * retrieval: joi.service and the retrieve units) from the shipped example
 * policies, plus the other units rendered from the manifest, the retrieve
 * entry point and the secrets.
 *
 * Two account modes:
 * - `staged`: fake users and groups written to `<root>/etc/passwd|group`
 *   (numeric ids only; nothing on the host changes);
 * - `real`: real system users and groups with a unique prefix, created by
 *   provision with useradd/groupadd/gpasswd, removed by `cleanup()`.
 *
 * @module
 */
import { loadPolicies } from "../../../services/common/policy/mod.ts";
import { renderUnits, unitHousehold } from "../../../services/common/units/mod.ts";
import { householdUnitsOf } from "../../../scripts/provision/provision.ts";
import { diff, systemView } from "../../../scripts/provision/plan.ts";
import { applyActions } from "../../../scripts/provision/apply.ts";
import { type Accounts, parseGroup, parsePasswd } from "../../../scripts/provision/system.ts";
import {
  expectedState,
  INSTALLED,
  productionAddressesFrom,
} from "../../../scripts/validate/mod.ts";
import { credentialsOf } from "../../../scripts/validate/secrets_check.ts";

/** A staged household. */
export interface Household {
  /** The staging root. */
  root: string;
  /** `<root>/etc/joi`. */
  configDir: string;
  /** The passwd file validate must read. */
  passwdFile: string;
  /** The group file validate must read. */
  groupFile: string;
  /** Name prefix ("joi" for staged accounts; unique for real ones). */
  prefix: string;
  /** Maps a shipped name (`joi-owner-private`, `joi`) to this household's name. */
  name: (shipped: string) => string;
  /** Users created on the host (real mode). */
  realUsers: string[];
  /** Groups created on the host (real mode). */
  realGroups: string[];
  /** Removes everything (users, groups, the root). */
  cleanup: () => Promise<void>;
}

/** Options of {@link stageHousehold}. */
export interface HouseholdOptions {
  /** `staged` (fake accounts, default) or `real` (host users with a unique prefix). */
  accounts?: "staged" | "real";
  /** The policy folder to copy (default `policies`). */
  policies?: string;
}

const FAKE_BASE = 64000;

function run(cmd: string, args: string[]): void {
  for (let attempt = 0;; attempt++) {
    const out = new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).outputSync();
    if (out.success) return;
    const err = new TextDecoder().decode(out.stderr);
    // the shadow tools refuse while another process holds /etc/passwd's lock
    if (/lock|try again/i.test(err) && attempt < 50) {
      const until = Date.now() + 100;
      while (Date.now() < until) { /* brief spin: the lock holder is another test */ }
      continue;
    }
    throw new Error(`${cmd} ${args.join(" ")} failed: ${err.trim()}`);
  }
}

function rename(text: string, prefix: string): string {
  if (prefix === "joi") return text;
  return text
    .replace(/\bjoi-(?=[a-z])/g, `${prefix}-`)
    .replace(/^service_user: joi\b/m, `service_user: ${prefix}-svc`);
}

/** Copies the policies into `<root>/etc/joi`, renaming users and groups for `prefix`. */
function writePolicies(src: string, dest: string, prefix: string): void {
  Deno.mkdirSync(dest, { recursive: true, mode: 0o755 });
  for (const e of Deno.readDirSync(src)) {
    if (!e.isFile) continue;
    const text = Deno.readTextFileSync(`${src}/${e.name}`);
    const renamed = e.name === "recipients.yaml" || e.name === "channel_users.yaml"
      ? rename(text, prefix)
      : text;
    Deno.writeTextFileSync(`${dest}/${e.name}`, renamed, { mode: 0o644 });
  }
}

function fakeAccounts(users: string[], groups: string[], memberships: Record<string, string[]>) {
  const passwd = ["root:x:0:0:root:/root:/bin/bash"];
  const group = ["root:x:0:"];
  let id = FAKE_BASE;
  for (const u of users) {
    passwd.push(`${u}:x:${id}:${id}::/nonexistent:/usr/sbin/nologin`);
    group.push(`${u}:x:${id}:${(memberships[u] ?? []).join(",")}`);
    id++;
  }
  for (const g of groups) {
    if (users.includes(g)) continue;
    group.push(`${g}:x:${id++}:${(memberships[g] ?? []).join(",")}`);
  }
  return { passwd: passwd.join("\n") + "\n", group: group.join("\n") + "\n" };
}

/** Builds a provisioned household under a new temp root. */
export async function stageHousehold(options: HouseholdOptions = {}): Promise<Household> {
  const mode = options.accounts ?? "staged";
  const root = await Deno.makeTempDir({ prefix: "joi-validate-" });
  // the staged root stands for "/": every user may pass through it (the
  // access check asks the kernel as each user)
  Deno.chmodSync(root, 0o755);
  const prefix = mode === "real" ? `j8${crypto.randomUUID().slice(0, 4)}` : "joi";
  const name = (shipped: string) =>
    prefix === "joi"
      ? shipped
      : shipped === "joi"
      ? `${prefix}-svc`
      : shipped.replace(/^joi-/, `${prefix}-`);
  const configDir = root + INSTALLED.configDir;
  writePolicies(options.policies ?? "policies", configDir, prefix);
  const policies = loadPolicies(configDir);
  const want = expectedState(policies.recipients, householdUnitsOf(policies));
  const realUsers: string[] = [];
  const realGroups: string[] = [];
  const cleanup = async () => {
    if (mode === "real") {
      for (const u of realUsers) {
        try {
          run("pkill", ["-KILL", "-u", u]);
        } catch { /* no processes */ }
        try {
          run("userdel", [u]);
        } catch { /* already gone */ }
      }
      const groups = parseGroup(Deno.readTextFileSync("/etc/group"));
      for (const g of realGroups) {
        if (groups.has(g)) {
          try {
            run("groupdel", [g]);
          } catch { /* already gone */ }
        }
      }
    }
    try {
      new Deno.Command("chattr", { args: ["-i", root + INSTALLED.retrieveBin] }).outputSync();
    } catch { /* not immutable */ }
    await Deno.remove(root, { recursive: true });
  };

  try {
    let etc: string;
    let filesOnly: boolean;
    if (mode === "staged") {
      etc = `${root}/etc`;
      const a = fakeAccounts(want.users, want.groups, want.memberships);
      Deno.writeTextFileSync(`${etc}/passwd`, a.passwd);
      Deno.writeTextFileSync(`${etc}/group`, a.group);
      filesOnly = true;
    } else {
      etc = "/etc";
      filesOnly = false;
      realUsers.push(...want.users);
      realGroups.push(...want.groups, ...want.users);
    }
    const accounts: Accounts = {
      users: parsePasswd(Deno.readTextFileSync(`${etc}/passwd`)),
      groups: parseGroup(Deno.readTextFileSync(`${etc}/group`)),
    };
    // the staged root stands for "/": the state folder's parents exist on a real system
    Deno.mkdirSync(`${root}/var/lib`, { recursive: true, mode: 0o755 });
    const actions = diff(want, systemView(accounts, root, filesOnly));
    const after = applyActions(actions, { root, etc });

    // the retrieve entry point: a root-owned 0755 copy of a binary
    const bin = root + INSTALLED.retrieveBin;
    Deno.mkdirSync(bin.slice(0, bin.lastIndexOf("/")), { recursive: true, mode: 0o755 });
    Deno.copyFileSync("/usr/bin/true", bin);
    Deno.chownSync(bin, 0, 0);
    Deno.chmodSync(bin, 0o755);

    // the code: the two guarded entry modules, root-owned (their content is not checked)
    for (const entry of ["scripts/validate.ts", "scripts/retrieve.ts"]) {
      const at = `${root}${INSTALLED.codeDir}/${entry}`;
      Deno.mkdirSync(at.slice(0, at.lastIndexOf("/")), { recursive: true, mode: 0o755 });
      Deno.copyFileSync(entry, at);
      Deno.chmodSync(at, 0o644);
    }

    // units, rendered from the manifest
    const addresses = productionAddressesFrom({ network: policies.network, llm: policies.llm });
    const unitsDir = root + INSTALLED.unitsDir;
    Deno.mkdirSync(unitsDir, { recursive: true, mode: 0o755 });
    const units = renderUnits(addresses, unitHousehold(policies.recipients));
    for (const u of units) Deno.writeTextFileSync(`${unitsDir}/${u.name}`, u.text, { mode: 0o644 });

    // secrets: 0600, owned by the service user, in a 0700 folder
    const svc = policies.recipients.service_user;
    const svcUid = after.users.get(svc)!.uid;
    const secretsDir = root + INSTALLED.secretsDir;
    Deno.mkdirSync(secretsDir, { recursive: true, mode: 0o700 });
    Deno.chmodSync(secretsDir, 0o700);
    const joiUnit = units.find((u) => u.name === "joi.service")!;
    for (const path of credentialsOf(joiUnit.text).values()) {
      const at = root + path;
      Deno.writeFileSync(at, crypto.getRandomValues(new Uint8Array(32)), { mode: 0o600 });
      Deno.chownSync(at, svcUid, null);
    }
    return {
      root,
      configDir,
      passwdFile: `${etc}/passwd`,
      groupFile: `${etc}/group`,
      prefix,
      name,
      realUsers,
      realGroups,
      cleanup,
    };
  } catch (e) {
    await cleanup();
    throw e;
  }
}

/** uid of a user in the household's passwd file. */
export function uidOf(h: Household, user: string): number {
  const u = parsePasswd(Deno.readTextFileSync(h.passwdFile)).get(user);
  if (!u) throw new Error(`test: no user ${user} in ${h.passwdFile}`);
  return u.uid;
}

/** gid of a group in the household's group file. */
export function gidOf(h: Household, group: string): number {
  const g = parseGroup(Deno.readTextFileSync(h.groupFile)).get(group);
  if (!g) throw new Error(`test: no group ${group} in ${h.groupFile}`);
  return g.gid;
}
