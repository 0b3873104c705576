/**
 * A folder of retrieve sockets the test sandbox admits (one of `r0..r3` in
 * this run's socket folder, each holding the shipped household's channel
 * sockets): claimed by creating it (atomic), released by removing it.
 *
 * @module
 */
import { testRetrieveSocketDirs } from "../../services/common/permissions/mod.ts";
import { testSocketDir } from "./sockets.ts";

/** Claims a free folder; throws when all are busy. */
export async function claimRetrieveDir(): Promise<{ dir: string; release: () => Promise<void> }> {
  const base = testSocketDir();
  // Channel users reach the sockets through this folder: it must be searchable.
  await Deno.mkdir(base, { recursive: true, mode: 0o755 });
  for (const dir of testRetrieveSocketDirs(base)) {
    try {
      Deno.mkdirSync(dir, { mode: 0o755 });
    } catch {
      continue; // taken by another test of this run
    }
    return { dir, release: () => Deno.remove(dir, { recursive: true }).catch(() => {}) };
  }
  throw new Error(`no free retrieve socket folder in ${base} (r0..r3)`);
}
