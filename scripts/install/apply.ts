/**
 * Carries out an installation plan, under a root prefix (`/` for a real
 * install, a staging directory otherwise). Users are only created for a real
 * install; ownership is applied by root (a real install refuses an owner that
 * does not exist). Existing household configuration and keys keep their
 * content; their owner and mode are set again.
 *
 * Owners and modes are set through `scripts/common/root_fs.ts` (its rule is
 * binding here): on descriptors, never through a symlink, and below a
 * directory a service user owns (its secrets folder, a re-run over
 * `/var/lib/joi`) only while that directory is held frozen.
 *
 * @module
 */
import { generateKeyFile } from "../../services/common/wire/keys.ts";
import type { Action } from "./plan.ts";
import { exists } from "../../services/common/fs.ts";
import { type Ownership, placePath, whileFrozen } from "../common/root_fs.ts";
import { copyTree, copyTreeWithLinks } from "./tree.ts";

/** Options of {@link applyPlan}. */
export interface ApplyOptions {
  /** `/` or a staging prefix. */
  root: string;
  /** Prints progress lines. */
  print: (line: string) => void;
  /** `deno` as the manifest allows it to be run (for the cache step). */
  denoCommand?: string;
}

function ids(file: string): Map<string, number> {
  const map = new Map<string, number>();
  try {
    for (const line of Deno.readTextFileSync(file).split("\n")) {
      const [name, , id] = line.split(":");
      if (name && id !== undefined) map.set(name, Number(id));
    }
  } catch {
    // no such database in a minimal staging environment
  }
  return map;
}

