/**
 * Pointing ai-switch's real sandbox at other paths (test stand-ins, a
 * throw-away state folder) without restating it: every production path in
 * the manifest entry (permissions and the matching `--option=PATH`
 * arguments) is replaced by its counterpart, and a path that is not found is
 * an error, so the manifest and its tests cannot drift apart.
 *
 * @module
 */
import type { ProgramSpec } from "../../services/common/permissions/mod.ts";

/**
 * Returns `spec` with each path of `map` (production -> replacement)
 * replaced wherever it appears as a permission entry or an argument value.
 * An entry `P.suffix` (e.g. the state file's `.tmp` sibling) follows `P`.
 * Throws if a path of `map` appears nowhere.
 */
export function retargetSpec(spec: ProgramSpec, map: Record<string, string>): ProgramSpec {
  const used = new Set<string>();
  const swap = (value: string): string => {
    for (const [from, to] of Object.entries(map)) {
      if (value === from) {
        used.add(from);
        return to;
      }
      if (value.startsWith(from + ".")) {
        used.add(from);
        return to + value.slice(from.length);
      }
    }
    return value;
  };
  const swapArg = (arg: string): string => {
    const eq = arg.indexOf("=");
    return eq < 0 ? arg : arg.slice(0, eq + 1) + swap(arg.slice(eq + 1));
  };
  const p = spec.permissions;
  const out: ProgramSpec = {
    ...spec,
    permissions: {
      read: p.read.map(swap),
      write: p.write.map(swap),
      net: [...p.net],
      run: p.run.map(swap),
      env: [...p.env],
      sys: [...p.sys],
    },
    args: spec.args.map(swapArg),
  };
  const missing = Object.keys(map).filter((k) => !used.has(k));
  if (missing.length) {
    throw new Error(
      `retargetSpec: ${missing.join(", ")} not found in the ${spec.name} manifest entry ` +
        `(services/common/permissions/mod.ts changed: update the caller's map)`,
    );
  }
  return out;
}
