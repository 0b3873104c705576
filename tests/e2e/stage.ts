/**
 * The three VMs' software, laid out by the real installer from each role's
 * bundle (`scripts/install.ts --role R --root ./var/stage/<tag>`, run with
 * its manifest flags; the bundles made as on the build host, carrying each
 * VM's wire keys), then finished the way the README's deployment guide says
 * an operator does: the openHAB API token written on the openHAB host, the
 * channel users created (here with a per-run prefix, so a run never touches a
 * real household), joi.service rendered for the household as provision does,
 * and the secrets handed over as systemd's `LoadCredential=` would, read from
 * the staged units themselves.
 *
 * @module
 */
import {
  denoRunArgs,
  type Layout,
  localLayout,
  type ProductionAddresses,
  productionLayout,
  programSpec,
  UNIT_NAMES,
} from "../../services/common/permissions/mod.ts";
import { parsePolicyText } from "../../services/common/policy/mod.ts";
import { householdUnits } from "../../scripts/provision/provision.ts";
import { makeBundle } from "../_helpers/bundle.ts";
import { sh } from "./process.ts";

/** A staged deployment. */
export interface Stage {
  /** Absolute staging root (stands for `/` of every VM). */
  root: string;
  /** The production layout under the root. */
  layout: Layout;
  /** The channel users created on this machine for the run. */
  users: string[];
  /** Removes the users and the staging tree; returns what could not be undone. */
  cleanup(): Promise<string[]>;
}

/** Options of {@link stageDeployment}. */
export interface StageOptions {
  /** Per-run tag (part of the stage path and the user names). */
  tag: string;
  /** Addresses from network.yaml and llm.yaml. */
  addresses: ProductionAddresses;
  /** The openHAB API token to install (the relay's credential). */
  openhabToken: string;
  /** Prints progress. */
  print?: (line: string) => void;
}

/** `LoadCredential=name:path` lines of a unit file. */
export function loadCredentials(unitText: string): { name: string; path: string }[] {
  const out: { name: string; path: string }[] = [];
  for (const line of unitText.split("\n")) {
    const [, name, path] = /^LoadCredential=([^:]+):(.+)$/.exec(line.trim()) ?? [];
    if (name !== undefined && path !== undefined) out.push({ name, path });
  }
  return out;
}

/** Renames the shipped channel users (`joi-owner-private` -> `<prefix>-owner-private`). */
export function renameChannelUsers(text: string, prefix: string): string {
  return text.replace(/\bjoi-(?=[a-z])/g, `${prefix}-`);
}

/** The channel users of a `channel_users.yaml` text, validated by the policy loader. */
export function channelUsersOf(text: string, file = "channel_users.yaml"): string[] {
  const config = parsePolicyText("channelUsers", text, file);
  return Object.values(config.allowed_channel_users);
}

/** The staging tree of run `tag`, relative to the repository. */
export function stagePath(tag: string): string {
  return `./var/stage/e2e-${tag}`;
}

/** The account-name prefix of run `tag`. */
export function userPrefix(tag: string): string {
  return `j${tag.slice(0, 5)}`;
}

/** The channel users run `tag` creates, from the shipped `channel_users.yaml` text. */
export function plannedUsers(tag: string, channelUsersText: string): string[] {
  return channelUsersOf(renameChannelUsers(channelUsersText, userPrefix(tag)));
}

/** Runs a shadow tool, retrying while another test holds /etc/passwd's lock. */
async function shadow(cmd: string, args: string[]): Promise<void> {
  for (let attempt = 0;; attempt++) {
    const r = await sh(cmd, args, false);
    if (r.code === 0) return;
    if (/lock|try again/i.test(r.stderr) && attempt < 50) {
      await new Promise((res) => setTimeout(res, 100));
      continue;
    }
    throw new Error(`${cmd} ${args.join(" ")} failed (exit ${r.code}): ${r.stderr.trim()}`);
  }
}

async function userExists(name: string): Promise<boolean> {
  return (await sh("getent", ["passwd", name], false)).code === 0;
}

async function groupExists(name: string): Promise<boolean> {
  return (await sh("getent", ["group", name], false)).code === 0;
}

