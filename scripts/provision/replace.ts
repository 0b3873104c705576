/**
 * Atomic replacement of a file: the new content is staged beside the target
 * under a dotted name (which sudo ignores in sudoers.d), checked by the
 * caller, then renamed over the target. Provision and revoke share it.
 *
 * @module
 */

function removeIfPresent(path: string): void {
  try {
    Deno.removeSync(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}

/** The staged name of `path`: `<dir>/.<name>.<suffix>`. */
function stagedPath(path: string, suffix: string): string {
  const parent = path.slice(0, path.lastIndexOf("/")) || "/";
  return `${parent}/.${path.slice(parent.length + 1)}.${suffix}`;
}

/**
 * Replaces `path`: removes a staged file left by an earlier run, lets `fill`
 * create and check the staged file, then renames it over `path`. On any
 * failure the staged file is removed and the error rethrown; `path` is
 * untouched.
 */
export function replaceFile(path: string, suffix: string, fill: (staged: string) => void): void {
  const staged = stagedPath(path, suffix);
  removeIfPresent(staged);
  try {
    fill(staged);
    Deno.renameSync(staged, path);
  } catch (e) {
    removeIfPresent(staged);
    throw e;
  }
}
