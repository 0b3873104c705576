/**
 * Carries out a provision plan: accounts with the shadow tools, directories
 * and files with exact owners and modes, the sudoers file staged under a
 * dotted name (which sudo ignores), checked, then renamed into place.
 *
 * Every file operation goes through `scripts/common/root_fs.ts`, whose rule
 * is binding here: root runs this over the state tree the service user owns,
 * so nothing is done by a path that user could change between the look and
 * the act (symlinks are refused, naming them; owners and modes are set on
 * descriptors of a walk made stable first).
 *
 * @module
 */
import { placePath, writeNewFile } from "../common/root_fs.ts";
import { type Action, describe, type PathSpec } from "./plan.ts";
import { replaceFile } from "./replace.ts";
import { checkSudoersFile, checkSudoersName, runasUsers } from "./sudoers.ts";
import { type Accounts, readAccounts } from "./system.ts";

/** Absolute paths of the tools provision runs (its manifest lists exactly these). */
export interface Tools {
  /** useradd. */
  useradd: string;
  /** groupadd. */
  groupadd: string;
  /** gpasswd. */
  gpasswd: string;
  /** visudo. */
  visudo: string;
}

/** The Debian paths. */
export const DEFAULT_TOOLS: Tools = {
  useradd: "/usr/sbin/useradd",
  groupadd: "/usr/sbin/groupadd",
  gpasswd: "/usr/bin/gpasswd",
  visudo: "/usr/sbin/visudo",
};

/** Options of {@link applyActions}. */
export interface ApplyOptions {
  /** Staging root ("" for the live system). */
  root: string;
  /** Tools (default {@link DEFAULT_TOOLS}). */
  tools?: Tools | undefined;
  /** Where `passwd`/`group` are read after account changes (default `/etc`). */
  etc?: string | undefined;
  /**
   * Directories other users may write (the state directory, as installed,
   * without the staging root): paths below one are walked from it (see
   * root_fs). Paths elsewhere have root's parents (`/etc/sudoers.d`).
   */
  trees?: string[] | undefined;
  /** Progress (one line per action). */
  onAction?: ((line: string) => void) | undefined;
}

function run(bin: string, args: string[]): void {
  const out = new Deno.Command(bin, { args, stdin: "null", stdout: "piped", stderr: "piped" })
    .outputSync();
  if (!out.success) {
    const err = new TextDecoder().decode(out.stderr).trim();
    throw new Error(`provision: ${bin} ${args.join(" ")} failed (exit ${out.code}): ${err}`);
  }
}

/** Applies `actions` in order; returns the accounts as they are afterwards. */
export function applyActions(actions: Action[], options: ApplyOptions): Accounts {
  const tools = options.tools ?? DEFAULT_TOOLS;
  const etc = options.etc ?? "/etc";
  let accounts: Accounts | undefined;
  const acc = () => accounts ??= readAccounts(`${etc}/passwd`, `${etc}/group`);
  const dirty = () => accounts = undefined;
  for (const a of actions) {
    options.onAction?.(describe(a));
    switch (a.kind) {
      case "add_group":
        run(tools.groupadd, ["--system", a.group]);
        dirty();
        break;
      case "add_user":
        run(tools.useradd, [
          "--system",
          "--user-group",
          "--no-create-home",
          "--home-dir",
          "/nonexistent",
          "--shell",
          "/usr/sbin/nologin",
          a.user,
        ]);
        dirty();
        break;
      case "add_member":
        run(tools.gpasswd, ["-a", a.user, a.group]);
        dirty();
        break;
      case "remove_member":
        run(tools.gpasswd, ["-d", a.user, a.group]);
        dirty();
        break;
      case "create":
      case "fix":
      case "write":
        place(a.spec, a.kind, options, acc(), tools);
        break;
      case "remove":
        try {
          Deno.removeSync(options.root + a.path);
        } catch (e) {
          if (!(e instanceof Deno.errors.NotFound)) throw e;
        }
        break;
      case "install_entry":
        installEntry(a.source, options.root + a.path);
        break;
    }
  }
  return acc();
}

function ids(
  spec: PathSpec,
  accounts: Accounts,
  root: string,
): { uid: number | undefined; gid: number | undefined } {
  const uid = spec.owner === "root" ? 0 : accounts.users.get(spec.owner)?.uid;
  const gid = spec.group === "root" ? 0 : accounts.groups.get(spec.group)?.gid;
  if (root === "" && (uid === undefined || gid === undefined)) {
    throw new Error(
      `provision: ${spec.path}: owner ${spec.owner} or group ${spec.group} does not exist`,
    );
  }
  return { uid, gid };
}

function anchorOf(path: string, trees: readonly string[], root: string): string | undefined {
  const tree = trees.find((t) => path.startsWith(`${t}/`));
  return tree === undefined ? undefined : root + tree;
}

function place(
  spec: PathSpec,
  kind: "create" | "fix" | "write",
  options: ApplyOptions,
  accounts: Accounts,
  tools: Tools,
): void {
  const root = options.root;
  const path = root + spec.path;
  const { uid, gid } = ids(spec, accounts, root);
  const own = { uid: uid ?? null, gid: gid ?? null, mode: spec.mode };
  const anchor = anchorOf(spec.path, options.trees ?? [], root);
  const walk = anchor === undefined ? {} : { anchor, parents: true };
  if (anchor === undefined) {
    // root's folders (/etc/audit/rules.d, a staging prefix) may not exist yet;
    // one the sandbox does not name (/var/lib for /var/lib/joi) is the
    // system's own, which exists
    try {
      Deno.mkdirSync(path.slice(0, path.lastIndexOf("/")) || "/", { recursive: true, mode: 0o755 });
    } catch (e) {
      if (!(e instanceof Deno.errors.NotCapable)) throw e;
    }
  }
  if (kind === "fix" || spec.content === undefined) {
    placePath(path, spec.type, own, { ...walk, create: kind === "create" });
    return;
  }
  // content: stage beside the target under a dotted name, check, then rename
  if (spec.validate === "sudoers") checkSudoersName(path);
  const content = spec.content;
  replaceFile(path, "provision-new", (staged) => {
    writeNewFile(staged, new TextEncoder().encode(content), own, walk);
    if (spec.validate === "sudoers") {
      checkSudoersFile(
        staged,
        runasUsers(content),
        (u) => root !== "" || accounts.users.has(u),
        tools.visudo,
      );
    }
  });
}

function installEntry(source: string, path: string): void {
  replaceFile(path, "provision-new", (staged) => {
    Deno.copyFileSync(source, staged);
    // /usr/local/bin is root's: the staged name cannot be swapped by anyone else
    placePath(staged, "file", { uid: 0, gid: 0, mode: 0o755 });
  });
}