async function run(
  cmd: string,
  args: string[],
  opts: { cwd?: string; env?: Record<string, string> } = {},
) {
  const out = await new Deno.Command(cmd, {
    args,
    ...opts,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  if (!out.success) {
    throw new Error(
      `${cmd} ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr).trim()}`,
    );
  }
}

/**
 * Writes `path` through `<path>.tmp` (the name the manifest admits): `write`
 * fills the temporary file, mode set, renamed into place. A missing parent
 * (a fresh staging root) is created; an existing one (`/usr/local/bin`) is not
 * touched, as the sandbox does not name it.
 */
async function placeViaTmp(
  path: string,
  mode: number,
  write: (tmp: string) => Promise<void>,
): Promise<void> {
  try {
    await write(`${path}.tmp`);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    await Deno.mkdir(parentOf(path), { recursive: true, mode: 0o755 });
    await write(`${path}.tmp`);
  }
  await Deno.chmod(`${path}.tmp`, mode);
  await Deno.rename(`${path}.tmp`, path);
}

/** The parent folder of a path. */
const parentOf = (path: string) => path.replace(/\/[^/]+$/, "") || "/";

/** Applies `plan`, printing (through `o.print`) a line for each change. */
export async function applyPlan(plan: Action[], o: ApplyOptions): Promise<void> {
  const real = o.root === "/";
  const at = (p: string) => (real ? p : `${o.root}${p}`);
  // read once, and again only after a user was added
  let known: { users: Map<string, number>; groups: Map<string, number> } | undefined;
  const accounts = () => known ??= { users: ids(at("/etc/passwd")), groups: ids(at("/etc/group")) };
  /** The ids to give `owner:group` here; undefined (left as they are) for a staging run as a user. */
  const idsOf = (path: string, owner: string, group: string): Ownership | undefined => {
    if (Deno.uid() !== 0) return undefined;
    const uid = owner === "root" ? 0 : accounts().users.get(owner);
    const gid = group === "root" ? 0 : accounts().groups.get(group);
    if (uid === undefined || gid === undefined) {
      if (real) throw new Error(`${owner}:${group} of ${path}: no such user or group`);
      o.print(`  (ownership ${owner}:${group} of ${path} not applied: no such user/group here)`);
      return undefined;
    }
    return { uid, gid, mode: 0 };
  };
  const own = (path: string, kind: "dir" | "file", mode: number, ids?: Ownership) =>
    placePath(path, kind, { uid: ids?.uid ?? null, gid: ids?.gid ?? null, mode }, {
      create: kind === "dir",
    });
  /**
   * Runs `fn` on `path`; inside a folder a service user owns (its secrets
   * folder), only while that folder is held frozen.
   */
  const inParent = async (path: string, fn: () => void | Promise<void>) => {
    const dir = parentOf(path);
    let st: Deno.FileInfo | undefined;
    try {
      st = Deno.lstatSync(dir);
    } catch { /* created by fn */ }
    if (st && st.uid !== 0 && Deno.uid() === 0) await whileFrozen(dir, fn);
    else await fn();
  };
  /** Writes `path` through `<path>.tmp`, then sets its owner and mode; `fill` writes the temporary file. */
  const place = (
    path: string,
    a: { mode: number; owner: string; group: string },
    fill: (tmp: string) => Promise<void>,
  ) =>
    inParent(path, () =>
      placeViaTmp(path, a.mode, async (tmp) => {
        await fill(tmp);
        own(tmp, "file", a.mode, idsOf(path, a.owner, a.group));
      }));
  for (const a of plan) {
    switch (a.kind) {
      case "user":
        if (!real) {
          o.print(`staging: user ${a.name} not created`);
          break;
        }
        if (!accounts().users.has(a.name)) {
          await run("/usr/sbin/useradd", [
            "--system",
            "--user-group",
            "--shell",
            "/usr/sbin/nologin",
            "--home-dir",
            "/nonexistent",
            "--no-create-home",
            ...(a.groups.length ? ["--groups", a.groups.join(",")] : []),
            a.name,
          ]);
          known = undefined;
          o.print(`created user ${a.name}`);
        }
        break;
      case "dir": {
        const path = at(a.path);
        // the parents are root's (/opt, /etc, /var/lib, a staging prefix) and
        // outside the sandbox: only the target itself is named
        await Deno.mkdir(path, { recursive: true, mode: 0o700 });
        own(path, "dir", a.mode, idsOf(path, a.owner, a.group));
        break;
      }
      case "tree": {
        if (await exists(at(a.to))) await Deno.remove(at(a.to), { recursive: true });
        if (a.links) {
          await copyTreeWithLinks(a.from, at(a.to));
          o.print(`copied ${a.from} to ${at(a.to)} (links kept)`);
        } else {
          const n = await copyTree(a.from, at(a.to));
          o.print(`copied ${n} files to ${at(a.to)}`);
        }
        break;
      }
      case "copy": {
        const path = at(a.to);
        if (!a.overwrite && await exists(path)) {
          // the household's content stays; its owner and mode are set again
          await inParent(path, () => {
            own(path, "file", a.mode, idsOf(path, a.owner, a.group));
          });
          o.print(`kept ${path} (${a.owner}:${a.group} 0${a.mode.toString(8)})`);
          break;
        }
        await place(path, a, async (tmp) => {
          await Deno.copyFile(await Deno.realPath(a.from), tmp);
        });
        o.print(`installed ${path}`);
        break;
      }
      case "file": {
        const path = at(a.path);
        if (!a.overwrite && await exists(path)) {
          await inParent(path, () => {
            own(path, "file", a.mode, idsOf(path, a.owner, a.group));
          });
          o.print(`kept ${path}`);
          break;
        }
        await place(path, a, async (tmp) => {
          await Deno.writeTextFile(tmp, a.content, { mode: a.mode });
        });
        o.print(`wrote ${path}`);
        break;
      }
      case "key": {
        // the secrets folder is the service user's: generate and chown while it is frozen
        const path = at(a.path);
        const ids = idsOf(path, a.owner, a.owner);
        const kept = await exists(path);
        await inParent(path, async () => {
          if (!kept) await generateKeyFile(path);
          own(path, "file", 0o600, ids);
        });
        o.print(kept ? `kept key ${path}` : `generated key ${path} (0600)`);
        break;
      }
      case "cache":
        await Deno.mkdir(at(a.dir), { recursive: true, mode: 0o755 });
        // /opt/joi/deno.json says nodeModulesDir "manual": npm packages come from the
        // shipped node_modules, so this never reaches a registry (joi's VM has none).
        await run(o.denoCommand ?? "deno", ["cache", "--frozen", ...a.entries], {
          cwd: at("/opt/joi"),
          env: { DENO_DIR: at(a.dir), DENO_NO_UPDATE_CHECK: "1" },
        });
        o.print(`pre-filled ${at(a.dir)} for ${a.entries.length} entry modules`);
        break;
      case "note":
        o.print(`next: ${a.text}`);
        break;
    }
  }
}
