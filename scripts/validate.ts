/**
 * `joi-validate-config`: checks that the machine matches the household's
 * configuration (users, groups, memberships, folder modes, sudoers, units,
 * secrets, policies). Run from `ExecStartPre`, after config changes and daily.
 * See scripts/validate/cli.ts for the options.
 *
 * @module
 */
import { main } from "./validate/cli.ts";

if (import.meta.main) Deno.exit(main(Deno.args));
