/**
 * The mesh service: the one program that talks to Signal (through signal-cli's
 * JSON-RPC socket, or the terminal for the local run), forwards validated
 * messages to joi (8443) and sends joi's messages (8444).
 *
 * ```sh
 * deno run <flags of the manifest's mesh entry> services/mesh/main.ts \
 *   --config-dir=/etc/mesh-proxy --state-dir=/var/lib/mesh-proxy --log-dir=/var/log/joi \
 *   --secrets-dir=/run/credentials/joi-mesh.service --listen=10.42.0.1:8444 \
 *   --joi-url=http://10.42.0.10:8443 --signal-socket=/run/signal-cli/socket
 * ```
 *
 * The config directory holds `identities.yaml`, `groups.yaml`, `policy.yaml`
 * and optionally `mesh.yaml`; the secrets directory `mesh_to_joi.key` and
 * `joi_to_mesh.key`. Logs go to stderr and `<log-dir>/mesh.log` (security
 * events also to `<log-dir>/mesh-security.log`); stdout belongs to the
 * terminal transport.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { createLogger, fileSink, type Logger } from "../common/log.ts";
import { identitiesHash, IdentitiesSchema, loadPolicyFile } from "../common/policy/mod.ts";
import { identitiesRules } from "../common/policy/identities.ts";
import { loadKey, openNonceStore, SignedClient, signedRoutes } from "../common/wire/mod.ts";
import { loadMeshSettings, type MeshConfig } from "./config.ts";
import type { IdentitiesConfig, IdentityStore, IdentityView } from "./identity.ts";
import { createMesh } from "./service.ts";
import { JsonRpcClient } from "./signal/jsonrpc_client.ts";
import { TerminalTransport } from "./signal/terminal.ts";
import type { SignalTransport } from "./signal/transport.ts";

/** Parsed command line. */
export interface MeshArgs {
  configDir: string;
  stateDir: string;
  logDir: string;
  secretsDir: string | undefined;
  listen: { host: string; port: number };
  joiUrl: URL;
  signal: { kind: "socket"; path: string } | { kind: "terminal" };
}

/** A command-line problem; the message says which option and how to fix it. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

const USAGE = "usage: mesh --config-dir=DIR --state-dir=DIR --log-dir=DIR [--secrets-dir=DIR] " +
  "--listen=IP:PORT --joi-url=http://IP:PORT (--signal-socket=PATH | --terminal)";

/** Parses the mesh's arguments (those the manifest's mesh entry passes). */
export function parseMeshArgs(args: string[]): MeshArgs {
  let v;
  try {
    v = parseArgs({
      args,
      strict: true,
      options: {
        "config-dir": { type: "string" },
        "state-dir": { type: "string" },
        "log-dir": { type: "string" },
        "secrets-dir": { type: "string" },
        "listen": { type: "string" },
        "joi-url": { type: "string" },
        "signal-socket": { type: "string" },
        "terminal": { type: "boolean", default: false },
      },
    }).values;
  } catch (e) {
    throw new UsageError(`${(e as Error).message}\n${USAGE}`);
  }
  const need = (name: string, value: string | undefined): string => {
    if (!value) throw new UsageError(`--${name} is required\n${USAGE}`);
    return value;
  };
  const listen = need("listen", v.listen);
  const m = /^(\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:]+\]):(\d{1,5})$/.exec(listen);
  if (!m || Number(m[2]) > 65535) {
    throw new UsageError(`--listen=${listen}: expected IP:PORT, e.g. 10.42.0.1:8444`);
  }
  const host = m[1]!.replace(/^\[|\]$/g, "");
  if (host === "0.0.0.0" || host === "::") {
    throw new UsageError(
      `--listen=${listen}: refusing to bind every interface; give the Nebula address`,
    );
  }
  let joiUrl: URL;
  try {
    joiUrl = new URL(need("joi-url", v["joi-url"]));
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError(`--joi-url=${v["joi-url"]}: not a URL, e.g. http://10.42.0.10:8443`);
  }
  if (v.terminal && v["signal-socket"]) {
    throw new UsageError("give either --signal-socket or --terminal, not both");
  }
  if (!v.terminal && !v["signal-socket"]) {
    throw new UsageError(`one of --signal-socket=PATH or --terminal is required\n${USAGE}`);
  }
  return {
    configDir: need("config-dir", v["config-dir"]),
    stateDir: need("state-dir", v["state-dir"]),
    logDir: need("log-dir", v["log-dir"]),
    secretsDir: v["secrets-dir"],
    listen: { host, port: Number(m[2]) },
    joiUrl,
    signal: v.terminal ? { kind: "terminal" } : { kind: "socket", path: v["signal-socket"]! },
  };
}

/** Validates identities fetched from joi with the policy schema and its rules. */
export function validateIdentities(raw: unknown): IdentitiesConfig {
  const r = IdentitiesSchema.safeParse(raw);
  if (!r.success) {
    throw new Error(
      "identities: " + r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; "),
    );
  }
  const issues = identitiesRules(r.data);
  if (issues.length) {
    throw new Error(
      "identities: " + issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; "),
    );
  }
  return r.data;
}

/** sha256 of the canonical JSON of an identities config (`X-Config-Hash`). */
export function hashIdentities(config: IdentitiesConfig): string {
  return identitiesHash(config);
}

