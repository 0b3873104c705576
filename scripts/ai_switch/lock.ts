/**
 * The switch lock: an exclusive `flock` on a lock file, so two switches never
 * interleave. The kernel releases it when the holder dies, so a crashed switch
 * leaves no stale lock; the holder's pid is written in the file for messages.
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
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true, write: true, create: true, mode: 0o600 });
  } catch (e) {
    throw new Error(
      `cannot open the lock file ${path}: ${(e as Error).message} ` +
        `(set --lock-file to a writable path, or run as root)`,
    );
  }
  const holder = await readHolder(path);
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

async function readHolder(path: string): Promise<string> {
  try {
    const text = (await Deno.readTextFile(path)).trim();
    return /^pid \d+$/.test(text) ? text : "unknown pid";
  } catch {
    return "unknown pid";
  }
}
