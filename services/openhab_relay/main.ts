/**
 * The openHAB relay's entry point (runs on the openHAB host): `deno task
 * relay` with the arguments of the manifest's `openhab_relay` entry. Argument
 * parsing plus {@link runRelay} (`service.ts`), which reads the API token from
 * `<secrets-dir>/openhab_token` (mode 0600, never argv or the environment).
 *
 * @module
 */
import { parseCommandLine, runMain, UsageError } from "../common/cli.ts";
import { createLogger } from "../common/log.ts";
import { type RelayArgs, runRelay } from "./service.ts";

/** Parses the relay's arguments; throws {@link UsageError} naming the missing option. */
export function parseRelayArgs(args: string[]): RelayArgs {
  const { values } = parseCommandLine("openhab_relay", {
    args,
    options: {
      "config-dir": { type: "string" },
      "state-dir": { type: "string" },
      "secrets-dir": { type: "string" },
      "openhab-url": { type: "string" },
      "joi-url": { type: "string" },
      "nebula-cert": { type: "string" },
    },
  });
  const need = (f: "config-dir" | "secrets-dir" | "openhab-url" | "joi-url") => {
    const v = values[f];
    if (!v) {
      throw new UsageError(
        `openhab_relay: --${f} is required (see the openhab_relay manifest entry)`,
      );
    }
    return v;
  };
  return {
    configDir: need("config-dir"),
    stateDir: values["state-dir"],
    secretsDir: need("secrets-dir"),
    openhabUrl: need("openhab-url"),
    joiUrl: need("joi-url"),
    nebulaCert: values["nebula-cert"],
  };
}

async function main(): Promise<number> {
  return await runRelay(parseRelayArgs(Deno.args), createLogger("openhab_relay"));
}

if (import.meta.main) await runMain(main);
