/**
 * What the system looks like now: users and groups (from `/etc/passwd` and
 * `/etc/group`) and the owner, group and mode of paths, read without following
 * symlinks.
 *
 * @module
 */

/** One `/etc/passwd` entry. */
export interface PasswdEntry {
  /** Login name. */
  name: string;
  /** uid. */
  uid: number;
  /** Primary gid. */
  gid: number;
}

/** One `/etc/group` entry. */
export interface GroupEntry {
  /** Group name. */
  name: string;
  /** gid. */
  gid: number;
  /** Supplementary members. */
  members: string[];
}

/** Users and groups as the system has them. */
export interface Accounts {
  /** Users by name. */
  users: Map<string, PasswdEntry>;
  /** Groups by name. */
  groups: Map<string, GroupEntry>;
}

/** Parses `/etc/passwd` text. */
export function parsePasswd(text: string): Map<string, PasswdEntry> {
  const out = new Map<string, PasswdEntry>();
  for (const line of text.split("\n")) {
    const [name = "", , uid, gid] = line.split(":");
    if (gid === undefined || name === "" || line.startsWith("#")) continue;
    out.set(name, { name, uid: Number(uid), gid: Number(gid) });
  }
  return out;
}

/** Parses `/etc/group` text. */
export function parseGroup(text: string): Map<string, GroupEntry> {
  const out = new Map<string, GroupEntry>();
  for (const line of text.split("\n")) {
    const [name = "", , gid, members] = line.split(":");
    if (members === undefined || name === "" || line.startsWith("#")) continue;
    out.set(name, {
      name,
      gid: Number(gid),
      members: members.split(",").map((s) => s.trim()).filter((s) => s !== ""),
    });
  }
  return out;
}

/** Reads the accounts of the system from its `passwd` and `group` files. */
export function readAccounts(passwdFile = "/etc/passwd", groupFile = "/etc/group"): Accounts {
  return {
    users: parsePasswd(Deno.readTextFileSync(passwdFile)),
    groups: parseGroup(Deno.readTextFileSync(groupFile)),
  };
}

/** Owner, group, mode and type of a path, or undefined when it does not exist. */
export interface PathState {
  /** `dir`, `file`, `symlink` or `other`. */
  type: "dir" | "file" | "symlink" | "other";
  /** uid. */
  uid: number;
  /** gid. */
  gid: number;
  /** Permission bits including setuid/setgid/sticky (`mode & 0o7777`). */
  mode: number;
  /** Size in bytes. */
  size: number;
}

/** lstat of `path` as a {@link PathState}. */
export function pathState(path: string): PathState | undefined {
  let st: Deno.FileInfo;
  try {
    st = Deno.lstatSync(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
  return {
    type: st.isSymlink ? "symlink" : st.isDirectory ? "dir" : st.isFile ? "file" : "other",
    uid: st.uid ?? -1,
    gid: st.gid ?? -1,
    mode: (st.mode ?? 0) & 0o7777,
    size: st.size,
  };
}
