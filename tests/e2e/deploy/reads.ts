/**
 * What a running service can read, as the kernel decides it: in the
 * service's own mount namespace (what its unit's sandbox leaves visible), as
 * its user with its groups (`setpriv`), every file of the deployment's
 * configuration, state and log trees is tried.
 *
 * A service may read a file only under its own paths: for a Deno program the
 * `--allow-read` list its unit gives it (the sandbox's own statement of what
 * it reads) and its credentials directory, for Nebula its config's folder, for
 * signal-cli its `--config` folder. And it must be able to read its
 * configuration (every file of its config folder but `secrets/`, which
 * systemd hands over as credentials). Public by design, readable by anyone:
 * the Nebula certificates (a certificate holds no secret; each service reads
 * its own for the expiry watch) and the Nebula guard's nftables rules; keys,
 * Nebula's config and everything else stay forbidden.
 *
 * @module
 */
import type { Vm } from "../vm/vm.ts";
import { unitState } from "./units.ts";

/** The trees whose files are tried. */
export const SENSITIVE_TREES = [
  "/etc/joi",
  "/etc/mesh-proxy",
  "/etc/joi-relay",
  "/etc/nebula",
  "/var/lib/joi",
  "/var/lib/mesh-proxy",
  "/var/lib/joi-relay",
  "/var/lib/signal-cli",
  "/var/log/joi",
];

/** Files anyone may read: Nebula's certificates and its guard's rules. */
export const PUBLIC_FILES = /^\/etc\/nebula\/(?:[a-z0-9_-]+\.crt|guard\.nft)$/;

/** What a service may and can read. */
export interface ReadAudit {
  unit: string;
  user: string;
  /** Its own paths (see the module doc). */
  own: string[];
  /** Its configuration folder, when it has one. */
  configDir: string | undefined;
  /** Files it can read outside its own paths. */
  forbidden: string[];
  /** Files of its configuration it cannot read. */
  unreadableConfig: string[];
}

/** The argv of a unit's `ExecStart=` (the first command). */
export async function execArgv(vm: Vm, unit: string): Promise<string[]> {
  const r = await vm.exec(["systemctl", "show", "--property=ExecStart", "--value", unit]);
  const m = /argv\[\]=(.*?) ;/.exec(r.stdout);
  if (!m) throw new Error(`${vm.name}: no ExecStart argv for ${unit}: ${r.stdout}`);
  return m[1]!.split(" ").filter(Boolean);
}

/** The paths a program's argv names as its own, and its configuration folder. */
export function ownPaths(unit: string, argv: string[]): { own: string[]; configDir?: string } {
  const own = [`/run/credentials/${unit}`];
  let configDir: string | undefined;
  argv.forEach((a, i) => {
    const flag = /^--(allow-read|config-dir|state-dir|log-dir|secrets-dir)=(.+)$/.exec(a);
    if (flag) {
      const paths = flag[2]!.split(",");
      own.push(...paths);
      if (flag[1] === "config-dir") configDir = paths[0];
    }
    const next = argv[i + 1];
    if ((a === "--config" || a === "-config") && next) {
      // signal-cli: --config DIR; nebula: -config FILE (its folder holds its keys)
      const dir = a === "-config" ? next.slice(0, next.lastIndexOf("/")) : next;
      own.push(dir);
      configDir = dir;
    }
  });
  return configDir === undefined ? { own } : { own, configDir };
}

/** Whether `path` lies under one of `roots`. */
export function under(path: string, roots: string[]): boolean {
  return roots.some((r) => path === r || path.startsWith(r.endsWith("/") ? r : `${r}/`));
}

/** Reads as `unit`'s user in its mount namespace, over every sensitive file of `vm`. */
export async function auditReads(vm: Vm, unit: string): Promise<ReadAudit> {
  const s = await unitState(vm, unit);
  if (s.mainPid <= 0) throw new Error(`${vm.name}: ${unit} is not running`);
  const user = (await vm.exec(["ps", "-o", "user=", "-p", String(s.mainPid)])).stdout.trim();
  const gid = (await vm.exec(["id", "-g", user])).stdout.trim();
  const { own, configDir } = ownPaths(unit, await execArgv(vm, unit));
  const files = (await vm.exec([
    "sh",
    "-c",
    'for d in "$@"; do [ -d "$d" ] && find "$d" -xdev -type f ' +
    "-not -path '*/.deno/*' -not -path '*/.cache/*'; done; true",
    "sh",
    ...SENSITIVE_TREES,
  ])).stdout.split("\n").filter(Boolean);
  const readable = new Set(
    (await vm.exec([
      "nsenter",
      "-t",
      String(s.mainPid),
      "-m",
      "--",
      "setpriv",
      `--reuid=${user}`,
      `--regid=${gid}`,
      "--init-groups",
      "--",
      "sh",
      "-c",
      'while IFS= read -r f; do [ -r "$f" ] && printf "%s\\n" "$f"; done; true',
    ], { input: files.join("\n") + "\n" })).stdout.split("\n").filter(Boolean),
  );
  const forbidden = files.filter((f) => readable.has(f) && !under(f, own) && !PUBLIC_FILES.test(f));
  const config = configDir
    ? files.filter((f) => under(f, [configDir]) && !under(f, [`${configDir}/secrets`]))
    : [];
  return {
    unit,
    user,
    own,
    configDir,
    forbidden,
    unreadableConfig: config.filter((f) => !readable.has(f)),
  };
}
