/**
 * The household's time zone at install: `policy.yaml` `household.timezone` is
 * the zone of every time a person reads, and the VM's own zone is the best
 * first guess. A freshly installed `policy.yaml` takes the VM's zone (the
 * line is rewritten, comments kept); an existing one is never changed, and
 * when it differs from the VM's the installer says so.
 *
 * @module
 */
import { parseYaml } from "../../services/common/policy/parse_yaml.ts";

/** The zone the VM's clock is set to, as the runtime resolves it (TZ, else /etc/localtime). */
export function systemTimeZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone;
}

/** `UTC`, `Etc/UTC`, `Etc/Universal`... read the same. */
function same(a: string, b: string): boolean {
  const norm = (z: string) => (/^(Etc\/)?(UTC|UCT|Universal|Zulu|GMT)$/i.test(z) ? "UTC" : z);
  return norm(a) === norm(b);
}

/** `text` with `household.timezone` set to `zone` (comments kept), or null when it has none. */
export function withTimeZone(text: string, zone: string): string | null {
  const lines = text.split("\n");
  let inHousehold = false;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (/^\S/.test(line)) inHousehold = /^household:\s*(#.*)?$/.test(line);
    const m = inHousehold ? /^(\s+timezone:\s*)(\S+)(.*)$/.exec(line) : null;
    if (m) {
      lines[i] = `${m[1]}${zone}${m[3]}`;
      return lines.join("\n");
    }
  }
  return null;
}

/** The `household.timezone` of a policy.yaml text, or null. */
function zoneOf(text: string): string | null {
  try {
    const v = parseYaml(text).doc.toJS() as { household?: { timezone?: unknown } } | null;
    return typeof v?.household?.timezone === "string" ? v.household.timezone : null;
  } catch {
    return null;
  }
}

/**
 * After the policies are in place: a policy.yaml installed just now takes
 * `zone`; one that was there is kept and a different zone is pointed out.
 */
export async function proposeTimeZone(
  path: string,
  fresh: boolean,
  zone: string,
  print: (line: string) => void,
): Promise<void> {
  const text = await Deno.readTextFile(path);
  const current = zoneOf(text);
  if (current === null || same(current, zone)) return;
  if (fresh) {
    const next = withTimeZone(text, zone);
    if (next === null) return;
    await Deno.writeTextFile(path, next);
    print(
      `household.timezone in ${path}: ${zone}, this VM's zone (was ${current}); edit it if the household lives elsewhere`,
    );
    return;
  }
  print(
    `household.timezone in ${path} is ${current}; this VM's clock is in ${zone}: ` +
      `change it there if that is where the household lives (times are shown in it)`,
  );
}
