/**
 * joi's composition root: every part of the joi process, built once and in
 * dependency order, read top to bottom.
 *
 * 1. state: `joi.db`, opened once, and the two replay guards;
 * 2. configuration: the config manager (first snapshot, SIGHUP reloads);
 * 3. keys: mesh<->joi, openHAB->joi, memory;
 * 4. the outbox, the one way out to the mesh;
 * 5. the conversation side: memory, LLM client, GPU monitor, tools,
 *    knowledge, the agent;
 * 6. the watches (link to the mesh, house heartbeat, clocks, model,
 *    certificates, drift), telling through the outbox;
 * 7. the event path: flood guard, pipeline (home context to the agent),
 *    ingest app (with the relay's heartbeat route to the house watch);
 * 8. HTTP: the messages app (8443: `/health`, the signed inbound routes and
 *    the signed link check, composed with `app.route`) and the ingest app
 *    (8445).
 *
 * Each part receives what it depends on when it is built. The callbacks
 * that point back up (the config manager's alerts to the outbox, the LLM's
 * degradation to the model watch's check) are subscriptions made right after
 * the listener exists, as the mesh's root does with its transport. `main.ts`
 * is argument parsing plus {@link runJoi}; tests build with {@link createJoi}.
 *
 * @module
 */
import type { DatabaseSync } from "node:sqlite";
import { Hono } from "hono";
import { openDb } from "../common/db.ts";
import { LocalTime } from "../common/local_time.ts";
import type { Logger } from "../common/log.ts";
import {
  householdRoles,
  identitiesHash,
  loadPolicies,
  type Policies,
} from "../common/policy/mod.ts";
import { RateLimiter } from "../common/rate_limit.ts";
import {
  installEnvelopeHandlers,
  limitsFromPolicy,
  loadOptionalWireKey,
  loadWireKey,
  type NonceStore,
  ok,
  openNonceStore,
  serveGuarded,
  SignedClient,
  signedOrOpen,
  signedRoutes,
  type WireKey,
} from "../common/wire/mod.ts";
import { Agent } from "./agent/agent.ts";
import { languageStatus } from "./agent/language_check.ts";
import type { KnowledgeSnippet } from "./agent/prompt.ts";
import { ConfigManager } from "./config/manager.ts";
import { AlarmLog } from "./guard/alarms.ts";
import { createEventPath, type EventPath } from "./ingest/event_path.ts";
import { createInboundApp } from "./inbound/app.ts";
import { InboundLedger } from "./inbound/ledger.ts";
import { RetrieveClient } from "./knowledge/retrieve_client.ts";
import { KnowledgeWriter } from "./knowledge/writer.ts";
import { GpuHealthMonitor, LlmCallBudget, LlmClient } from "./llm/mod.ts";
import { loadMemoryKey, MemoryStores } from "./memory/mod.ts";
import { httpMeshTransport, type MeshTransport } from "./outbox/mesh_transport.ts";
import { Outbox } from "./outbox/outbox.ts";
import { ToolRouter, type WebSearchOptions, webSearchRunner } from "./tools/mod.ts";
import { createWatches, type Watches } from "./watch/watches.ts";
import { LINK_PING_PATH, type LinkRequester } from "../common/watch/link_ping.ts";

