/**
 * Carries out an installation plan, under a root prefix (`/` for a real
 * install, a staging directory otherwise). Users and groups are only created
 * for a real install; ownership is applied when the named user exists.
 * Existing household configuration and keys are never overwritten.
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

/** Copies a tree, materialising symlinks (Deno grants symlink() only with unscoped flags). */
async function copyTree(from: string, to: string): Promise<number> {
  const info = await Deno.stat(from);
  if (info.isFile) {
    await Deno.copyFile(from, to);
    await Deno.chmod(to, info.mode! & 0o111 ? 0o755 : 0o644);
    return 1;
  }
  await Deno.mkdir(to, { recursive: true, mode: 0o755 });
  let n = 0;
  for await (const e of Deno.readDir(from)) {
    try {
      n += await copyTree(`${from}/${e.name}`, `${to}/${e.name}`);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound && e.isSymlink) continue; // dangling link
      throw err;
    }
  }
  return n;
}

/**
 * Writes `path` through `<path>.tmp` (the name the manifest admits): parent
 * created, `write` fills the temporary file, mode set, renamed into place.
 */
async function placeViaTmp(
  path: string,
  mode: number,
  write: (tmp: string) => Promise<void>,
): Promise<void> {
  await Deno.mkdir(path.replace(/\/[^/]+$/, ""), { recursive: true, mode: 0o755 });
  await write(`${path}.tmp`);
  await Deno.chmod(`${path}.tmp`, mode);
  await Deno.rename(`${path}.tmp`, path);
}

/** Applies `plan`, printing (through `o.print`) a line for each change. */
export async function applyPlan(plan: Action[], o: ApplyOptions): Promise<void> {
  const real = o.root === "/";
  const at = (p: string) => (real ? p : `${o.root}${p}`);
  // read once, and again only after a user or group was added
  let known: { users: Map<string, number>; groups: Map<string, number> } | undefined;
  const accounts = () => known ??= { users: ids(at("/etc/passwd")), groups: ids(at("/etc/group")) };
  /** The ids to give `owner:group` here, or null (left as they are) when unknown. */
  const idsOf = (path: string, owner: string, group: string): Ownership | undefined => {
    const uid = owner === "root" ? 0 : accounts().users.get(owner);
    const gid = group === "root" ? 0 : accounts().groups.get(group);
    if (uid === undefined || gid === undefined) {
      o.print(`  (ownership ${owner}:${group} of ${path} not applied: no such user/group here)`);
      return undefined;
    }
    return { uid, gid, mode: 0 };
  };
  const own = (path: string, kind: "dir" | "file", mode: number, ids?: Ownership) =>
    placePath(path, kind, { uid: ids?.uid ?? null, gid: ids?.gid ?? null, mode }, {
      create: kind === "dir",
    });
  for (const a of plan) {
    switch (a.kind) {
      case "group":
        if (!real) break;
        if (!accounts().groups.has(a.name)) {
          await run("/usr/sbin/groupadd", ["--system", a.name]);
          known = undefined;
          o.print(`created group ${a.name}`);
        }
        break;
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
        // the parents are root's (/var/lib, /etc, a staging prefix)
        await Deno.mkdir(path.replace(/\/[^/]+$/, "") || "/", { recursive: true, mode: 0o755 });
        const ids = real || Deno.uid() === 0 ? idsOf(path, a.owner, a.group) : undefined;
        own(path, "dir", a.mode, ids);
        break;
      }
      case "tree": {
        if (await exists(at(a.to))) await Deno.remove(at(a.to), { recursive: true });
        const n = await copyTree(a.from, at(a.to));
        o.print(`copied ${n} files to ${at(a.to)}`);
        break;
      }
      case "copy":
        if (!a.overwrite && await exists(at(a.to))) {
          o.print(`kept ${at(a.to)}`);
          break;
        }
        await placeViaTmp(at(a.to), a.mode, async (tmp) => {
          await Deno.copyFile(await Deno.realPath(a.from), tmp);
        });
        o.print(`installed ${at(a.to)}`);
        break;
      case "file":
        if (!a.overwrite && await exists(at(a.path))) {
          o.print(`kept ${at(a.path)}`);
          break;
        }
        await placeViaTmp(at(a.path), a.mode, async (tmp) => {
          await Deno.writeTextFile(tmp, a.content, { mode: a.mode });
          if (Deno.uid() === 0) own(tmp, "file", a.mode, idsOf(at(a.path), a.owner, a.group));
        });
        o.print(`wrote ${at(a.path)}`);
        break;
      case "key":
        if (await exists(at(a.path))) {
          o.print(`kept key ${at(a.path)}`);
          break;
        }
        {
          // the secrets folder is the service user's: generate and chown while it is frozen
          const path = at(a.path);
          const dir = path.replace(/\/[^/]+$/, "");
          const ids = Deno.uid() === 0 ? idsOf(path, a.owner, a.owner) : undefined;
          await whileFrozen(dir, async () => {
            await generateKeyFile(path);
            own(path, "file", 0o600, ids);
          });
        }
        o.print(`generated key ${at(a.path)} (0600)`);
        break;
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
