/**
 * Test fixture: a real household on this machine, with unique names (`jt` +
 * random), created by the real provision code as root: channel users, reader
 * groups, the knowledge and data trees under a fresh /tmp directory, the
 * retrieve entry point at a unique /usr/local/bin path and a sudoers file at a
 * unique /etc/sudoers.d path. `cleanup()` removes all of it.
 *
 * Not a test file: imported by the root-only tests.
 *
 * @module
 */
import { stringify } from "yaml";
import { deriveChannels } from "../../../services/common/policy/mod.ts";
import { knowledgeFolders } from "../../../services/joi/knowledge/folders.ts";
import {
  retrieveFixedArgv,
  retrieveSocketPath,
  retrieveSpec,
} from "../../../services/common/permissions/mod.ts";
import {
  provision,
  provisionLayout,
  type ProvisionResult,
} from "../../../scripts/provision/provision.ts";
import type { Recipients } from "../../../services/common/policy/recipients.ts";

/** The repository root (the code directory sudoers pins). */
export const REPO = new URL("../../../", import.meta.url).pathname.replace(/\/$/, "");

/** True when the suite runs as root (CI); root-only tests skip otherwise. */
export function isRoot(): boolean {
  return Deno.uid() === 0;
}

/** A provisioned test household. */
export interface Household {
  /** Unique prefix of every name. */
  prefix: string;
  /** Temp directory (0755) holding config/ and state/. */
  dir: string;
  /** Config dir with recipients.yaml and channel_users.yaml. */
  configDir: string;
  /** State dir (knowledge/ and data/). */
  stateDir: string;
  /** Knowledge root. */
  root: string;
  /** recipients.yaml as written. */
  recipients: Recipients;
  /** Channel -> channel user. */
  channels: Record<string, string>;
  /** Role -> user name. */
  users: {
    svc: string;
    ownerPrivate: string;
    ownerPublic: string;
    partnerPrivate: string;
    partnerPublic: string;
    family: string;
    critical: string;
  };
  /** Role -> group name. */
  groups: { all: string; ownerReaders: string; partnerReaders: string; familyReaders: string };
  /** The installed entry point. */
  retrieveBin: string;
  /** The installed sudoers file. */
  sudoersPath: string;
  /** The staged audit rules. */
  auditRulesPath: string;
  /** sudo's log. */
  sudoLog: string;
  /** The pinned argv after the entry point. */
  fixedArgv: string[];
  /** Result of the provisioning run. */
  provisioned: ProvisionResult;
  /** Re-runs provision (e.g. after editing recipients.yaml). */
  reprovision(recipients?: Recipients): ProvisionResult;
  /** Removes users, groups, files. */
  cleanup(): Promise<void>;
}

/** The recipients.yaml of a test household. */
export function testRecipients(p: string, ownerSharesWithFamily = true): Recipients {
  return {
    service_user: `${p}-svc`,
    all_channels_group: `${p}-all`,
    recipients: {
      owner: {
        private_user: `${p}-opriv`,
        public_user: `${p}-opub`,
        reader_group: `${p}-oread`,
        public_readers: ownerSharesWithFamily ? [`${p}-crit`, `${p}-fam`] : [`${p}-crit`],
      },
      partner: {
        private_user: `${p}-ppriv`,
        public_user: `${p}-ppub`,
        reader_group: `${p}-pread`,
        public_readers: [`${p}-crit`],
      },
    },
    groups: {
      family: { user: `${p}-fam`, reader_group: `${p}-fread`, readers: [`${p}-crit`] },
      critical: { user: `${p}-crit`, readers: [] },
    },
  };
}

function writeConfig(dir: string, r: Recipients): void {
  Deno.writeTextFileSync(`${dir}/recipients.yaml`, stringify(r));
  Deno.writeTextFileSync(
    `${dir}/channel_users.yaml`,
    stringify({ allowed_channel_users: deriveChannels(r) }),
  );
}

