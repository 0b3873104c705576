/**
 * `ExecStart=` lines rendered from the permission manifest: a unit can only
 * carry the flags its program's manifest entry states.
 *
 * @module
 */
import {
  denoRunArgs,
  type Layout,
  type ProgramName,
  programSpec,
  retrieveFixedArgv,
  retrieveSpec,
} from "../permissions/mod.ts";
import { DENO_ENV } from "./hardening.ts";
import { execArg } from "./ini.ts";

/** The `Environment=` lines of a Deno unit running `program`: the base and its manifest `env`. */
export function denoEnv(program: ProgramName, layout: Layout): string[] {
  return [
    ...DENO_ENV,
    ...Object.entries(programSpec(program, layout).env).map(([k, v]) => `${k}=${v}`),
  ];
}

/** The `ExecStart=` command line of a manifest program under `layout` (cached only). */
export function execLine(program: ProgramName, layout: Layout): string {
  const spec = programSpec(program, layout);
  const args = denoRunArgs({ ...spec, entry: `${layout.codeDir}/${spec.entry}` }, {
    cachedOnly: true,
  });
  return [layout.denoBin, ...args].map(execArg).join(" ");
}

/**
 * The command line of joi-retrieve under `layout` (absolute paths): the
 * retrieve binary and its pinned argv, exactly what sudo pins in the local run.
 */
export function retrieveExecLine(layout: Layout): string {
  return [layout.retrieveBin, ...retrieveFixedArgv(retrieveSpec(layout, "/"))].map(execArg)
    .join(" ");
}
