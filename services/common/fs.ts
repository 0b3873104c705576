/**
 * Small file-system helpers shared by the CLIs and services.
 *
 * @module
 */

/**
 * Whether anything (file, directory, link, socket) exists at `path`, without
 * following a final symlink. Only "not found" counts as absent: any other
 * failure (a permission the sandbox lacks, an I/O error) is thrown, so an
 * unreadable path is never mistaken for a missing one.
 */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}