function quiet(cmd: string, args: string[]): void {
  new Deno.Command(cmd, { args, stdout: "null", stderr: "null" }).outputSync();
}

/** Creates and provisions a household. Call `cleanup()` in `finally`. */
export function createHousehold(options: { ownerSharesWithFamily?: boolean } = {}): Household {
  const prefix = `jt${crypto.randomUUID().slice(0, 6)}`;
  const recipients = testRecipients(prefix, options.ownerSharesWithFamily ?? true);
  const dir = Deno.makeTempDirSync({ prefix: `${prefix}-` });
  Deno.chmodSync(dir, 0o755);
  const configDir = `${dir}/config`;
  const stateDir = `${dir}/state`;
  Deno.mkdirSync(configDir, { mode: 0o755 });
  writeConfig(configDir, recipients);
  const retrieveBin = `/usr/local/bin/${prefix}-retrieve`;
  const sudoersPath = `/etc/sudoers.d/${prefix}`;
  const auditRulesPath = `${dir}/audit/joi.rules`;
  const sudoLog = `${dir}/sudo.log`;
  const opts = {
    configDir,
    stateDir,
    codeDir: REPO,
    retrieveBin,
    sudoersPath,
    auditRulesPath,
    sudoLog,
    entrySource: Deno.execPath(),
    // the sudo mechanism (the local run's): production's systemd units are
    // shown by the booted tests
    retrieval: "sudo" as const,
  };
  const p = prefix;
  const users = {
    svc: `${p}-svc`,
    ownerPrivate: `${p}-opriv`,
    ownerPublic: `${p}-opub`,
    partnerPrivate: `${p}-ppriv`,
    partnerPublic: `${p}-ppub`,
    family: `${p}-fam`,
    critical: `${p}-crit`,
  };
  const groups = {
    all: `${p}-all`,
    ownerReaders: `${p}-oread`,
    partnerReaders: `${p}-pread`,
    familyReaders: `${p}-fread`,
  };
  const cleanup = async () => {
    for (const f of [sudoersPath, retrieveBin]) {
      try {
        Deno.removeSync(f);
      } catch { /* not created */ }
    }
    for (const u of Object.values(users)) quiet("userdel", [u]);
    for (const g of Object.values(groups)) quiet("groupdel", [g]);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  let provisioned: ProvisionResult;
  try {
    provisioned = provision(opts);
  } catch (e) {
    cleanup();
    throw e;
  }
  const fixedArgv = retrieveFixedArgv(retrieveSpec(provisionLayout(opts), REPO));
  // the local broker's socket folder: the service user's, closed to others
  Deno.mkdirSync(`${dir}/retrieve`, { mode: 0o700 });
  Deno.chownSync(`${dir}/retrieve`, uidOf(users.svc), null);
  const h: Household = {
    prefix,
    dir,
    configDir,
    stateDir,
    root: `${stateDir}/knowledge`,
    recipients,
    channels: deriveChannels(recipients),
    users,
    groups,
    retrieveBin,
    sudoersPath,
    auditRulesPath,
    sudoLog,
    fixedArgv,
    provisioned,
    reprovision(r?: Recipients) {
      if (r) {
        writeConfig(configDir, r);
        h.recipients = r;
      }
      return provision(opts);
    },
    cleanup,
  };
  return h;
}

/** Output of a command. */
export interface Ran {
  /** Exit code. */
  code: number;
  /** stdout text. */
  stdout: string;
  /** stderr text. */
  stderr: string;
}

/** Runs a command to completion (no shell); `stdin` is written and closed. */
export async function run(
  cmd: string,
  args: string[],
  env?: Record<string, string>,
  stdin?: string,
): Promise<Ran> {
  const child = new Deno.Command(cmd, {
    args,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    ...(env ? { env } : {}),
  }).spawn();
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/**
 * Runs the real retrieve as `user` exactly as the local broker does, from the
 * service user's account: `sudo -u <svc> sudo -n -u <user> <bin> <pinned
 * argv>` with the request line `<type> <json>` on stdin.
 */
export function retrieveAs(h: Household, user: string, type: string, json: string): Promise<Ran> {
  return run(
    "sudo",
    ["-u", h.users.svc, "sudo", "-n", "-u", user, "--", h.retrieveBin, ...h.fixedArgv],
    undefined,
    `${type} ${json}\n`,
  );
}

/** Writes a markdown document into a folder as joi would find a hand-written one. */
export function putDocument(
  h: Household,
  folder: string,
  name: string,
  text: string,
): string {
  const path = `${h.root}/${folder}/${name}`;
  Deno.writeTextFileSync(path, text, { mode: 0o640 });
  // as an administrator would: owned by the service user, group from the setgid folder
  Deno.chownSync(path, uidOf(h.users.svc), null);
  Deno.chmodSync(path, 0o640);
  return path;
}

/**
 * Runs joi's real knowledge code as the service user (the only writer):
 * `tests/services/joi/knowledge/as_service.ts` with joi's account and a
 * narrow sandbox. Returns the parsed JSON line.
 */
export async function asService(
  h: Household,
  input: Record<string, unknown>,
): Promise<{ uid: number; result: unknown; events: Record<string, unknown>[] }> {
  const r = await run("sudo", [
    "-u",
    h.users.svc,
    // The household's installed entry point is a root:root 0755 copy of this
    // very Deno binary; the original may sit where the service user cannot
    // reach it (npx's cache under /root, as in CI).
    h.retrieveBin,
    "run",
    "--no-prompt",
    "--no-config",
    "--no-lock",
    "--no-remote",
    "--no-npm",
    `--allow-read=${h.stateDir},${REPO},/etc/passwd,${socketDir(h)}`,
    `--allow-write=${h.stateDir},${socketDir(h)}`,
    `--allow-net=${retrieveSocketsOf(h).map((p) => `unix:${p}`).join(",")}`,
    "--allow-run=/usr/bin/sudo",
    "--allow-sys=uid",
    `${REPO}/tests/services/joi/knowledge/as_service.ts`,
    JSON.stringify({
      root: h.root,
      stateDir: h.stateDir,
      recipients: h.recipients,
      allowed: h.channels,
      retrieveBin: h.retrieveBin,
      fixedArgv: h.fixedArgv,
      socketDir: socketDir(h),
      ...input,
    }),
  ]);
  if (r.code !== 0) throw new Error(`as_service failed (${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split("\n").pop()!);
}

/** The folder of the household's retrieve sockets (the service user's, as the local broker's). */
export function socketDir(h: Household): string {
  return `${h.dir}/retrieve`;
}

/** Each channel's retrieve socket. */
export function retrieveSocketsOf(h: Household): string[] {
  return Object.keys(h.channels).sort().map((c) => retrieveSocketPath(socketDir(h), c));
}

/** Indexes every folder as the service user. */
export function indexAsService(h: Household) {
  return asService(h, { mode: "index" });
}

/** `ln -s` (Deno.symlink needs unscoped permissions, which the suite does not have). */
export async function symlink(target: string, path: string): Promise<void> {
  const out = await new Deno.Command("sh", {
    args: ["-c", 'ln -s "$1" "$2"', "sh", target, path],
  }).output();
  if (!out.success) throw new Error(`ln -s ${target} ${path} failed`);
}

/** uid of a user (from /etc/passwd). */
export function uidOf(user: string): number {
  for (const line of Deno.readTextFileSync("/etc/passwd").split("\n")) {
    const f = line.split(":");
    if (f[0] === user) return Number(f[2]);
  }
  throw new Error(`no user ${user}`);
}

/** The folders of the household (relative paths). */
export function folderPaths(h: Household): string[] {
  return knowledgeFolders(h.recipients).map((f) => f.path);
}
