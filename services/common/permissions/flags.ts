/**
 * Flag rendering: a program's {@link ProgramSpec} as the exact arguments
 * after `deno` (`run --no-prompt [--v8-flags=...] --allow-*=... entry args`).
 * Tasks, the local run's supervisor and the units all go through here.
 *
 * @module
 */
import type { Permissions, ProgramSpec } from "./manifest.ts";

/** The `--allow-*` flags of a permission set, in a stable order. */
export function permissionFlags(p: Permissions): string[] {
  const flags: string[] = [];
  const add = (kind: keyof Permissions, flag: string) => {
    const list = [...new Set(p[kind])];
    if (list.length === 0) return;
    for (const item of list) {
      if (item === "" || item.includes(",")) {
        throw new Error(`permission manifest: invalid ${kind} entry ${JSON.stringify(item)}`);
      }
    }
    flags.push(`--allow-${flag}=${list.join(",")}`);
  };
  add("read", "read");
  add("write", "write");
  add("net", "net");
  add("run", "run");
  add("env", "env");
  add("sys", "sys");
  return flags;
}

/** The arguments after `deno` that run `spec`: `run --no-prompt <flags> entry args`. */
export function denoRunArgs(
  spec: ProgramSpec,
  extra: { cachedOnly?: boolean } = {},
): ["run", ...string[]] {
  return [
    "run",
    "--no-prompt",
    ...(extra.cachedOnly ? ["--cached-only"] : []),
    ...(spec.v8Flags.length ? [`--v8-flags=${spec.v8Flags.join(",")}`] : []),
    ...permissionFlags(spec.permissions),
    spec.entry,
    ...spec.args,
  ];
}
