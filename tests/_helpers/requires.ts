/**
 * Prerequisites of tests that need root or system tools. Outside CI a missing
 * prerequisite skips the test (with its reason printed once); in CI (`CI` set)
 * nothing is skipped, so a missing package or privilege fails loudly instead of
 * passing silently.
 *
 * @module
 */

const printed = new Set<string>();

/** Whether an executable exists at `path`. */
export function hasExecutable(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/** Whether the suite runs as root. */
export function isRoot(): boolean {
  return Deno.uid() === 0;
}

/**
 * Returns the `ignore` flag for a test needing `needs` (each `[ok, reason]`).
 * In CI it is always false.
 */
export function ignoreUnless(...needs: [boolean, string][]): boolean {
  const missing = needs.filter(([ok]) => !ok).map(([, why]) => why);
  if (missing.length === 0) return false;
  if (Deno.env.get("CI")) return false;
  const note = `skipping tests that need: ${missing.join(", ")} (CI runs them)`;
  if (!printed.has(note)) {
    printed.add(note);
    console.error(note);
  }
  return true;
}
