/**
 * `joi-revoke-recipient <id>`: removes a recipient from the household
 * (groups, locked users, policy files edited atomically), reloads joi and
 * validates. See scripts/revoke/cli.ts for the options.
 *
 * @module
 */
import { main } from "./revoke/cli.ts";

if (import.meta.main) Deno.exit(await main(Deno.args));
