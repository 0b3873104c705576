/**
 * Starts one of joi's programs as its manifest starts it (`deno run` with its
 * exact flags), plus extra arguments: output piped, no colour, stdin closed.
 *
 * @module
 */
import { denoRunArgs, type ProgramSpec } from "../../services/common/permissions/mod.ts";

/** Spawns `spec`'s command line with `extra` appended. */
export function spawnAsStarted(spec: ProgramSpec, extra: readonly string[]): Deno.ChildProcess {
  return new Deno.Command("deno", {
    args: [...denoRunArgs(spec), ...extra],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
}
