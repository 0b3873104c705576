/**
 * Unix socket paths for tests. Deno admits a Unix socket only by its exact
 * path, so the test sandbox lists {@link TEST_SOCKET_SLOTS} slots; the test
 * runner (`scripts/test.ts`) puts them in a folder of its own run and names it
 * in `JOI_TEST_SOCK_DIR`, so suites running side by side on one machine never
 * take or remove each other's sockets.
 *
 * @module
 */
import {
  TEST_SOCKET_DIR,
  TEST_SOCKET_SLOTS,
  testSocketPaths,
} from "../../services/common/permissions/mod.ts";

/** This run's socket folder (`JOI_TEST_SOCK_DIR`, or the shared default outside the runner). */
export function testSocketDir(): string {
  try {
    return Deno.env.get("JOI_TEST_SOCK_DIR") ?? TEST_SOCKET_DIR;
  } catch {
    return TEST_SOCKET_DIR; // run by hand without the runner's --allow-env
  }
}

/** The socket slots of this run, created folder included. */
export function socketSlots(): string[] {
  Deno.mkdirSync(testSocketDir(), { recursive: true });
  return testSocketPaths(testSocketDir());
}

/** Slot `i` (0..{@link TEST_SOCKET_SLOTS} - 1) of this run. */
export function socketSlot(i: number): string {
  const slot = socketSlots()[i];
  if (slot === undefined) throw new RangeError(`socket slot ${i}: there are ${TEST_SOCKET_SLOTS}`);
  return slot;
}

/**
 * Claims a free slot with an exclusive lock file, from the top down (tests
 * that use a fixed slot take low numbers). `release` removes the socket and
 * the lock.
 */
export function claimSocket(): { path: string; release: () => void } {
  for (const path of socketSlots().reverse()) {
    const lock = `${path}.lock`;
    try {
      Deno.openSync(lock, { write: true, createNew: true }).close();
    } catch {
      continue; // taken by another test of this run
    }
    return {
      path,
      release: () => {
        for (const p of [path, lock]) {
          try {
            Deno.removeSync(p);
          } catch { /* absent */ }
        }
      },
    };
  }
  throw new Error(`no free test socket slot in ${testSocketDir()}`);
}
