/**
 * `deno task doctor`: is everything that keeps joi working in place? One table
 * of every check, green/yellow/red, with the fix of each red; exit status 1 on
 * red. On a production VM: `joi-doctor --role joi|mesh|openhab`. See
 * scripts/doctor/cli.ts.
 *
 * @module
 */
import { runMain } from "../services/common/cli.ts";
import { main } from "./doctor/cli.ts";

if (import.meta.main) await runMain(() => main(Deno.args));