/** Inputs of {@link createJoi}. */
export interface JoiOptions {
  /** Policy folder (SIGHUP reloads read it). */
  configDir: string;
  /** The policies validated at start (the first snapshot; default: loaded from `configDir`). */
  policies?: Policies | undefined;
  /** Loads the policies on a reload (default `loadPolicies(configDir)`). */
  load?: (() => Policies) | undefined;
  /** joi's state folder: `joi.db`, the nonce stores, `data/`, `knowledge/`. */
  stateDir: string;
  /** Secrets folder: `mesh_to_joi.key`, `joi_to_mesh.key`, `openhab_to_joi.key`, `memory.key`. */
  secretsDir: string;
  /** `production` requires every channel user and the relay's signing key; `local` warns. */
  mode: "local" | "production";
  /** The mesh's base URL (`http://10.42.0.1:8444`). */
  meshUrl: string;
  /** The mesh's address(es), the only allowed callers of 8443's signed routes. */
  meshSources: readonly string[];
  /** Replaces the HTTP transport to the mesh (tests). */
  transport?: MeshTransport | undefined;
  /** `--llm-url` (overrides llm.yaml's endpoint). */
  llmUrl?: string | undefined;
  /** The folder of the channels' retrieve sockets (`--retrieve-socket-dir`). */
  retrieveSocketDir?: string | undefined;
  /** Knowledge retrieval for a channel (default: the sockets in `retrieveSocketDir`, if given). */
  retrieve?: ((channel: string, query: string) => Promise<KnowledgeSnippet[]>) | undefined;
  /**
   * Knowledge write to a channel's folder. Default: the knowledge module's
   * writer on `<stateDir>/knowledge` (current channel only, UUIDv4 ids, indexed).
   */
  saveKnowledge?: ((channel: string, doc: { title: string; body: string }) => void) | undefined;
  /** Web search runner options (tests: the search URL). */
  webSearch?: WebSearchOptions | undefined;
  /** passwd file (default `/etc/passwd`). */
  passwdPath?: string | undefined;
  /** LLM fetch, for tests. */
  llmFetch?: typeof fetch | undefined;
  /** Backoff sleep, for tests. */
  sleep?: ((ms: number) => Promise<void>) | undefined;
  /** Overrides of llm.yaml figures, for tests (e.g. a short timeout). */
  llmOverrides?: Partial<Policies["llm"]> | undefined;
  /** Replaces the signed client of the link checks to the mesh (tests). */
  linkClient?: LinkRequester | undefined;
  /** The daily validation's report joi reads (production: `/var/lib/joi-validate/report.json`). */
  driftReport?: string | undefined;
  /** joi's own Nebula certificate (production: `/etc/nebula/joi.crt`). */
  nebulaCert?: string | undefined;
  /** Logger. */
  log: Logger;
  /** Clock (ms). */
  now?: (() => number) | undefined;
}

/** The composed joi process. */
export interface Joi extends Omit<EventPath, "tick" | "close"> {
  /** `joi.db`. */
  db: DatabaseSync;
  /** The configuration manager. */
  config: ConfigManager;
  /** The one way out to the mesh. */
  outbox: Outbox;
  /** Per-channel memory. */
  memory: MemoryStores;
  /** The LLM client. */
  llm: LlmClient;
  /** GPU health. */
  gpu: GpuHealthMonitor;
  /** The agent (also the event path's home context sink). */
  agent: Agent;
  /** The watches (link, house, clock, model, expiry, drift). */
  watches: Watches;
  /** The mesh-facing app, port 8443: `/health` and the signed inbound routes. */
  messagesApp: Hono;
  /** Fires the event path's timers (confirmation loop, batches, summaries). */
  tick(now?: number): number;
  /** Starts the timers: tick, GPU monitor, SIGHUP reloads, daily pruning; retries the queue. */
  start(options?: { tickMs?: number }): void;
  /** Stops the timers and closes every database (after the servers stopped). */
  close(): Promise<void>;
}

