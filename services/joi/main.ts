/**
 * joi's main: composes the services of the joi process and serves them.
 *
 * {@link createServices} builds everything from a typed configuration with no
 * I/O besides the SQLite file: the flood guard, the outbox (joi -> mesh),
 * the event pipeline, the ingest app (8445) and a messages app (8443). The
 * conversation side mounts its routes on `services.messagesApp` (or replaces
 * it) and uses `services.outbox` and `services.acknowledge`; nothing else in
 * here needs to change. {@link serveServices} binds both apps to the configured
 * addresses and drives the timers (`tick`, every second), so the confirmation
 * loop fires even when no event arrives.
 *
 * Run: `deno task joi` with the arguments of the manifest's `joi` entry.
 * SIGTERM/SIGINT stop cleanly; SIGHUP calls `onReload` (the config manager's
 * seam; the conversation side wires it).
 *
 * @module
 */
import { parseArgs } from "node:util";
import type { DatabaseSync } from "node:sqlite";
import { Hono } from "hono";
import { openDb } from "../common/db.ts";
import { createLogger, fileSink, type Logger } from "../common/log.ts";
import { ok } from "../common/wire/envelope.ts";
import { loadKey, loadOptionalKey } from "../common/wire/keys.ts";
import { loadPolicies } from "../common/policy/mod.ts";
import type { Policy } from "../common/policy/mod.ts";
import { FloodGuard } from "./guard/flood.ts";
import { type Acknowledge, createAcknowledger } from "./guard/acknowledge.ts";
import { ContextBuffer, type ContextSink } from "./ingest/context.ts";
import { EventPipeline } from "./ingest/pipeline.ts";
import { createIngestApp } from "./ingest/app.ts";
import { openNonceStore } from "../common/wire/nonce_store.ts";
import type { IngestEndpoint } from "./ingest/types.ts";
import { Outbox } from "./outbox/outbox.ts";
import { httpMeshTransport, type MeshTransport } from "./outbox/mesh_transport.ts";
import { createConversation } from "./inbound/conversation.ts";
import type { Agent } from "./agent/agent.ts";

/** Everything {@link createServices} needs. */
export interface JoiConfig {
  /** The validated `policy.yaml`. */
  policy: Policy;
  /** The owner's canonical id (`owner`). */
  ownerId: string;
  /** joi's state folder (`joi.db` lives here); `:memory:` for throwaway runs. */
  stateDir: string;
  /** The mesh's base URL (`http://10.42.0.1:8444`). */
  meshUrl: string;
  /** joi->mesh HMAC key. */
  meshKey?: CryptoKey;
  /** The identities hash sent to the mesh as `X-Config-Hash` (config sync). */
  configHash?: (() => string | undefined) | undefined;
  /** openHAB->joi HMAC key: when set, ingest accepts only events the relay signed. */
  ingestKey?: CryptoKey;
  /** Replaces the HTTP transport (tests). */
  transport?: MeshTransport;
  /** Where home context goes (the agent's); default a bounded buffer. */
  context?: ContextSink;
  /** Logger. */
  log: Logger;
  /** Clock (ms). */
  now?: () => number;
}

/** The composed joi services. */
export interface Services {
  db: DatabaseSync;
  guard: FloodGuard;
  outbox: Outbox;
  pipeline: EventPipeline;
  /** Home context for the agent (the default buffer unless one was given). */
  context: ContextSink;
  /** openHAB ingest, port 8445. */
  ingestApp: Hono;
  /** The mesh-facing app, port 8443: `/health` now; the conversation side adds its routes. */
  messagesApp: Hono;
  /** The inbound side calls this with the owner's message text and canonical sender. */
  acknowledge: Acknowledge;
  /** Fires timers (confirmation loop, batches, summaries, outbox retries). */
  tick(now?: number): number;
  /** State for /health. */
  health(): Record<string, unknown>;
  /** Closes the database. */
  close(): void;
}

/** The per-hour ingest limits of `rate_limits.openhab`. */
export function openhabLimits(policy: Policy): Record<IngestEndpoint, number> {
  const o = policy.rate_limits.openhab;
  return {
    presence: o.presence,
    sensors: o.sensors,
    weather: o.weather,
    alert: o.alert,
    state: o.state,
    events: o.events,
  };
}

