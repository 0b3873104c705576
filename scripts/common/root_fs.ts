/**
 * How root touches files in trees another user can write. Every chown, chmod
 * and file creation of provision, install and revoke goes through here.
 *
 * The rule: **never act on a path another user can change between the check
 * and the act.** When root re-runs provision, the service user owns most of
 * `/var/lib/joi`; it can rename any entry there, and swap a directory or file
 * for a symlink between the plan's look and root's chown, which then lands on
 * the symlink's target (`/etc/group`, making that user root). Two facts of
 * Deno 2.9.6, measured here, shape the defence:
 *
 * - there is no `openat`: every call takes a whole path, resolved again from
 *   `/` (and `/proc/self/fd/N/...` needs `--allow-all`);
 * - Deno resolves symlinks itself before the system call (`readlink` on every
 *   component, then `open` of the target), so `O_NOFOLLOW` alone does not
 *   refuse a symlink that points at an existing file.
 *
 * So the walk makes the path stable first, then acts on descriptors:
 *
 * 1. from the anchor (the highest directory another user may write: its own
 *    parents are root's) down to the parent of the target, each directory is looked at
 *    with `lstat` (a symlink is refused, naming it), opened
 *    (`O_NOFOLLOW|O_DIRECTORY`) and checked to be the inode `lstat` saw;
 * 2. a directory whose entries someone other than root (or the caller) could
 *    rename (not root's, or group/other-writable; in a sticky directory, an
 *    entry not root's) is **frozen**: `fchown` to root and write bits off, on
 *    its descriptor, then checked to still be at its name. From then on
 *    nobody but root can change the path above the target;
 * 3. the target is `lstat`ed (a symlink, FIFO, socket or device where a file
 *    or directory is expected is refused, naming it; a regular file with more
 *    than one hard link too), opened, checked to be that inode, and changed
 *    with `fchown`/`fchmod` on the descriptor; files are created with
 *    `O_CREAT|O_EXCL`;
 * 4. every frozen directory gets its owner and mode back, on its descriptor.
 *
 * While frozen (microseconds per operation), a directory's owner may see
 * `EACCES`; if the process dies in between, the directory stays root's until
 * the next provision run, which puts it back (validate reports it meanwhile).
 *
 * @module
 */
import * as fs from "node:fs";

const {
  O_RDONLY,
  O_WRONLY,
  O_CREAT,
  O_EXCL,
  O_NOFOLLOW,
  O_DIRECTORY,
  O_NONBLOCK,
  O_NOCTTY,
} = fs.constants;

/** A path refused because it is not what it must be, or changed under us. */
export class UnsafePathError extends Error {
  /** The offending path. */
  readonly path: string;

  /** Builds the error for `path`. */
  constructor(path: string, message: string) {
    super(message);
    this.name = "UnsafePathError";
    this.path = path;
  }
}

/** What a path must end up as. `null` ids are left as they are. */
export interface Ownership {
  /** Owner uid, or null to keep it. */
  uid: number | null;
  /** Group gid, or null to keep it. */
  gid: number | null;
  /** Permission bits including setuid/setgid/sticky. */
  mode: number;
}

/** A directory or a regular file. */
export type Kind = "dir" | "file";

interface Held {
  path: string;
  fd: number;
  dev: number;
  ino: number;
  /** Owner and mode before freezing, when frozen. */
  frozen?: { uid: number; gid: number; mode: number };
}

/** Our uid, when the sandbox lets us ask (`--allow-sys=uid`); root's programs need not. */
function euid(): number | undefined {
  try {
    return Deno.uid() ?? undefined;
  } catch {
    return undefined;
  }
}
const trusted = (uid: number) => uid === 0 || uid === euid();

function describeType(info: Deno.FileInfo): string {
  if (info.isSymlink) return "a symlink";
  if (info.isDirectory) return "a directory";
  if (info.isFile) return "a regular file";
  if (info.isFifo) return "a FIFO";
  if (info.isSocket) return "a socket";
  if (info.isCharDevice || info.isBlockDevice) return "a device";
  return "not a file or directory";
}