/** Builds joi from `o`. Throws (joi must not start) on a bad configuration or key. */
export async function createJoi(o: JoiOptions): Promise<Joi> {
  const log = o.log;
  const now = o.now ?? Date.now;
  const load = o.load ?? (() => loadPolicies(o.configDir));

  // 1. state
  await Deno.mkdir(o.stateDir, { recursive: true, mode: 0o700 });
  const db = openDb(`${o.stateDir}/joi.db`);

  // 2. configuration
  const config = await ConfigManager.create({
    load,
    initial: o.policies ?? load(),
    hash: identitiesHash,
    requireSystemUsers: o.mode === "production",
    passwdPath: o.passwdPath,
    log: log.child("config"),
    now,
  });
  const first = config.current().policies;
  const policy = first.policy;
  const sec = policy.security;
  const roles = householdRoles(first.recipients);

  // 3. keys
  const keys = await loadJoiKeys(o.secretsDir, o.mode, log);

  // 4. the outbox
  const transport = o.transport ?? (keys.joiToMesh
    ? httpMeshTransport({
      baseUrl: o.meshUrl,
      key: keys.joiToMesh,
      configHash: () => config.current().identitiesHash,
      toleranceMs: sec.timestamp_tolerance_minutes * 60_000,
      log: log.child("outbox"),
      now,
    })
    : queueOnly);
  const outbox = new Outbox({
    db,
    policy,
    transport,
    log: log.child("outbox"),
    roles,
    time: new LocalTime(policy.household.timezone),
    now,
  });
  config.onAlert((text) => {
    outbox.enqueue({
      channel: roles.ownerDm,
      text,
      priority: "normal",
      kind: "proactive",
      template: true,
    });
    outbox.kick();
  });

  // 5. the conversation side
  const memory = new MemoryStores({
    stateDir: o.stateDir,
    stateDb: db,
    recipients: first.recipients,
    key: keys.memory,
    now,
  });
  // the LLM budget is shared fairly by channel; the owner's DM always keeps its share
  const budget = new LlmCallBudget(policy.rate_limits.llm, {
    ownerChannel: roles.ownerDm,
    now,
    db, // a restart neither refills the hour nor lifts a pause
  });
  const llm = new LlmClient({
    config: { ...first.llm, ...(o.llmOverrides ?? {}) },
    endpoint: o.llmUrl,
    budget,
    log: log.child("llm"),
    fetch: o.llmFetch,
    sleep: o.sleep,
    now,
  });
  const gpu = new GpuHealthMonitor({
    client: llm,
    intervalSeconds: policy.gpu_health.check_interval_seconds,
    fetch: o.llmFetch,
    now,
    log: log.child("gpu"),
  });
  const tools = new ToolRouter({
    tools: first.tools,
    runners: { web_search: webSearchRunner(o.webSearch) },
    log: log.child("tools"),
    now,
  });
  // the alarm record: the event path writes it, the agent shows it as home context
  const alarms = new AlarmLog(db);
  const agent = new Agent({
    config: () => config.current(),
    alarms,
    memory,
    llm,
    outbox,
    retrieve: o.retrieve ??
      (o.retrieveSocketDir
        ? socketRetrieve(o.retrieveSocketDir, () => config.current().policies, log)
        : undefined),
    saveKnowledge: o.saveKnowledge ?? knowledgeWriter(o.stateDir, first, log),
    tools,
    log: log.child("agent"),
    roles,
    now,
  });

  // 6. the watches
  const watches = await createWatches({
    db,
    outbox,
    roles,
    policy: () => config.current().policies.policy,
    gpu,
    meshClient: o.linkClient ?? (keys.joiToMesh
      ? new SignedClient({
        baseUrl: o.meshUrl,
        key: keys.joiToMesh,
        direction: "joi_to_mesh",
        maxRetries: 0, // one try per check, within its deadline
        timeoutMs: policy.nebula_health.lighthouse_ping_timeout_ms,
        now,
      })
      : undefined),
    certPath: o.nebulaCert,
    driftReport: o.driftReport,
    production: o.mode === "production",
    log: log.child("watch"),
    now,
  });
  // a GPU request just fell back to the CPU: the model watch starts counting now
  llm.onDegraded(() => void gpu.check().catch(() => {}));

  // 7. the event path
  const events = createEventPath({
    db,
    policy,
    roles,
    outbox,
    context: agent,
    alarms,
    signing: keys.openhabToJoi
      ? {
        key: keys.openhabToJoi,
        nonceStorePath: `${o.stateDir}/ingest_nonces.journal`,
        onTimestamp: ({ skewMs, refused }) => refused && watches.refused("openhab", skewMs),
      }
      : undefined,
    heartbeat: (hb, at) => watches.heartbeat(hb, at),
    log,
    now,
  });

  // 8. HTTP
  const inboundNonces: NonceStore = openNonceStore(
    `${o.stateDir}/nonces_inbound.journal`,
    sec.nonce_retention_minutes * 60_000,
  );
  // household.language sk on a model without a passing language-check: said, not hidden
  const language = languageStatus(o.stateDir, policy.household.language, first.llm.primary_model);
  if (language.language !== "en" && language.checked !== "pass") {
    log.warn("language_unchecked", {
      language: language.language,
      model: language.model,
      checked: language.checked,
      fix: "run deno task language-check before relying on this language",
    });
  }
  const auth = signedRoutes({
    key: keys.meshToJoi,
    direction: "mesh_to_joi",
    nonceStore: inboundNonces,
    allowedSources: o.meshSources,
    toleranceMs: sec.timestamp_tolerance_minutes * 60_000,
    maxBodyBytes: sec.max_body_bytes,
    bodyTimeoutMs: policy.server.body_timeout_seconds * 1000,
    // requests refused for their clock: the clock watch tells the owner
    onTimestamp: ({ skewMs, refused }) => refused && watches.refused("mesh", skewMs),
    logger: log,
    now,
  });
  const health = () => ({
    service: "joi",
    config: config.status(),
    language,
    ...events.health(),
    llm: { ...llm.state(), budget: budget.usage() },
    gpu: gpu.snapshot(),
    agent_queue: agent.queueDepth(),
    watch: watches.health(),
    memory_mb: memoryMb(),
    // the mesh's clock minus ours, from its last signed answer (null before one)
    mesh_clock: transport.clock?.health() ?? null,
  });
  const messagesApp = new Hono();
  installEnvelopeHandlers(messagesApp, log);
  // the mesh's link check: a signed round trip, answered with joi's clock
  messagesApp.post(LINK_PING_PATH, auth, (c) => ok(c, { time: now() }));
  // open to anyone; a signed request (the mesh's) gets a signed answer with joi's clock
  messagesApp.get("/health", signedOrOpen(auth), (c) => ok(c, health()));
  messagesApp.route(
    "/",
    createInboundApp({
      config,
      auth,
      meshSources: o.meshSources.map((s) => s.toLowerCase()),
      sink: agent,
      inboundLimiter: new RateLimiter(policy.rate_limits.inbound.others, { now }),
      ledger: new InboundLedger(db, 24 * 3_600_000, now),
      acknowledge: events.acknowledge,
      roles,
      log: log.child("inbound"),
    }),
  );

  const timers: ReturnType<typeof setInterval>[] = [];
  let stopSighup: (() => void) | undefined;
  const tick = (t?: number) => {
    const at = t ?? now();
    watches.tick(at);
    return events.tick(at);
  };
  // one retention per channel for what was said there, by anyone: memory and outbox
  const prune = () => {
    const retention = config.current().policies.policy.memory.retention_days;
    try {
      log.info("outbox_pruned", { deleted: outbox.store.purgeAll(retention, now()) });
    } catch (e) {
      log.error("outbox_prune_failed", { error: (e as Error).message });
    }
    return memory.pruneAll(retention).then(
      (n) => log.info("memory_pruned", { deleted: n }),
      (e) => log.error("memory_prune_failed", { error: (e as Error).message }),
    );
  };
  return {
    ...events,
    db,
    config,
    outbox,
    memory,
    llm,
    gpu,
    agent,
    watches,
    messagesApp,
    health,
    tick,
    start(options = {}) {
      timers.push(setInterval(() => {
        try {
          tick();
        } catch (e) {
          log.error("tick_failed", { error: String(e) });
        }
      }, options.tickMs ?? 1000));
      gpu.start();
      watches.start();
      stopSighup = config.listenSighup();
      void prune();
      timers.push(setInterval(prune, 24 * 3_600_000));
      outbox.kick(); // retry what a previous run left queued
    },
    async close() {
      for (const t of timers) clearInterval(t);
      gpu.stop();
      watches.stop();
      stopSighup?.();
      await agent.idle();
      memory.close();
      inboundNonces.close?.();
      events.close();
      db.close();
    },
  };
}

