/**
 * The mesh's composition root: {@link createMesh} assembles one mesh (state,
 * identities, the Signal transport, the inbound pipeline, the forwarder to
 * joi, outbound sending, config sync, the group monitor, voice, and the HTTP
 * app) in dependency order; the transport's notifications reach the inbound
 * pipeline by subscription once both exist. {@link runMesh} reads the files
 * and keys, builds the transport and serves; `main.ts` is argument parsing
 * plus that call. Tests and the benchmark call {@link createMesh} directly.
 *
 * @module
 */
import type { MiddlewareHandler } from "hono";
import type { Hono } from "hono";
import type { Logger } from "../common/log.ts";
import {
  loadWireKey,
  openNonceStore,
  serveGuarded,
  SignedClient,
  signedRoutes,
} from "../common/wire/mod.ts";
import { createApp } from "./app.ts";
import { loadMeshConfig, type MeshConfig } from "./config.ts";
import {
  ConfigSync,
  type HashIdentities,
  loadPersisted,
  type ValidateIdentities,
} from "./config_sync.ts";
import { Forwarder } from "./forwarder.ts";
import { GroupMonitor } from "./group_monitor.ts";
import { hashIdentities, IdentityStore, IdentityView, validateIdentities } from "./identity.ts";
import { InboundPipeline } from "./inbound.ts";
import type { JoiClient } from "./joi_client.ts";
import { Outbound } from "./outbound.ts";
import { MeshStore } from "./queue.ts";
import { JsonRpcClient } from "./signal/jsonrpc_client.ts";
import { sendMessage } from "./signal/send.ts";
import { TerminalTransport } from "./signal/terminal.ts";
import type { SignalTransport } from "./signal/transport.ts";
import type { SelfAccount } from "./addressing.ts";
import { Presence } from "./presence.ts";
import { attachmentPath, removeQuietly, sweep } from "./voice/files.ts";
import { JobQueue } from "./voice/jobs.ts";
import { checkVoiceLanguage } from "./voice/language.ts";
import { WatchLedger } from "../common/watch/ledger.ts";
import type { LinkRequester } from "../common/watch/link_ping.ts";
import { CertReader } from "../common/watch/cert_reader.ts";
import { MeshAlerts } from "./watch/alerts.ts";
import { MeshLinkWatch } from "./watch/link.ts";
import { MeshRefusalWatch } from "./watch/clock.ts";
import { RefusalBursts } from "../common/watch/refusals.ts";
import { synthesize } from "./voice/synthesize.ts";
import { transcribe, type TranscriptionResult, whisperLanguage } from "./voice/transcribe.ts";

/** Inputs of {@link createMesh}. */
export interface MeshOptions {
  config: MeshConfig;
  /** State folder: `mesh.db`, `identities.json`, `voice/`. */
  stateDir: string;
  /**
   * signal-cli (or the terminal), or how to build it from the identities in
   * force (the terminal reads them; the mesh loads them).
   */
  transport: SignalTransport | ((identities: IdentityStore) => SignalTransport);
  /** Signed client to joi (mesh->joi key). */
  joi: JoiClient;
  /**
   * signal-cli's attachments folder (`<data dir>/attachments`): long texts and
   * voice notes are read there, and every attachment is deleted once handled.
   * Absent (the terminal): no attachment is read.
   */
  attachmentsDir?: string | undefined;
  /** Signed-routes middleware for joi's requests (joi->mesh key). */
  verify: MiddlewareHandler;
  validateIdentities: ValidateIdentities;
  hashIdentities: HashIdentities;
  log: Logger;
  now?: (() => number) | undefined;
  /** Waits before rate-limited send retries (tests). */
  sleep?: ((ms: number) => Promise<void>) | undefined;
  /** Disable periodic timers (group check, sync poll, sweeps, link checks) for tests. */
  timers?: boolean | undefined;
  /**
   * Signed client for the link watch's checks of joi (mesh->joi key, the
   * check's deadline as timeout; default: `joi`).
   */
  linkClient?: LinkRequester | undefined;
  /** The mesh's own Nebula certificate (`/etc/nebula/mesh.crt`), when it has one. */
  nebulaCert?: string | undefined;
  /**
   * joi's requests refused for their timestamp, as the signed routes' hook
   * records them (`runMesh` builds it before the middleware); a burst is told.
   */
  refusals?: RefusalBursts | undefined;
}