function lstat(path: string): Deno.FileInfo | undefined {
  try {
    return Deno.lstatSync(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}

function expectKind(path: string, info: Deno.FileInfo, kind: Kind): void {
  const ok = kind === "dir" ? info.isDirectory : info.isFile;
  if (!ok || info.isSymlink) {
    throw new UnsafePathError(
      path,
      `${path} is ${describeType(info)} where a ${
        kind === "dir" ? "directory" : "regular file"
      } is expected: refusing to follow or change it (move it away and re-run)`,
    );
  }
}

/** Opens what `info` describes at `path` and checks the descriptor is that inode. */
function openSame(path: string, info: Deno.FileInfo, kind: Kind): number {
  expectKind(path, info, kind);
  const flags = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | (kind === "dir" ? O_DIRECTORY : 0);
  let fd: number;
  try {
    fd = fs.openSync(path, flags);
  } catch (e) {
    throw new UnsafePathError(path, `${path} changed while it was opened: ${String(e)}`);
  }
  const st = fs.fstatSync(fd);
  if (st.dev !== info.dev || st.ino !== info.ino) {
    fs.closeSync(fd);
    throw new UnsafePathError(path, `${path} was replaced while it was opened: refusing it`);
  }
  if (kind === "file" && st.nlink > 1) {
    fs.closeSync(fd);
    throw new UnsafePathError(
      path,
      `${path} has ${st.nlink} hard links: refusing to change a file that is also elsewhere`,
    );
  }
  return fd;
}

/** Whether others than root (or us) could rename entries of this directory. */
function entriesMovable(info: Deno.FileInfo): boolean {
  const mode = info.mode ?? 0;
  const sticky = (mode & 0o1000) !== 0;
  return !trusted(info.uid ?? -1) || ((mode & 0o022) !== 0 && !sticky);
}

function stickyOpen(info: Deno.FileInfo): boolean {
  const mode = info.mode ?? 0;
  return (mode & 0o1000) !== 0 && (mode & 0o022) !== 0;
}

function release(held: Held[]): void {
  const errors: string[] = [];
  for (const h of [...held].reverse()) {
    try {
      if (h.frozen) {
        fs.fchownSync(h.fd, h.frozen.uid, h.frozen.gid);
        fs.fchmodSync(h.fd, h.frozen.mode);
      }
    } catch (e) {
      errors.push(`${h.path}: ${String(e)}`);
    } finally {
      fs.closeSync(h.fd);
    }
  }
  if (errors.length > 0) {
    throw new Error(`could not give frozen directories back: ${errors.join("; ")}`);
  }
}

/**
 * Holds `anchor` and every directory below it down to `dir` (creating missing
 * ones, root-owned 0755, when `create`), frozen where needed. The caller must
 * {@link release}. `anchor`'s own parents are trusted (root's: `/var/lib`,
 * `/etc`), not checked: the program may not even be allowed to read them.
 */
function holdDirs(anchor: string, dir: string, create: boolean): Held[] {
  if (dir !== anchor && !dir.startsWith(`${anchor}/`)) {
    throw new TypeError(`root_fs: ${dir} is not inside ${anchor}`);
  }
  const parts = dir.slice(anchor.length).split("/").filter((p) => p !== "" && p !== ".");
  if (parts.includes("..")) throw new TypeError(`root_fs: ${dir} holds ".."`);
  const held: Held[] = [];
  try {
    let path = anchor;
    let parentSticky = false;
    for (let i = 0; i <= parts.length; i++) {
      if (i > 0) path = `${path}/${parts[i - 1]}`;
      let info = lstat(path);
      if (!info && create && i > 0) {
        Deno.mkdirSync(path, { mode: 0o755 });
        info = lstat(path);
      }
      if (!info) throw new UnsafePathError(path, `${path} does not exist`);
      const fd = openSame(path, info, "dir");
      const h: Held = { path, fd, dev: info.dev, ino: info.ino ?? 0 };
      held.push(h);
      const movable = parentSticky && !trusted(info.uid ?? -1);
      if (entriesMovable(info) || movable) freeze(h, info);
      parentSticky = stickyOpen(info) && !h.frozen;
    }
    return held;
  } catch (e) {
    release(held);
    throw e;
  }
}

function freeze(h: Held, info: Deno.FileInfo): void {
  const mode = (info.mode ?? 0) & 0o7777;
  try {
    fs.fchownSync(h.fd, 0, -1);
  } catch (e) {
    throw new UnsafePathError(
      h.path,
      `${h.path} can be changed by uid ${info.uid} and this process cannot take it over ` +
        `(not root?): it is not safe to work below it (${String(e)})`,
    );
  }
  h.frozen = { uid: info.uid ?? 0, gid: info.gid ?? 0, mode };
  fs.fchmodSync(h.fd, mode & ~0o022);
  // the name must still lead to the inode we froze (it could have moved just before)
  const now = lstat(h.path);
  if (!now || now.isSymlink || now.dev !== h.dev || now.ino !== h.ino) {
    throw new UnsafePathError(h.path, `${h.path} was replaced while it was made safe: refusing it`);
  }
}

function parentOf(path: string): string {
  const i = path.lastIndexOf("/");
  return i < 0 ? "." : i === 0 ? "/" : path.slice(0, i);
}

function applyOwnership(fd: number, own: Ownership): void {
  if (own.uid !== null || own.gid !== null) fs.fchownSync(fd, own.uid ?? -1, own.gid ?? -1);
  fs.fchmodSync(fd, own.mode); // after chown, which clears setgid
}

/** What {@link placePath} did. */
export type Placed = "created" | "changed" | "unchanged";

/** Where the walk starts (see {@link placePath}). */
export interface WalkOptions {
  /**
   * The highest directory another user may write, at or above the target's
   * parent (e.g. `/var/lib/joi`): it and everything below it is walked and
   * frozen as needed. Default: the target's parent is root's and is trusted
   * as it is (`/etc/sudoers.d`, `/usr/local/bin`).
   */
  anchor?: string;
}

/** Options of {@link placePath}. */
export interface PlaceOptions extends WalkOptions {
  /** Create the target (empty file or directory) when it is absent. */
  create?: boolean;
  /** Also create missing directories between the anchor and the target (root's, 0755). */
  parents?: boolean;
}

/** Holds the target's parent chain from the anchor, or nothing when the parent is trusted. */
function hold(path: string, o: WalkOptions & { parents?: boolean }): Held[] {
  const parent = parentOf(path);
  return o.anchor === undefined ? [] : holdDirs(o.anchor, parent, o.parents === true);
}

/**
 * Brings `path` to `own` (see the module rule): creates it when absent and
 * `create` is set, otherwise sets owner, group and mode on its descriptor.
 * Throws {@link UnsafePathError} for a symlink, a path of the wrong type, a
 * file with several hard links, or a path that changed under the walk.
 */
export function placePath(
  path: string,
  kind: Kind,
  own: Ownership,
  options: PlaceOptions = {},
): Placed {
  const held = hold(path, options);
  try {
    let info = lstat(path);
    let created = false;
    if (!info) {
      if (!options.create) throw new UnsafePathError(path, `${path} does not exist`);
      if (kind === "dir") Deno.mkdirSync(path, { mode: 0o700 });
      else fs.closeSync(fs.openSync(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600));
      created = true;
      info = lstat(path)!;
    }
    const fd = openSame(path, info, kind);
    try {
      const before = fs.fstatSync(fd);
      const same = (own.uid === null || before.uid === own.uid) &&
        (own.gid === null || before.gid === own.gid) && (before.mode & 0o7777) === own.mode;
      if (!same) applyOwnership(fd, own);
      return created ? "created" : same ? "unchanged" : "changed";
    } finally {
      fs.closeSync(fd);
    }
  } finally {
    release(held);
  }
}

/**
 * Creates `path`, which must not exist (`O_CREAT|O_EXCL`: never through a
 * symlink), writes `bytes`, sets owner and mode on the descriptor and fsyncs.
 */
export function writeNewFile(
  path: string,
  bytes: Uint8Array,
  own: Ownership,
  options: WalkOptions = {},
): void {
  const held = hold(path, options);
  try {
    const fd = fs.openSync(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NOCTTY, 0o600);
    try {
      let off = 0;
      while (off < bytes.length) off += fs.writeSync(fd, bytes, off, bytes.length - off);
      applyOwnership(fd, own);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } finally {
    release(held);
  }
}

/**
 * Runs `fn` while `dir` (a directory another user may write, whose parents
 * are root's) is held frozen: nobody but root can add, rename or remove its
 * entries meanwhile, so `fn` may use plain paths inside it (e.g. a key
 * written beside a temporary name, then linked). Owner and mode come back
 * afterwards, also when `fn` throws.
 */
export async function whileFrozen<T>(dir: string, fn: () => T | Promise<T>): Promise<T> {
  const held = holdDirs(dir, dir, false);
  try {
    return await fn();
  } finally {
    release(held);
  }
}
