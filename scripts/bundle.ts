/**
 * `deno task bundle --role joi|mesh|openhab`: on the build host, after
 * `deno task nebula`, writes `var/bundle/<role>/`, everything that one VM
 * needs and nothing more: the code and its npm packages, the Deno binary, that
 * node's Nebula certificate, key and config with the CA certificate (never the
 * CA key, never another node's key), the nft guard, the Nebula binary, and the
 * wire keys that VM holds. Copy that folder to the VM and run
 * `deno task install --role <role>` in it; install refuses anything else.
 *
 * The wire keys are made here once (`var/keys/*.key`, 0600): joi gets all
 * three, the mesh its two, openHAB its one. joi's memory key is made on the
 * joi VM by install and never leaves it.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { exists } from "../services/common/fs.ts";
import { generateKeyFile } from "../services/common/wire/keys.ts";
import {
  CODE_PATHS,
  nebulaFiles,
  type Role,
  ROLE_NAMES,
  ROLES,
  WIRE_KEYS,
} from "./install/plan.ts";
import { copyTree, copyTreeWithLinks } from "./install/tree.ts";

const USAGE = `usage: deno task bundle --role joi|mesh|openhab
       [--out ./var/bundle] [--deno-bin ./var/deno/node_modules/deno/deno]
       [--nebula-bin /usr/bin/nebula]`;

/** Options of {@link bundle}. */
export interface BundleOptions {
  /** The role. */
  role: Role;
  /** The checkout (code, node_modules). */
  repo: string;
  /** Where `deno task nebula` wrote the certificates and configs (default `<repo>/var/nebula`). */
  nebulaDir?: string | undefined;
  /** Where the wire keys are kept (default `<repo>/var/keys`). */
  keysDir?: string | undefined;
  /** Where bundles go (`<out>/<role>`). */
  out: string;
  /** The Deno binary to ship. */
  denoBin: string;
  /** The Nebula binary to ship (same architecture as the VMs). */
  nebulaBin: string;
}

/** Makes the missing wire keys in `dir`; returns the ones it made. */
export async function ensureWireKeys(dir: string): Promise<string[]> {
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  await Deno.chmod(dir, 0o700);
  const made: string[] = [];
  for (const k of WIRE_KEYS) {
    if (await exists(`${dir}/${k}`)) continue;
    await generateKeyFile(`${dir}/${k}`);
    made.push(`${dir}/${k}`);
  }
  return made;
}

/** Writes `<out>/<role>` afresh; returns its path. */
export async function bundle(o: BundleOptions): Promise<string> {
  const dest = `${o.out}/${o.role}`;
  const nebulaDir = o.nebulaDir ?? `${o.repo}/var/nebula`;
  const keysDir = o.keysDir ?? `${o.repo}/var/keys`;
  const missing: string[] = [];
  for (const f of nebulaFiles(o.role)) {
    const from = f.name === "nebula" ? o.nebulaBin : `${nebulaDir}/${f.name}`;
    if (!(await exists(from))) missing.push(from);
  }
  if (!(await exists(o.denoBin))) missing.push(o.denoBin);
  if (missing.length) {
    throw new Error(
      `bundle: missing ${missing.join(", ")}: run \`deno task nebula --underlay ...\` first ` +
        `(the build host needs nebula and nebula-cert: apt-get install nebula), and ` +
        `install Deno with npm into ./var/deno`,
    );
  }
  await ensureWireKeys(keysDir);
  await Deno.mkdir(o.out, { recursive: true, mode: 0o700 });
  if (await exists(dest)) await Deno.remove(dest, { recursive: true });
  await Deno.mkdir(dest, { mode: 0o700 });
  await Deno.chmod(dest, 0o700); // it holds a private key
  for (const p of CODE_PATHS) await copyTree(`${o.repo}/${p}`, `${dest}/${p}`);
  await copyTreeWithLinks(`${o.repo}/node_modules`, `${dest}/node_modules`);
  // npm packages from the shipped node_modules only: the VM never reaches a registry
  const config = JSON.parse(await Deno.readTextFile(`${o.repo}/deno.json`));
  await Deno.writeTextFile(
    `${dest}/deno.json`,
    JSON.stringify({ ...config, nodeModulesDir: "manual" }, null, 2) + "\n",
  );
  await Deno.mkdir(`${dest}/var/deno/node_modules/deno`, { recursive: true, mode: 0o755 });
  await copyTree(o.denoBin, `${dest}/var/deno/node_modules/deno/deno`);
  await Deno.mkdir(`${dest}/var/nebula`, { mode: 0o700 });
  for (const f of nebulaFiles(o.role)) {
    const from = f.name === "nebula" ? o.nebulaBin : `${nebulaDir}/${f.name}`;
    await Deno.copyFile(from, `${dest}/var/nebula/${f.name}`);
    await Deno.chmod(`${dest}/var/nebula/${f.name}`, f.name === "nebula" ? 0o755 : 0o600);
  }
  await Deno.mkdir(`${dest}/var/keys`, { mode: 0o700 });
  for (const k of ROLES[o.role].bundledKeys) {
    await Deno.copyFile(`${keysDir}/${k}`, `${dest}/var/keys/${k}`);
    await Deno.chmod(`${dest}/var/keys/${k}`, 0o600);
  }
  return dest;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      role: { type: "string" },
      out: { type: "string", default: "./var/bundle" },
      repo: { type: "string", default: "." },
      "deno-bin": { type: "string", default: "./var/deno/node_modules/deno/deno" },
      "nebula-bin": { type: "string", default: "/usr/bin/nebula" },
    },
  });
  const role = values.role as Role;
  if (!role || !ROLE_NAMES.includes(role)) {
    console.error(`bundle: --role must be one of ${ROLE_NAMES.join(", ")}\n${USAGE}`);
    return 2;
  }
  const dest = await bundle({
    role,
    repo: values.repo,
    out: values.out,
    denoBin: values["deno-bin"],
    nebulaBin: values["nebula-bin"],
  });
  console.log(
    `bundle: wrote ${dest} (${role}'s Nebula files and keys only); copy it to the ${role} VM ` +
      `and run \`deno task install --role ${role}\` there`,
  );
  return 0;
}

if (import.meta.main) {
  try {
    Deno.exit(await main());
  } catch (e) {
    console.error(`bundle: ${(e as Error).message}`);
    Deno.exit(1);
  }
}