/** A running mesh. */
export interface Mesh {
  app: Hono;
  store: MeshStore;
  identities: IdentityStore;
  inbound: InboundPipeline;
  forwarder: Forwarder;
  outbound: Outbound;
  sync: ConfigSync;
  monitor: GroupMonitor;
  presence: Presence;
  /** joi's own account, as far as the mesh knows it. */
  self: SelfAccount;
  voice: JobQueue | null;
  transport: SignalTransport;
  /** The link watch (joi reachable?) and the mesh's own alerts. */
  link: MeshLinkWatch;
  alerts: MeshAlerts;
  health(): Record<string, unknown>;
  start(): void;
  stop(): Promise<void>;
}

/** Builds a mesh (nothing runs until `start`). */
export async function createMesh(o: MeshOptions): Promise<Mesh> {
  const { config, log } = o;
  const now = o.now ?? Date.now;
  const settings = config.settings;
  await Deno.mkdir(o.stateDir, { recursive: true, mode: 0o700 });
  const store = new MeshStore(`${o.stateDir}/mesh.db`, { maxDepth: settings.queue.max_depth });
  const persistPath = `${o.stateDir}/identities.json`;
  const fromFile = new IdentityView(config.identities, o.hashIdentities(config.identities));
  const persisted = await loadPersisted(persistPath, o.validateIdentities, o.hashIdentities, log);
  if (persisted && persisted.hash !== fromFile.hash) {
    log.info("identities_from_last_sync", { hash: persisted.hash, file_hash: fromFile.hash });
  }
  const identities = new IdentityStore(persisted ?? fromFile);
  const transport = typeof o.transport === "function" ? o.transport(identities) : o.transport;
  const sync = new ConfigSync({
    client: o.joi,
    identities,
    validate: o.validateIdentities,
    hash: o.hashIdentities,
    log: log.child("config_sync"),
    persistPath,
    now,
  });
  const self: SelfAccount = {
    number: settings.account.number ?? null,
    uuid: settings.account.uuid?.toLowerCase() ?? null,
    name: settings.assistant_name,
  };
  const presence = new Presence({
    transport,
    settings: settings.presence,
    log: log.child("presence"),
    now,
  });
  const forwarder = new Forwarder({
    store,
    client: o.joi,
    identities,
    sync,
    presence,
    log: log.child("forwarder"),
    initialBackoffMs: settings.queue.retry_initial_ms,
    maxBackoffMs: settings.queue.retry_max_ms,
    now,
  });

  const voiceLog = log.child("voice");
  const voiceCfg = o.attachmentsDir ? settings.voice : undefined;
  if (settings.voice && !o.attachmentsDir) {
    voiceLog.warn("voice_off", { reason: "no signal-cli attachments folder (terminal?)" });
  }
  const tempDir = voiceCfg?.temp_dir ?? `${o.stateDir}/voice`;
  const language = config.household.language;
  let jobs: JobQueue | null = null;
  if (voiceCfg && o.attachmentsDir) {
    await Deno.mkdir(tempDir, { recursive: true, mode: 0o700 });
    jobs = new JobQueue({ maxQueue: voiceCfg.max_queue, log: voiceLog });
    checkVoiceLanguage(voiceCfg, language, voiceLog);
  }
  const attachmentsDir = o.attachmentsDir;
  const transcribeFn = voiceCfg && jobs && attachmentsDir
    ? (a: { id: string; size: number | null }) =>
      jobs!.submit<TranscriptionResult>(
        "transcribe",
        () =>
          transcribe({
            voice: voiceCfg,
            attachmentsDir,
            language: whisperLanguage(voiceCfg, language),
            tempDir,
            log: voiceLog,
          }, a),
        () => ({ ok: false, reason: "voice_queue_full", durationMs: null }),
      )
    : undefined;
  const speak = voiceCfg?.piper && jobs
    ? (text: string) =>
      jobs!.submit<string | null>(
        "synthesize",
        async () => {
          const r = await synthesize({ voice: voiceCfg, language, tempDir, log: voiceLog }, text);
          if (!r.ok) voiceLog.warn("voice_response_not_spoken", { reason: r.reason });
          return r.ok ? r.dataUri : null;
        },
        () => null,
      )
    : undefined;
  const deleteAttachment = attachmentsDir
    ? async (id: string) => {
      const p = attachmentPath(attachmentsDir, id);
      if (p) await removeQuietly(p);
    }
    : undefined;

  const monitor = new GroupMonitor({
    groups: config.groups,
    identities,
    transport,
    store,
    log: log.child("groups"),
    criticalChannel: settings.critical_channel,
    self,
  });
  // The first membership check waits until joi's own number is known (it is
  // a member of every group, not a drift), at most five minutes.
  let firstCheck: ReturnType<typeof setTimeout> | undefined;
  let checkedOnce = false;
  const checkOnce = () => {
    if (checkedOnce) return;
    checkedOnce = true;
    if (firstCheck !== undefined) clearTimeout(firstCheck);
    void monitor.check();
  };
  const inbound = new InboundPipeline({
    identities,
    store,
    settings,
    limits: config.limits,
    maxChars: Math.min(settings.inbound_max_chars ?? Infinity, config.maxInboundChars),
    self: () => self,
    attachmentsDir,
    log: log.child("inbound"),
    notify: async (to, text) => {
      const target = to.groupId === null
        ? identities.current.target(to.sender.recipientId, "direct")
        : identities.current.target(to.channel, "group");
      if (!target) return;
      await sendMessage({
        transport,
        log: log.child("outbound"),
        target,
        text,
        quote: to.quote,
        purpose: "sender_notice",
        retries: 0,
      });
    },
    onAccount: (number) => {
      if (self.number !== null) return;
      self.number = number;
      log.info("account_number_learnt", { from: "receive" });
      checkOnce();
    },
    onQueued: () => forwarder.wake(),
    transcribe: transcribeFn,
    deleteAttachment,
    now,
  });
  const outbound = new Outbound({
    identities,
    transport,
    limits: config.limits,
    settings,
    log: log.child("outbound"),
    delivered: store,
    presence,
    speak,
    now,
    sleep: o.sleep,
    sent: store,
  });

  const versionInfo = () => {
    const v = transport.status().version;
    if (!v || v === "terminal") return { version: v, age_days: null, warning: null };
    const key = `signal_version_first_seen:${v}`;
    let first = Number(store.get(key));
    if (!first) {
      first = now();
      store.set(key, String(first));
    }
    const release = settings.signal_cli.release_dates[v];
    const since = release ? Date.parse(`${release}T00:00:00Z`) : first;
    const age = Math.floor((now() - since) / 86_400_000);
    const limit = settings.signal_cli.version_warn_days;
    return {
      version: v,
      age_days: age,
      age_basis: release ? "release_date" : "first_seen",
      warning: age > limit
        ? `signal-cli ${v} is ${age} days old (limit ${limit}); Signal refuses clients older ` +
          `than about 90 days: update signal-cli now`
        : null,
    };
  };

  // the watches: joi's reachability, told by the mesh (it holds Signal)
  const ledger = new WatchLedger(store.db);
  const alerts = new MeshAlerts({
    ledger,
    identities,
    transport,
    owner: settings.owner_recipient,
    criticalChannel: settings.critical_channel,
    log: log.child("watch"),
    now,
  });
  const refusalWatch = o.refusals
    ? new MeshRefusalWatch({
      ledger,
      alerts,
      refusals: o.refusals,
      windowMs: config.link.refusals.windowMs,
      log: log.child("clock"),
      now,
    })
    : undefined;
  const cert = new CertReader(o.nebulaCert);
  await cert.refresh();
  const link = new MeshLinkWatch({
    client: o.linkClient ?? o.joi,
    ledger,
    alerts,
    intervalMs: config.link.intervalMs,
    failures: config.link.failures,
    timeZone: config.timeZone,
    facts: () => {
      const v = versionInfo();
      return {
        cert: cert.facts(),
        signal_cli: typeof v.age_days === "number"
          ? {
            version: v.version,
            age_days: v.age_days,
            warn_days: settings.signal_cli.version_warn_days,
          }
          : null,
      };
    },
    log: log.child("link"),
    now,
  });

  const memory = () => {
    const m = Deno.memoryUsage();
    const mb = (n: number) => Math.round((n / 1048576) * 10) / 10;
    return { rss_mb: mb(m.rss), heap_used_mb: mb(m.heapUsed) };
  };

  const health = () => {
    const t = transport.status();
    const j = forwarder.status();
    const last = identities.lastSync;
    const v = versionInfo();
    return {
      service: "mesh",
      signal: {
        state: t.state,
        connected_since: t.connectedSince ? new Date(t.connectedSince).toISOString() : null,
        last_error: t.lastError,
        reconnects: t.reconnects,
        ...v,
      },
      joi: {
        // joi's clock minus ours, from its last signed answer (null before one)
        clock: o.joi.clock?.health() ?? null,
        reachable: j.reachable,
        last_contact: j.lastContact ? new Date(j.lastContact).toISOString() : null,
        last_error: j.lastError,
        delivered: j.delivered,
      },
      queue: { depth: store.depth(), voice_pending: inbound.pendingVoice },
      config: {
        hash: identities.current.hash,
        last_sync: last ? new Date(last.at).toISOString() : null,
        last_sync_result: last?.result ?? null,
      },
      voice: jobs
        ? { configured: true, busy: jobs.busy, queued: jobs.depth, dropped: jobs.dropped }
        : { configured: false },
      groups: {
        last_check: monitor.lastCheck ? new Date(monitor.lastCheck).toISOString() : null,
      },
      link: link.status(),
      nebula_cert: cert.facts(),
      memory: memory(),
    };
  };

  const app = createApp({
    outbound,
    sync,
    verify: o.verify,
    health,
    maxOutboundChars: config.maxOutboundChars,
    linkAnswer: (body) => link.answer(body),
    log: log.child("http"),
  });

  const timers: ReturnType<typeof setInterval>[] = [];
  let firstConnect = true;
  transport.onNotification((n) => void inbound.handle(n));
  transport.onConnect(() => {
    void alerts.pump(); // what could not be sent while signal-cli was away
    const v = versionInfo();
    if (v.warning) log.warn("signal_version_old", { version: v.version, age_days: v.age_days });
    if (firstConnect) {
      firstConnect = false;
      if (self.number !== null) checkOnce();
      else firstCheck = setTimeout(checkOnce, 300_000);
    }
  });

  return {
    app,
    store,
    identities,
    inbound,
    forwarder,
    outbound,
    sync,
    monitor,
    presence,
    self,
    voice: jobs,
    transport,
    link,
    alerts,
    health,
    start() {
      inbound.resumeVoice();
      forwarder.start();
      transport.start();
      if (o.timers !== false) {
        monitor.start();
        link.start();
        if (refusalWatch) timers.push(setInterval(() => refusalWatch.tick(now()), 5_000));
        timers.push(setInterval(() => void cert.refresh(), 6 * 3600_000));
        const poll = settings.config_sync.poll_minutes;
        if (poll > 0) {
          timers.push(setInterval(() => void sync.sync("periodic check"), poll * 60_000));
        }
        timers.push(setInterval(() => store.pruneSeen(now()), 3600_000));
        if (attachmentsDir) {
          // nothing outlives the retention: swept every fifth of it (at most a minute),
          // anything older than the retention less one sweep interval goes
          const retention = (settings.voice?.retention_minutes ?? 5) * 60_000;
          const every = Math.min(60_000, retention / 5);
          const sweepAll = () => {
            if (voiceCfg) sweep(tempDir, retention - every).catch(() => {});
            sweep(attachmentsDir, retention - every).catch(() => {});
          };
          sweepAll();
          timers.push(setInterval(sweepAll, every));
        }
      }
    },
    async stop() {
      for (const t of timers) clearInterval(t);
      if (firstCheck !== undefined) clearTimeout(firstCheck);
      presence.close();
      monitor.stop();
      link.stop();
      await transport.close();
      await forwarder.stop();
      await inbound.settled();
      await outbound.settled();
      store.close();
    },
  };
}