/** Builds joi's services from `config`. */
export function createServices(config: JoiConfig): Services {
  const now = config.now ?? Date.now;
  const log = config.log;
  const p = config.policy;
  const path = config.stateDir === ":memory:" ? ":memory:" : `${config.stateDir}/joi.db`;
  const db = openDb(path);
  const guard = new FloodGuard({ db, policy: p.iot, log: log.child("guard") });
  const transport = config.transport ??
    httpMeshTransport({
      baseUrl: config.meshUrl,
      ...(config.meshKey ? { key: config.meshKey } : {}),
      ...(config.configHash ? { configHash: config.configHash } : {}),
      now,
    });
  const outbox = new Outbox({
    db,
    policy: p,
    transport,
    log: log.child("outbox"),
    ownerId: config.ownerId,
    timeZone: p.quiet_hours.timezone,
    now,
  });
  const context = config.context ?? new ContextBuffer();
  const pipeline = new EventPipeline({
    db,
    guard,
    outbox,
    context,
    log: log.child("pipeline"),
    ownerId: config.ownerId,
    now,
    policy: {
      batchMinutes: p.ingest.batch_minutes,
      eventIdWindowMinutes: p.ingest.event_id_window_minutes,
      summaries: p.ingest.summaries,
      flappingWindowMinutes: p.iot.flapping.window_minutes,
      timeZone: p.quiet_hours.timezone,
      ackWord: p.content.ack_words[0] ?? "ok",
    },
  });
  const health = () => {
    const devices = guard.devices();
    return {
      queue: outbox.store.depth(),
      mesh_breaker: outbox.breaker.state,
      last_mesh_contact: outbox.lastMeshContact === null
        ? null
        : new Date(outbox.lastMeshContact).toISOString(),
      devices: {
        total: devices.length,
        alerting: devices.filter((d) => d.alerting && d.acknowledgedAt === null).length,
        flapping: devices.filter((d) => d.flapping).length,
      },
    };
  };
  const ingestApp = createIngestApp({
    policy: {
      ingest: p.ingest,
      openhabPerHour: openhabLimits(p),
      maxBodyBytes: p.security.max_body_bytes,
    },
    pipeline,
    isCritical: (ev) => guard.isCritical(ev),
    log: log.child("ingest"),
    now,
    health,
    ...(config.ingestKey
      ? {
        signing: {
          key: config.ingestKey,
          nonceStore: openNonceStore(
            path === ":memory:" ? ":memory:" : `${config.stateDir}/ingest_nonces.db`,
            p.security.nonce_retention_minutes * 60_000,
          ),
          toleranceMs: p.security.timestamp_tolerance_minutes * 60_000,
        },
      }
      : {}),
  });
  const messagesApp = new Hono();
  messagesApp.get("/health", (c) => ok(c, { service: "joi", status: "ok", ...health() }));
  const acknowledge = createAcknowledger({
    ackWords: p.content.ack_words,
    ownerIds: [config.ownerId],
    acknowledgeAll: () => {
      const devices = guard.acknowledgeAll(now());
      if (devices.length) log.info("alerts_acknowledged", { devices });
      return devices;
    },
  });
  return {
    db,
    guard,
    outbox,
    pipeline,
    context,
    ingestApp,
    messagesApp,
    acknowledge,
    tick: (t?: number) => pipeline.tick(t ?? now()),
    health,
    close: () => db.close(),
  };
}

/** A listening address. */
export interface Listen {
  hostname: string;
  port: number;
}

/** Parses `127.0.0.1:8445` (or `[::1]:8445`); throws naming the flag. */
export function parseListen(value: string, flag: string): Listen {
  const m = /^(\[[0-9a-fA-F:.]+\]|[0-9.]+|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(value);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) {
    throw new Error(`--${flag}: "${value}" is not host:port (e.g. 127.0.0.1:8445)`);
  }
  const hostname = m[1]!.replace(/^\[|\]$/g, "");
  if (hostname === "0.0.0.0" || hostname === "::") {
    throw new Error(`--${flag}: refusing to bind ${hostname}; give the Nebula or loopback address`);
  }
  return { hostname, port };
}

/** Running servers and timers. */
export interface Running {
  ingest: Deno.HttpServer<Deno.NetAddr>;
  messages: Deno.HttpServer<Deno.NetAddr>;
  /** Stops timers and servers. */
  stop(): Promise<void>;
}

