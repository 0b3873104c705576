/**
 * Which users exist on this system, read from `/etc/passwd` (joi's sandbox
 * may read that file; it may not run `getent`). NSS sources other than files
 * are not consulted: channel users are local system users by design.
 *
 * @module
 */

/** The user names listed in a passwd file. */
export async function systemUsers(passwdPath = "/etc/passwd"): Promise<Set<string>> {
  const text = await Deno.readTextFile(passwdPath);
  return parsePasswd(text);
}

/** The user names of passwd-format text (malformed lines are skipped). */
export function parsePasswd(text: string): Set<string> {
  return new Set(passwdUids(text).keys());
}

/** User name -> uid of passwd-format text (malformed lines are skipped). */
export function passwdUids(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const fields = line.split(":");
    if (fields.length < 7 || fields[0] === "" || !/^\d+$/.test(fields[2]!)) continue;
    out.set(fields[0]!, Number(fields[2]));
  }
  return out;
}
