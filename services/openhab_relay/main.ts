/**
 * The openHAB relay's entry point (runs on the openHAB host):
 * `deno task openhab_relay` with the manifest's arguments. The API token is
 * read from `<secrets-dir>/openhab_token`, which must be a regular file
 * with mode 0600 (or 0400): never from argv or the environment.
 *
 * @module
 */
import { loadOptionalKey, readSecretFile } from "../common/wire/keys.ts";
import { parseArgs } from "node:util";
import { createLogger } from "../common/log.ts";
import { loadPolicyFile } from "../common/policy/mod.ts";
import { Relay } from "./relay.ts";

/** Reads the API token file, refusing group/other access and symlinks. */
export async function readTokenFile(path: string): Promise<string> {
  const token = new TextDecoder().decode(
    await readSecretFile(path, {
      what: "token file",
      howToCreate: () =>
        "create it with mode 0600 holding an openHAB API token (Settings > API Security)",
    }),
  ).trim();
  if (!/^[\x21-\x7e]{8,512}$/.test(token)) {
    throw new Error(`token file ${path} does not hold an openHAB API token (one printable line)`);
  }
  return token;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      "config-dir": { type: "string" },
      "state-dir": { type: "string" },
      "secrets-dir": { type: "string" },
      "openhab-url": { type: "string" },
      "joi-url": { type: "string" },
    },
  });
  for (const f of ["config-dir", "secrets-dir", "openhab-url", "joi-url"] as const) {
    if (!values[f]) {
      console.error(`openhab_relay: --${f} is required (see the openhab_relay manifest entry)`);
      return 2;
    }
  }
  const log = createLogger("openhab_relay");
  let policy;
  try {
    policy = loadPolicyFile("policy", `${values["config-dir"]}/policy.yaml`);
  } catch (e) {
    console.error(`openhab_relay: ${(e as Error).message}`);
    return 1;
  }
  let token: string;
  try {
    token = await readTokenFile(`${values["secrets-dir"]}/openhab_token`);
  } catch (e) {
    console.error(`openhab_relay: ${(e as Error).message}`);
    return 1;
  }
  // Signs every post when the openHAB->joi key is provisioned (production).
  let signingKey: CryptoKey | undefined;
  try {
    signingKey = await loadOptionalKey(values["secrets-dir"], "openhab_to_joi.key");
  } catch (e) {
    console.error(`openhab_relay: ${(e as Error).message}`);
    return 1;
  }
  if (!signingKey) {
    log.warn("relay_unsigned", { reason: "no openhab_to_joi.key: posts are not signed" });
  }
  const source = policy.ingest.allowed_sources.find((s) => /[a-z]/i.test(s) && !s.includes(":")) ??
    "openhab";
  const relay = new Relay({
    openhabUrl: values["openhab-url"]!,
    joiUrl: values["joi-url"]!,
    token,
    source,
    items: policy.ingest.items,
    maxBatch: policy.ingest.max_readings,
    maxEventBytes: policy.ingest.max_event_bytes,
    ...(signingKey ? { signingKey } : {}),
    log,
  });
  const stop = () => relay.stop();
  Deno.addSignalListener("SIGTERM", stop);
  Deno.addSignalListener("SIGINT", stop);
  log.info("relay_started", { source });
  await relay.run();
  return 0;
}

if (import.meta.main) Deno.exit(await main());