const encoder = new TextEncoder();

/**
 * Checks that the sandbox admits what the configuration needs (the
 * manifest's `signalAttachmentsDir` and `meshVoice`): reading and deleting in
 * signal-cli's attachments folder, and running the voice tools mesh.yaml
 * names. Throws naming the missing permission, so a mismatch fails at start
 * rather than at the first long text or voice note.
 */
export function checkVoicePermissions(
  voice: MeshConfig["settings"]["voice"],
  attachmentsDir?: string,
): void {
  const missing: string[] = [];
  const bins = voice
    ? [voice.whisper.bin, voice.ffmpeg.bin, ...(voice.piper ? [voice.piper.bin] : [])]
    : [];
  for (const command of bins) {
    if (Deno.permissions.querySync({ name: "run", command }).state !== "granted") {
      missing.push(`--allow-run=${command}`);
    }
  }
  for (const name of ["read", "write"] as const) {
    if (
      attachmentsDir !== undefined &&
      Deno.permissions.querySync({ name, path: attachmentsDir }).state !== "granted"
    ) {
      missing.push(`--allow-${name}=${attachmentsDir}`);
    }
  }
  if (missing.length) {
    throw new Error(
      `the mesh's configuration needs ${missing.join(", ")}, which its sandbox lacks: set ` +
        `Layout.meshVoice (voice tools, the same paths as mesh.yaml) and ` +
        `signalAttachmentsDir so the permission manifest grants them, or remove the voice section`,
    );
  }
}