/** Serves both apps and starts the ticker (`tickMs`, default 1000). */
export function serveServices(
  s: Services,
  addr: { ingest: Listen; messages: Listen },
  options: { tickMs?: number; log?: Logger } = {},
): Running {
  const onListen = () => {};
  const ingest = Deno.serve({ ...addr.ingest, onListen }, s.ingestApp.fetch);
  const messages = Deno.serve({ ...addr.messages, onListen }, s.messagesApp.fetch);
  const timer = setInterval(() => {
    try {
      s.tick();
    } catch (e) {
      options.log?.error("tick_failed", { error: String(e) });
    }
  }, options.tickMs ?? 1000);
  // retry what a previous run left queued
  s.outbox.kick();
  return {
    ingest,
    messages,
    async stop() {
      clearInterval(timer);
      await Promise.allSettled([ingest.shutdown(), messages.shutdown()]);
    },
  };
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      "config-dir": { type: "string" },
      "state-dir": { type: "string" },
      "log-dir": { type: "string" },
      "secrets-dir": { type: "string" },
      listen: { type: "string" },
      "ingest-listen": { type: "string" },
      "mesh-url": { type: "string" },
      "llm-url": { type: "string" },
      "retrieve-bin": { type: "string" },
      "knowledge-socket": { type: "string" },
      mode: { type: "string" },
      "mesh-address": { type: "string" },
    },
  });
  for (const f of ["config-dir", "state-dir", "listen", "ingest-listen", "mesh-url"] as const) {
    if (!values[f]) {
      console.error(
        `joi: --${f} is required (see the joi entry of services/common/permissions.ts)`,
      );
      return 2;
    }
  }
  const sinks = [];
  if (values["log-dir"]) {
    try {
      await Deno.mkdir(values["log-dir"], { recursive: true });
      sinks.push(fileSink(`${values["log-dir"]}/joi.log`));
      sinks.push(fileSink(`${values["log-dir"]}/security.log`, true));
    } catch (e) {
      console.error(`joi: cannot open logs in ${values["log-dir"]}: ${(e as Error).message}`);
    }
  }
  const log = createLogger("joi", { sinks });
  let policies;
  try {
    policies = loadPolicies(values["config-dir"]!);
  } catch (e) {
    console.error(`joi: policies in ${values["config-dir"]} refused:\n${(e as Error).message}`);
    return 1;
  }
  let meshKey: CryptoKey | undefined;
  try {
    meshKey = await loadKey(values["secrets-dir"], "joi_to_mesh.key");
  } catch (e) {
    log.warn("mesh_key_missing", {
      error: (e as Error).message,
      effect: "outbound messages stay queued until the key exists and joi restarts",
    });
  }
  // openHAB->joi signatures: required exactly when the key is provisioned
  // (production loads it as a credential, so its absence stops the unit).
  let ingestKey: CryptoKey | undefined;
  try {
    ingestKey = await loadOptionalKey(values["secrets-dir"], "openhab_to_joi.key");
  } catch (e) {
    console.error(`joi: ${(e as Error).message}`);
    return 1;
  }
  if (!ingestKey) {
    if (values.mode === "production") {
      console.error(
        "joi: openhab_to_joi.key is missing: production ingest accepts signed events only",
      );
      return 1;
    }
    log.warn("ingest_unsigned", {
      reason: "no openhab_to_joi.key: ingest accepts unsigned events",
    });
  }
  let listen: Listen, ingestListen: Listen;
  try {
    listen = parseListen(values.listen!, "listen");
    ingestListen = parseListen(values["ingest-listen"]!, "ingest-listen");
  } catch (e) {
    console.error(`joi: ${(e as Error).message}`);
    return 2;
  }
  await Deno.mkdir(values["state-dir"]!, { recursive: true, mode: 0o700 });
  const ownerId = Object.keys(policies.recipients.recipients)[0] ?? "owner";
  const transport: MeshTransport | undefined = meshKey ? undefined : {
    send: () =>
      Promise.resolve({
        ok: false,
        retryable: true,
        error: "mesh unreachable: no joi_to_mesh.key",
      }),
  };
  const agentRef: { agent?: Agent } = {};
  // The config manager exists once the conversation side is built; until then
  // (the first milliseconds) requests carry no X-Config-Hash.
  const configRef: { hash?: () => string } = {};
  const services = createServices({
    policy: policies.policy,
    ownerId,
    stateDir: values["state-dir"]!,
    meshUrl: values["mesh-url"]!,
    ...(meshKey ? { meshKey } : {}),
    ...(ingestKey ? { ingestKey } : {}),
    configHash: () => configRef.hash?.(),
    ...(transport ? { transport } : {}),
    context: { push: (item) => agentRef.agent?.push(item) },
    log,
  });
  // the conversation side: config manager (SIGHUP), memory, LLM, agent, signed 8443 app
  let conversation;
  try {
    conversation = await createConversation({
      policies, // validated once above; SIGHUP reloads read the files again
      configDir: values["config-dir"]!,
      stateDir: values["state-dir"]!,
      secretsDir: values["secrets-dir"] ?? "",
      mode: values.mode === "production" ? "production" : "local",
      meshSources: [values["mesh-address"] ?? "127.0.0.1"],
      outbox: services.outbox,
      acknowledge: services.acknowledge,
      health: services.health,
      llmUrl: values["llm-url"],
      knowledgeSocket: values["knowledge-socket"],
      log,
    });
  } catch (e) {
    console.error(`joi: conversation side refused to start: ${(e as Error).message}`);
    services.close();
    return 1;
  }
  agentRef.agent = conversation.agent;
  configRef.hash = () => conversation.config.current().identitiesHash;
  services.messagesApp = conversation.app;
  conversation.start();
  const running = serveServices(services, { ingest: ingestListen, messages: listen }, { log });
  log.info("joi_started", {
    ingest: `${ingestListen.hostname}:${running.ingest.addr.port}`,
    messages: `${listen.hostname}:${running.messages.addr.port}`,
  });
  const done = Promise.withResolvers<void>();
  const stop = () => done.resolve();
  Deno.addSignalListener("SIGTERM", stop);
  Deno.addSignalListener("SIGINT", stop);
  // SIGHUP: the conversation side's config manager reloads (conversation.start())
  await done.promise;
  log.info("joi_stopping", {});
  await running.stop();
  await conversation.close();
  services.close();
  return 0;
}

if (import.meta.main) Deno.exit(await main());
