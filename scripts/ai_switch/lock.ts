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
 * Takes the exclusive lock on `path` (created 0600 if missing), waiting up to
 * `timeoutMs` for another switch to finish.
 */
export async function acquireLock(path: string, options: LockOptions): Promise<Lock> {
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