/** Installs the three roles under `./var/stage/e2e-<tag>` and finishes them. */
export async function stageDeployment(o: StageOptions): Promise<Stage> {
  const print = o.print ?? (() => {});
  const rel0 = stagePath(o.tag);
  await Deno.mkdir(rel0, { recursive: true, mode: 0o755 });
  const root = await Deno.realPath(rel0);
  const users: string[] = [];
  const cleanup = async (): Promise<string[]> => {
    const problems: string[] = [];
    for (const u of users) {
      try {
        if (await userExists(u)) await shadow("userdel", [u]);
        if (await groupExists(u)) await shadow("groupdel", [u]);
      } catch (e) {
        problems.push((e as Error).message);
      }
    }
    try {
      await Deno.remove(root, { recursive: true });
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) problems.push(`remove ${root}: ${e}`);
    }
    return problems;
  };
  try {
    // the installer, with its own sandbox, from each role's bundle (whose
    // stand-in Deno binary becomes the retrieve entry point)
    const install = denoRunArgs(programSpec("install", localLayout()));
    for (const role of ["joi", "mesh", "openhab"] as const) {
      const bundle = await makeBundle(`${root}/build`, role);
      const rel = `${rel0}/build/bundle/${role}`;
      if (bundle !== `${root}/build/bundle/${role}`) throw new Error(`stage: bundle at ${bundle}`);
      const r = await sh("deno", [
        ...install,
        "--role",
        role,
        "--root",
        `${rel0}/vm`,
        "--repo",
        rel,
        "--deno-bin",
        `${rel}/var/deno/node_modules/deno/deno`,
      ]);
      print(`installed role ${role}: ${r.stdout.split("\n").length} lines of output`);
    }
    const vm = `${root}/vm`;
    const configOnly = productionLayout(o.addresses, { root: vm });

    // channel users with a per-run prefix: joi refuses to start in production without them
    const prefix = userPrefix(o.tag);
    for (const f of ["recipients.yaml", "channel_users.yaml"]) {
      const path = `${configOnly.joiConfigDir}/${f}`;
      await Deno.writeTextFile(path, renameChannelUsers(await Deno.readTextFile(path), prefix));
    }
    const channelUsersFile = `${configOnly.joiConfigDir}/channel_users.yaml`;
    const channelUsersText = await Deno.readTextFile(channelUsersFile);
    const wanted = channelUsersOf(channelUsersText, channelUsersFile);
    // the layout as joi.service has it: one retrieve socket per channel
    const layout = productionLayout(o.addresses, {
      root: vm,
      channels: parsePolicyText("channelUsers", channelUsersText, channelUsersFile)
        .allowed_channel_users,
    });
    if (wanted.length === 0) throw new Error("stage: no channel users in channel_users.yaml");
    for (const u of wanted) {
      users.push(u);
      await shadow("useradd", [
        "--system",
        "--user-group",
        "--no-create-home",
        "--home-dir",
        "/nonexistent",
        "--shell",
        "/usr/sbin/nologin",
        u,
      ]);
    }

    // provision's joi.service (its sandbox names the household's sockets)
    for (const u of householdUnits(layout.joiConfigDir)) {
      if (u.name === "joi.service") {
        await Deno.writeTextFile(`${vm}/etc/systemd/system/${u.name}`, u.text);
      }
    }
    // the operator's step on the openHAB host: the API token (the wire keys
    // came with each VM's bundle)
    const relaySecrets = `${layout.relayConfigDir}/secrets`;
    await Deno.writeTextFile(`${relaySecrets}/openhab_token`, o.openhabToken + "\n", {
      mode: 0o600,
    });

    // systemd's LoadCredential=: each unit's credentials, copied into its
    // credentials directory exactly as the staged unit names them
    for (const program of ["joi", "mesh", "openhab_relay"] as const) {
      const unit = UNIT_NAMES[program];
      const text = await Deno.readTextFile(`${vm}/etc/systemd/system/${unit}`);
      const dir = layout.secretsDir(program);
      await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
      for (const c of loadCredentials(text)) {
        await Deno.copyFile(`${vm}${c.path}`, `${dir}/${c.name}`);
        await Deno.chmod(`${dir}/${c.name}`, 0o400);
      }
    }
    return { root: vm, layout, users, cleanup };
  } catch (e) {
    const problems = await cleanup();
    if (problems.length) (e as Error).message += `\n(cleanup: ${problems.join("; ")})`;
    throw e;
  }
}

/** The `deno` arguments a unit's `ExecStart=` runs for `program` (absolute entry, cached only). */
export function serviceArgs(program: "joi" | "mesh" | "openhab_relay", layout: Layout): string[] {
  const spec = programSpec(program, layout);
  return denoRunArgs({ ...spec, entry: `${layout.codeDir}/${spec.entry}` }, { cachedOnly: true });
}

/** The environment a unit gives its service (units.ts `DENO_ENV`), under the stage. */
export function serviceEnv(layout: Layout): Record<string, string> {
  return {
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    DENO_DIR: `${layout.codeDir}/.deno`,
    DENO_NO_UPDATE_CHECK: "1",
    NO_COLOR: "1",
  };
}
