/**
 * Voice files: resolving an attachment id to its file without leaving the
 * attachments folder, deleting files, and sweeping anything older than the
 * retention (voice files are never kept more than `retention_minutes`, even
 * across a crash).
 *
 * @module
 */

const ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$/;

/** The path of attachment `id` in `dir`, or null when `id` is not a plain name. */
export function attachmentPath(dir: string, id: string): string | null {
  if (!ID.test(id) || id.includes("..")) return null;
  return `${dir.replace(/\/+$/, "")}/${id}`;
}

/** Deletes a file; absent is fine. */
export async function removeQuietly(path: string): Promise<void> {
  try {
    await Deno.remove(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}

/**
 * Deletes regular files in `dir` last modified more than `maxAgeMs` ago.
 * Returns how many were deleted. A missing folder counts as empty.
 */
export async function sweep(dir: string, maxAgeMs: number, now = Date.now()): Promise<number> {
  let n = 0;
  let entries: AsyncIterable<Deno.DirEntry>;
  try {
    entries = Deno.readDir(dir);
  } catch {
    return 0;
  }
  try {
    for await (const e of entries) {
      if (!e.isFile) continue;
      const p = `${dir}/${e.name}`;
      try {
        const st = await Deno.lstat(p);
        const t = st.mtime?.getTime() ?? 0;
        if (now - t > maxAgeMs) {
          await removeQuietly(p);
          n++;
        }
      } catch { /* raced with another delete */ }
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return n;
}