/** Parsed command line of the mesh (see `main.ts`). */
export interface MeshArgs {
  configDir: string;
  stateDir: string;
  logDir: string;
  secretsDir: string | undefined;
  listen: { host: string; port: number };
  joiUrl: URL;
  signal: { kind: "socket"; path: string } | { kind: "terminal" };
  /** signal-cli's attachments folder (long texts, voice notes), with a socket. */
  attachmentsDir: string | undefined;
  /** The mesh VM's Nebula certificate (`--nebula-cert`, production). */
  nebulaCert?: string | undefined;
}

/**
 * Runs the mesh until SIGTERM/SIGINT: reads the configuration and keys,
 * builds the Signal transport and the mesh, and serves 8444. Throws when the
 * mesh must not start.
 */
export async function runMesh(args: MeshArgs, log: Logger): Promise<void> {
  const config = loadMeshConfig(args.configDir);
  checkVoicePermissions(config.settings.voice, args.attachmentsDir);
  await Deno.mkdir(args.stateDir, { recursive: true, mode: 0o700 });
  const meshToJoi = await loadWireKey(args.secretsDir, "mesh_to_joi");
  const joiToMesh = await loadWireKey(args.secretsDir, "joi_to_mesh");
  const nonceStore = openNonceStore(
    `${args.stateDir}/nonces.journal`,
    config.security.nonceRetentionMs,
  );
  const joiHost = args.joiUrl.hostname.replace(/^\[|\]$/g, "");
  // joi's requests refused for their clock: the mesh tells the household (joi cannot)
  const refusals = new RefusalBursts({
    count: () => config.link.refusals.count,
    windowMs: () => config.link.refusals.windowMs,
  });
  const verify = signedRoutes({
    onTimestamp: ({ skewMs, refused }) => {
      if (refused) refusals.record("joi", skewMs, Date.now());
    },
    key: joiToMesh,
    direction: "joi_to_mesh",
    nonceStore,
    allowedSources: [joiHost],
    toleranceMs: config.security.toleranceMs,
    maxBodyBytes: config.security.maxBodyBytes,
    bodyTimeoutMs: config.security.bodyTimeoutMs,
    logger: log,
  });
  const joi = new SignedClient({
    baseUrl: args.joiUrl.origin,
    key: meshToJoi,
    direction: "mesh_to_joi",
    maxRetries: 0, // the forwarder paces retries and keeps order
    timeoutMs: 15_000,
    toleranceMs: config.security.toleranceMs,
    log,
  });
  // the link watch's checks: one try each, within the check's deadline
  const linkClient = new SignedClient({
    baseUrl: args.joiUrl.origin,
    key: meshToJoi,
    direction: "mesh_to_joi",
    maxRetries: 0,
    timeoutMs: config.link.timeoutMs,
  });
  // the terminal reads the identities in force, which the mesh loads: it is built from them
  const signal = args.signal;
  const transport = signal.kind === "socket"
    ? new JsonRpcClient({ path: signal.path, log: log.child("signal") })
    : (identities: IdentityStore) =>
      new TerminalTransport({
        identities,
        owner: config.settings.owner_recipient,
        input: Deno.stdin.readable,
        output: (line) => {
          try {
            Deno.stdout.writeSync(encoder.encode(line + "\n"));
          } catch { /* stdout closed */ }
        },
      });
  const mesh = await createMesh({
    config,
    stateDir: args.stateDir,
    attachmentsDir: args.attachmentsDir,
    transport,
    joi,
    verify,
    validateIdentities,
    hashIdentities,
    linkClient,
    refusals,
    nebulaCert: args.nebulaCert,
    log,
  });
  // deadlines and connection caps of policy.yaml `server` (wire/serve.ts)
  const server = serveGuarded(mesh.app, {
    hostname: args.listen.host,
    port: args.listen.port,
    ...config.security.server,
    peers: [joiHost],
    log,
  });
  const addr = server.addr as Deno.NetAddr;
  log.info("listening", { address: `${addr.hostname}:${addr.port}` });
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
    await server.shutdown().catch(() => {});
    await mesh.stop();
    nonceStore.close();
    Deno.exit(0);
  };
  for (const sig of ["SIGTERM", "SIGINT"] as const) {
    Deno.addSignalListener(sig, () => void stop());
  }
  await server.finished;
}
