/**
 * `ai-switch`: gives exactly one domain access to the ai-tools domain.
 * See scripts/ai_switch/cli.ts and /work/shared/design/ai-switch.md.
 *
 * @module
 */
import { main } from "./ai_switch/cli.ts";

if (import.meta.main) Deno.exit(await main(Deno.args));
