/**
 * The switch lock: an exclusive `flock` on a lock file, so two switches never
 * interleave. The kernel releases it when the holder dies, so a crashed switch
 * leaves no stale lock; the holder's pid is written in the file for messages.
 *
 * Its folder must be writable by its owner only ({@link checkLockDir}), and
 * even then nothing found at the lock's name is trusted: Deno resolves
 * symlinks itself before opening, so the kernel's `protected_symlinks` does
 * not stop root from following one (in world-writable `/run/lock`, where the
 * lock used to live, any local user could plant one, and truncating "the
 * lock" truncated its target, `/etc/shadow`). So the file is only ever
 * created with `O_EXCL`, and an existing one is opened without creating, then
 * checked through its descriptor to be the regular, singly linked inode
 * `lstat` saw; a symlink, FIFO, device or hard link is refused, naming the
 * path, and nothing is written before that check (the rule of
 * `scripts/common/root_fs.ts`).
 *
 * @module
 */

/** A held lock. */
export interface Lock {
  /** Releases the lock and closes the file. */
  release(): void;
}

/** Another switch held the lock for longer than the wait allowed. */
export class LockTimeoutError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "LockTimeoutError";
  }
}

/** Options of {@link acquireLock}. */
export interface LockOptions {
  /** How long to wait for a running switch to finish, ms. */
  timeoutMs: number;
  /** Called once if the lock is busy (to tell the operator we wait). */
  onWait?: (holder: string) => void;
}

/**
 * Checks (creating it 0700 when missing) the folder of the lock file: a
 * directory, not a link, that no one but its owner (root, or whoever runs
 * ai-switch) may write. Where others may create files (`/run/lock` is 1777),
 * any local user could create the lock first and block every switch.
 */
export async function checkLockDir(dir: string): Promise<void> {
  let st: Deno.FileInfo;
  try {
    st = await Deno.lstat(dir);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    try {
      await Deno.mkdir(dir, { mode: 0o700 });
    } catch (e) {
      throw new Error(
        `cannot create the lock's folder ${dir}: ${(e as Error).message} ` +
          `(set --lock-file to a path in a folder only you may write, or run as root)`,
      );
    }
    st = await Deno.lstat(dir);
  }
  const mode = (st.mode ?? 0) & 0o7777;
  const owner = st.uid ?? -1;
  if (!st.isDirectory || st.isSymlink) {
    throw new Error(`the lock's folder ${dir} is not a directory: move it away`);
  }
  if ((mode & 0o022) !== 0 || (owner !== 0 && owner !== Deno.uid())) {
    throw new Error(
      `the lock's folder ${dir} (owner uid ${owner}, mode 0${mode.toString(8)}) lets another ` +
        `user create the lock file and block every switch: chown root ${dir} && chmod 0700 ${dir}`,
    );
  }
}

/**
 * Takes the exclusive lock on `path` (created 0600 if missing, in a folder
 * {@link checkLockDir} accepts), waiting up to `timeoutMs` for another switch
 * to finish.
 */
export async function acquireLock(path: string, options: LockOptions): Promise<Lock> {
  await checkLockDir(path.slice(0, path.lastIndexOf("/")) || "/");
  const file = openLockFile(path);
  const holder = readHolder(file);
  let acquired = false;
  let timedOut = false;
  const locking = file.lock(true).then(() => {
    acquired = true;
    // The wait gave up: let go as soon as the lock comes.
    if (timedOut) file.close();
  });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), options.timeoutMs);
  });
  // Give an uncontended lock a chance before telling anyone we wait.
  let tickTimer: ReturnType<typeof setTimeout> | undefined;
  const tick = new Promise<"waiting">((resolve) => {
    tickTimer = setTimeout(() => resolve("waiting"), 20);
  });
  const first = await Promise.race([locking.then(() => "locked" as const), tick]);
  clearTimeout(tickTimer);
  if (first !== "locked" && options.onWait) options.onWait(holder);
  const outcome = await Promise.race([locking.then(() => "locked" as const), timeout]);
  clearTimeout(timer);
  if (outcome === "timeout" && !acquired) {
    timedOut = true;
    throw new LockTimeoutError(
      `another ai-switch (${holder}) still holds ${path} after ` +
        `${options.timeoutMs / 1000} s: wait for it to finish, or raise --lock-timeout`,
    );
  }
  await file.truncate(0);
  await file.write(new TextEncoder().encode(`pid ${Deno.pid}\n`));
  return {
    release() {
      try {
        file.truncateSync(0);
        file.unlockSync();
      } finally {
        file.close();
      }
    },
  };
}

function describe(info: Deno.FileInfo): string {
  if (info.isSymlink) return "a symlink";
  if (info.isDirectory) return "a directory";
  if (info.isFifo) return "a FIFO";
  if (info.isSocket) return "a socket";
  if (info.isCharDevice || info.isBlockDevice) return "a device";
  return "not a regular file";
}

/** Refuses anything but a regular file with one link (see the module note). */
function checkRegular(path: string, info: Deno.FileInfo): void {
  if (!info.isFile || info.isSymlink) {
    throw new Error(
      `the lock file ${path} is ${describe(info)}, not a regular file: refusing to open it ` +
        `(someone may have planted it; remove it and re-run)`,
    );
  }
  if ((info.nlink ?? 1) > 1) {
    throw new Error(
      `the lock file ${path} has ${info.nlink} hard links: refusing to write a file that is ` +
        `also elsewhere (remove it and re-run)`,
    );
  }
}

function cannotOpen(path: string, e: unknown): Error {
  return new Error(
    `cannot open the lock file ${path}: ${(e as Error).message} ` +
      `(set --lock-file to a writable path, or run as root)`,
  );
}

/** Opens (or creates, `O_EXCL`) the lock file, checked through its descriptor. */
function openLockFile(path: string): Deno.FsFile {
  for (let attempt = 0; attempt < 3; attempt++) {
    let before: Deno.FileInfo | undefined;
    try {
      before = Deno.lstatSync(path);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw cannotOpen(path, e);
    }
    if (before === undefined) {
      try {
        return Deno.openSync(path, { read: true, write: true, createNew: true, mode: 0o600 });
      } catch (e) {
        if (e instanceof Deno.errors.AlreadyExists) continue; // appeared meanwhile: look again
        throw cannotOpen(path, e);
      }
    }
    checkRegular(path, before);
    let file: Deno.FsFile;
    try {
      file = Deno.openSync(path, { read: true, write: true });
    } catch (e) {
      throw cannotOpen(path, e);
    }
    try {
      const now = file.statSync();
      if (now.dev !== before.dev || now.ino !== before.ino) {
        throw new Error(
          `the lock file ${path} was replaced while it was opened: refusing it (re-run)`,
        );
      }
      checkRegular(path, now);
      return file;
    } catch (e) {
      file.close();
      throw e instanceof Error && e.message.startsWith("the lock file") ? e : cannotOpen(path, e);
    }
  }
  throw new Error(`the lock file ${path} keeps changing: refusing it (re-run)`);
}

function readHolder(file: Deno.FsFile): string {
  try {
    const buf = new Uint8Array(64);
    const n = file.readSync(buf) ?? 0;
    file.seekSync(0, Deno.SeekMode.Start);
    const text = new TextDecoder().decode(buf.subarray(0, n)).trim();
    return /^pid \d+$/.test(text) ? text : "unknown pid";
  } catch {
    return "unknown pid";
  }
}