/** The keys joi holds. */
interface JoiKeys {
  /** mesh->joi: verifies the mesh's requests on 8443 and signs their answers. */
  meshToJoi: WireKey;
  /** joi->mesh: signs the outbox's requests; absent means messages stay queued. */
  joiToMesh: WireKey | undefined;
  /** openHAB->joi: when present, ingest takes signed events only (required in production). */
  openhabToJoi: WireKey | undefined;
  /** Encrypts conversation memory. */
  memory: Awaited<ReturnType<typeof loadMemoryKey>>;
}

async function loadJoiKeys(
  secretsDir: string,
  mode: JoiOptions["mode"],
  log: Logger,
): Promise<JoiKeys> {
  let joiToMesh: WireKey | undefined;
  try {
    joiToMesh = await loadWireKey(secretsDir, "joi_to_mesh");
  } catch (e) {
    log.warn("mesh_key_missing", {
      error: (e as Error).message,
      effect: "outbound messages stay queued until the key exists and joi restarts",
    });
  }
  // required exactly when provisioned: production loads it as a credential
  const openhabToJoi = await loadOptionalWireKey(secretsDir, "openhab_to_joi");
  if (!openhabToJoi) {
    if (mode === "production") {
      throw new Error(
        "openhab_to_joi.key is missing: production ingest accepts signed events only",
      );
    }
    log.warn("ingest_unsigned", {
      reason: "no openhab_to_joi.key: ingest accepts unsigned events",
    });
  }
  return {
    meshToJoi: await loadWireKey(secretsDir, "mesh_to_joi"),
    joiToMesh,
    openhabToJoi,
    memory: await loadMemoryKey(secretsDir),
  };
}

/** The transport without `joi_to_mesh.key`: every send fails retryably, so messages stay queued. */
const queueOnly: MeshTransport = {
  send: () =>
    Promise.resolve({ ok: false, retryable: true, error: "mesh unreachable: no joi_to_mesh.key" }),
};

/** Knowledge writes through the knowledge module's writer on `<stateDir>/knowledge`. */
function knowledgeWriter(
  stateDir: string,
  policies: Policies,
  log: Logger,
): (channel: string, doc: { title: string; body: string }) => void {
  const writer = new KnowledgeWriter({
    root: `${stateDir}/knowledge`,
    recipients: policies.recipients,
    allowedChannelUsers: policies.channelUsers.allowed_channel_users,
    logger: log.child("knowledge"),
  });
  return (channel, doc) => void writer.save(channel, doc);
}