/** Reads every configuration file the mesh needs from `dir`. */
export function loadMeshConfig(dir: string): MeshConfig {
  const identities = loadPolicyFile("identities", `${dir}/identities.yaml`);
  const groups = loadPolicyFile("groups", `${dir}/groups.yaml`);
  const policy = loadPolicyFile("policy", `${dir}/policy.yaml`);
  const settings = loadMeshSettings(`${dir}/mesh.yaml`);
  return {
    identities,
    groups,
    limits: {
      outbound: policy.rate_limits.outbound,
      inbound: policy.rate_limits.inbound,
    },
    maxOutboundChars: policy.content.max_outbound_chars,
    security: {
      toleranceMs: policy.security.timestamp_tolerance_minutes * 60_000,
      nonceRetentionMs: policy.security.nonce_retention_minutes * 60_000,
      maxBodyBytes: policy.security.max_body_bytes,
    },
    settings,
  };
}

const encoder = new TextEncoder();

/**
 * Checks that the sandbox admits what mesh.yaml's voice section needs (the
 * manifest's `meshVoice`): running the three tools, reading and deleting in
 * the attachments folder. Throws naming the missing permission, so a
 * mismatch fails at start rather than at the first voice note.
 */
export function checkVoicePermissions(voice: MeshConfig["settings"]["voice"]): void {
  if (!voice) return;
  const missing: string[] = [];
  const bins = [voice.whisper.bin, voice.ffmpeg.bin, ...(voice.piper ? [voice.piper.bin] : [])];
  for (const command of bins) {
    if (Deno.permissions.querySync({ name: "run", command }).state !== "granted") {
      missing.push(`--allow-run=${command}`);
    }
  }
  for (const name of ["read", "write"] as const) {
    if (Deno.permissions.querySync({ name, path: voice.attachments_dir }).state !== "granted") {
      missing.push(`--allow-${name}=${voice.attachments_dir}`);
    }
  }
  if (missing.length) {
    throw new Error(
      `mesh.yaml configures voice but the sandbox lacks ${missing.join(", ")}: set ` +
        `Layout.meshVoice (and signalAttachmentsDir) to the same paths so the permission ` +
        `manifest grants them, or remove the voice section`,
    );
  }
}

async function run(args: MeshArgs, log: Logger): Promise<void> {
  const config = loadMeshConfig(args.configDir);
  checkVoicePermissions(config.settings.voice);
  await Deno.mkdir(args.stateDir, { recursive: true, mode: 0o700 });
  const meshToJoi = await loadKey(args.secretsDir, "mesh_to_joi.key");
  const joiToMesh = await loadKey(args.secretsDir, "joi_to_mesh.key");
  const nonceStore = openNonceStore(`${args.stateDir}/nonces.db`, config.security.nonceRetentionMs);
  const joiHost = args.joiUrl.hostname.replace(/^\[|\]$/g, "");
  const verify = signedRoutes({
    key: joiToMesh,
    direction: "joi_to_mesh",
    nonceStore,
    allowedSources: [joiHost],
    toleranceMs: config.security.toleranceMs,
    maxBodyBytes: config.security.maxBodyBytes,
    logger: log,
  });
  const joi = new SignedClient({
    baseUrl: args.joiUrl.origin,
    key: meshToJoi,
    direction: "mesh_to_joi",
    maxRetries: 0, // the forwarder paces retries and keeps order
    timeoutMs: 15_000,
  });
  // the terminal needs the identities in force, which the mesh owns: read them through it
  let meshRef: { identities: IdentityStore } | null = null;
  let transport: SignalTransport;
  if (args.signal.kind === "socket") {
    transport = new JsonRpcClient({ path: args.signal.path, log: log.child("signal") });
  } else {
    const lazy = {
      get current(): IdentityView {
        return meshRef!.identities.current;
      },
    };
    transport = new TerminalTransport({
      identities: lazy,
      owner: config.settings.owner_recipient,
      input: Deno.stdin.readable,
      output: (line) => {
        try {
          Deno.stdout.writeSync(encoder.encode(line + "\n"));
        } catch { /* stdout closed */ }
      },
    });
  }
  const mesh = await createMesh({
    config,
    stateDir: args.stateDir,
    transport,
    joi,
    verify,
    validateIdentities,
    hashIdentities,
    log,
  });
  meshRef = mesh;
  const ac = new AbortController();
  const server = Deno.serve({
    hostname: args.listen.host,
    port: args.listen.port,
    signal: ac.signal,
    onListen: ({ hostname, port }) => log.info("listening", { address: `${hostname}:${port}` }),
  }, mesh.app.fetch);
  mesh.start();
  log.info("mesh_started", {
    signal: args.signal.kind,
    identities_hash: mesh.identities.current.hash,
    queued: mesh.store.depth(),
    voice: config.settings.voice !== undefined,
  });
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    log.info("mesh_stopping", {});
    ac.abort();
    await server.finished.catch(() => {});
    await mesh.stop();
    nonceStore.close();
    Deno.exit(0);
  };
  for (const sig of ["SIGTERM", "SIGINT"] as const) {
    Deno.addSignalListener(sig, () => void stop());
  }
  await server.finished;
}

if (import.meta.main) {
  let args: MeshArgs;
  try {
    args = parseMeshArgs(Deno.args);
  } catch (e) {
    console.error(`mesh: ${(e as Error).message}`);
    Deno.exit(2);
  }
  let log: Logger;
  try {
    await Deno.mkdir(args.logDir, { recursive: true, mode: 0o750 });
    log = createLogger("mesh", {
      sinks: [
        fileSink(`${args.logDir}/mesh.log`),
        fileSink(`${args.logDir}/mesh-security.log`, true),
      ],
    });
  } catch (e) {
    console.error(`mesh: cannot open logs in ${args.logDir}: ${(e as Error).message}`);
    Deno.exit(2);
  }
  try {
    await run(args, log);
  } catch (e) {
    log.error("mesh_failed", { error: (e as Error).message });
    console.error(`mesh: ${(e as Error).message}`);
    Deno.exit(1);
  }
}
