/**
 * The openHAB relay's composition root: reads the policy, the API token and
 * the signing key, builds the {@link Relay} and its {@link HeartbeatLoop} (the
 * house watch's signal, with the node's Nebula certificate's expiry) and runs
 * them until SIGTERM/SIGINT.
 * `main.ts` is argument parsing plus {@link runRelay}.
 *
 * The API token is read from `<secrets-dir>/openhab_token`, which must be a
 * regular file with mode 0600 (or 0400): never from argv or the environment.
 *
 * @module
 */
import type { Logger } from "../common/log.ts";
import { loadPolicyFile } from "../common/policy/mod.ts";
import { loadOptionalWireKey, readSecretFile, type WireKey } from "../common/wire/keys.ts";
import { CriticalStore } from "./critical_store.ts";
import { Relay } from "./relay.ts";
import { HeartbeatLoop } from "./heartbeat.ts";
import { CertReader } from "../common/watch/cert_reader.ts";
import { JsonClient, SignedClient } from "../common/wire/client.ts";

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

/** The relay's parsed command line. */
export interface RelayArgs {
  configDir: string;
  /** The relay's state folder (`relay.db`: critical events joi has not taken yet). */
  stateDir?: string | undefined;
  secretsDir: string;
  openhabUrl: string;
  joiUrl: string;
  /** The openHAB VM's Nebula certificate (`--nebula-cert`, production). */
  nebulaCert?: string | undefined;
}

/** Runs the relay until SIGTERM/SIGINT; resolves with the exit status (1: it must not start). */
export async function runRelay(args: RelayArgs, log: Logger): Promise<number> {
  let policy;
  try {
    policy = loadPolicyFile("policy", `${args.configDir}/policy.yaml`);
  } catch (e) {
    console.error(`openhab_relay: ${(e as Error).message}`);
    return 1;
  }
  let token: string;
  try {
    token = await readTokenFile(`${args.secretsDir}/openhab_token`);
  } catch (e) {
    console.error(`openhab_relay: ${(e as Error).message}`);
    return 1;
  }
  let signingKey: WireKey | undefined;
  try {
    signingKey = await loadOptionalWireKey(args.secretsDir, "openhab_to_joi");
  } catch (e) {
    console.error(`openhab_relay: ${(e as Error).message}`);
    return 1;
  }
  if (!signingKey) {
    log.warn("relay_unsigned", { reason: "no openhab_to_joi.key: posts are not signed" });
  }
  const source = policy.ingest.allowed_sources.find((s) => /[a-z]/i.test(s) && !s.includes(":")) ??
    "openhab";
  let record: CriticalStore | undefined;
  if (args.stateDir) {
    try {
      await Deno.mkdir(args.stateDir, { recursive: true, mode: 0o700 });
      record = new CriticalStore(`${args.stateDir}/relay.db`);
    } catch (e) {
      console.error(
        `openhab_relay: cannot open ${args.stateDir}/relay.db: ${(e as Error).message}`,
      );
      return 1;
    }
  } else {
    log.warn("relay_no_state_dir", { effect: "alarms not yet taken by joi die with the process" });
  }
  const relay = new Relay({
    openhabUrl: args.openhabUrl,
    joiUrl: args.joiUrl,
    token,
    source,
    items: policy.ingest.items,
    maxBatch: policy.ingest.max_readings,
    maxEventBytes: policy.ingest.max_event_bytes,
    maxBodyBytes: policy.security.max_body_bytes,
    criticalTypes: policy.iot.critical_device_types,
    deviceClasses: policy.iot.device_classes,
    ...(signingKey ? { signingKey } : {}),
    ...(record ? { record } : {}),
    toleranceMs: policy.security.timestamp_tolerance_minutes * 60_000,
    log,
  });
  const cert = new CertReader(args.nebulaCert);
  await cert.refresh();
  const heartbeat = new HeartbeatLoop({
    relay,
    client: signingKey
      ? new SignedClient({
        baseUrl: args.joiUrl,
        key: signingKey,
        direction: "openhab_to_joi",
        maxRetries: 0,
        timeoutMs: 10_000,
        log,
      })
      : new JsonClient({ baseUrl: args.joiUrl, maxRetries: 0, timeoutMs: 10_000 }),
    source,
    intervalMs: policy.watch.heartbeat_seconds * 1000,
    cert,
    log: log.child("heartbeat"),
  });
  const certTimer = setInterval(() => void cert.refresh(), 6 * 3_600_000);
  const stop = () => {
    heartbeat.stop();
    clearInterval(certTimer);
    relay.stop();
  };
  Deno.addSignalListener("SIGTERM", stop);
  Deno.addSignalListener("SIGINT", stop);
  log.info("relay_started", { source, heartbeat_s: policy.watch.heartbeat_seconds });
  heartbeat.start();
  await relay.run();
  // what it carried, for the operator (and the benchmark)
  log.info("relay_stopped", { ...relay.stats });
  record?.close();
  return 0;
}