/**
 * Knowledge search through the channel's retrieve socket (each connection a
 * joi-retrieve as the channel's user), judged by the current policies.
 */
function socketRetrieve(
  socketDir: string,
  policies: () => Policies,
  log: Logger,
): (channel: string, query: string) => Promise<KnowledgeSnippet[]> {
  const client = new RetrieveClient({
    socketDir,
    channels: () => {
      const p = policies();
      return {
        allowedChannelUsers: p.channelUsers.allowed_channel_users,
        recipients: p.recipients,
      };
    },
    logger: log.child("knowledge"),
  });
  return async (channel, query) => {
    const out = await client.retrieve(channel, "search", { q: query });
    if (out.status !== "ok") throw new Error(`knowledge retrieval: ${out.reason}`);
    return out.results.map((r) => ({ title: r.title, text: r.snippet }));
  };
}

/** Resident and heap memory of this process, MiB (for /health and the benchmark). */
function memoryMb(): { rss: number; heap_used: number } {
  const m = Deno.memoryUsage();
  return { rss: Math.round(m.rss / 1048576), heap_used: Math.round(m.heapUsed / 1048576) };
}

/** A listening address. */
export interface Listen {
  hostname: string;
  port: number;
}

/** What {@link runJoi} needs: the parsed command line. */
export interface JoiArgs {
  configDir: string;
  stateDir: string;
  secretsDir: string;
  mode: JoiOptions["mode"];
  /** The mesh-facing address (8443). */
  listen: Listen;
  /** The openHAB ingest address (8445). */
  ingestListen: Listen;
  meshUrl: string;
  /** The mesh's address, the only caller of 8443's signed routes. */
  meshAddress: string;
  llmUrl: string | undefined;
  /** The daily validation's report (drift watch). */
  driftReport?: string | undefined;
  /** joi VM's Nebula certificate (expiry watch). */
  nebulaCert?: string | undefined;
  /** The folder of the channels' retrieve sockets. */
  retrieveSocketDir: string | undefined;
}

/**
 * Runs joi until SIGTERM/SIGINT: validates the policies, builds joi, serves
 * both ports and starts the timers. Resolves with the exit status (1 when
 * joi must not start; the reason is on stderr).
 */
export async function runJoi(args: JoiArgs, log: Logger): Promise<number> {
  let policies: Policies;
  try {
    policies = loadPolicies(args.configDir);
  } catch (e) {
    console.error(`joi: policies in ${args.configDir} refused:\n${(e as Error).message}`);
    return 1;
  }
  let joi: Joi;
  try {
    joi = await createJoi({
      configDir: args.configDir,
      policies, // validated once here; SIGHUP reloads read the files again
      stateDir: args.stateDir,
      secretsDir: args.secretsDir,
      mode: args.mode,
      meshUrl: args.meshUrl,
      meshSources: [args.meshAddress],
      llmUrl: args.llmUrl,
      driftReport: args.driftReport,
      nebulaCert: args.nebulaCert,
      retrieveSocketDir: args.retrieveSocketDir,
      log,
    });
  } catch (e) {
    console.error(`joi: refused to start: ${(e as Error).message}`);
    return 1;
  }
  // every port with the deadlines and connection caps of policy.yaml `server` (wire/serve.ts)
  const limits = { ...limitsFromPolicy(policies.policy.server), log };
  const openhabNodes = policies.policy.ingest.allowed_sources.filter((s) => /^[0-9.]+$|:/.test(s));
  const ingest = serveGuarded(joi.ingestApp, {
    ...args.ingestListen,
    ...limits,
    peers: openhabNodes,
  });
  const messages = serveGuarded(joi.messagesApp, {
    ...args.listen,
    ...limits,
    peers: [args.meshAddress],
  });
  joi.start();
  log.info("joi_started", {
    ingest: `${args.ingestListen.hostname}:${(ingest.addr as Deno.NetAddr).port}`,
    messages: `${args.listen.hostname}:${(messages.addr as Deno.NetAddr).port}`,
  });
  const done = Promise.withResolvers<void>();
  Deno.addSignalListener("SIGTERM", done.resolve);
  Deno.addSignalListener("SIGINT", done.resolve);
  await done.promise;
  log.info("joi_stopping", {});
  await Promise.allSettled([ingest.shutdown(), messages.shutdown()]);
  await joi.close();
  return 0;
}
