/**
 * joi's openHAB event path, as one unit: the flood guard over `joi.db`, the
 * event pipeline (alarms to the outbox, everything else to home context),
 * the ingest app (8445) and the acknowledger the inbound side calls with each
 * message (only the owner's replies in the critical group acknowledge). joi's composition root (`services/joi/service.ts`) builds it
 * after the outbox and the agent; tests of the event path build it alone with
 * a {@link ContextBuffer} as the context sink.
 *
 * @module
 */
import type { DatabaseSync } from "node:sqlite";
import type { Hono } from "hono";
import type { Logger } from "../../common/log.ts";
import type { HouseholdRoles } from "../../common/policy/household.ts";
import type { Policy } from "../../common/policy/policy.ts";
import { type NonceStore, openNonceStore } from "../../common/wire/nonce_store.ts";
import type { WireKey } from "../../common/wire/keys.ts";
import type { TimestampHook } from "../../common/wire/signed_routes.ts";
import { type Acknowledge, createAcknowledger } from "../guard/acknowledge.ts";
import type { AlarmLog } from "../guard/alarms.ts";
import { FloodGuard } from "../guard/flood.ts";
import type { Outbox } from "../outbox/outbox.ts";
import { createIngestApp } from "./app.ts";
import type { ContextSink } from "./context.ts";
import { EventPipeline } from "./pipeline.ts";
import type { IngestEndpoint } from "./types.ts";
import type { Heartbeat } from "../../common/watch/heartbeat.ts";

/** Inputs of {@link createEventPath}. */
export interface EventPathOptions {
  /** joi's database (`joi.db`), opened once by the caller. */
  db: DatabaseSync;
  /** The validated `policy.yaml`. */
  policy: Policy;
  /** The household's owner, owner's DM and critical channel. */
  roles: HouseholdRoles;
  /** The one way out to the mesh. */
  outbox: Outbox;
  /** Where home context goes (the agent in joi; a buffer in tests). */
  context: ContextSink;
  /** The alarm record over `db`, when the caller shares it (the agent reads it). */
  alarms?: AlarmLog | undefined;
  /**
   * The relay's openhab_to_joi key and where its nonce store lives
   * (`<state>/ingest_nonces.journal`): ingest then takes signed events only.
   */
  signing?:
    | { key: WireKey; nonceStorePath: string; onTimestamp?: TimestampHook | undefined }
    | undefined;
  /** The relay's heartbeats go here (the house watch). */
  heartbeat?: ((hb: Heartbeat, receivedAt: number) => void) | undefined;
  /** Logger. */
  log: Logger;
  /** Clock (ms). */
  now: () => number;
}

/** The built event path. */
export interface EventPath {
  guard: FloodGuard;
  pipeline: EventPipeline;
  /** openHAB ingest, port 8445. */
  ingestApp: Hono;
  /** The inbound side calls this with each message: it acknowledges alarms (critical group only). */
  acknowledge: Acknowledge;
  /** Outbox and device state for /health. */
  health(): Record<string, unknown>;
  /** Fires timers (confirmation loop, batches, summaries); returns what it sent. */
  tick(now: number): number;
  /** Closes the nonce store (the database is the caller's). */
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

/** Builds the event path over `o.db`, sending through `o.outbox`. */
export function createEventPath(o: EventPathOptions): EventPath {
  const { db, policy: p, outbox, log, now } = o;
  const nonceStore: NonceStore | undefined = o.signing
    ? openNonceStore(o.signing.nonceStorePath, p.security.nonce_retention_minutes * 60_000)
    : undefined;
  const guard = new FloodGuard({ db, alarms: o.alarms, policy: p.iot, log: log.child("guard") });
  const pipeline = new EventPipeline({
    db,
    guard,
    outbox,
    context: o.context,
    log: log.child("pipeline"),
    roles: o.roles,
    now,
    policy: {
      batchMinutes: p.ingest.batch_minutes,
      eventIdWindowMinutes: p.ingest.event_id_window_minutes,
      summaries: p.ingest.summaries,
      flappingWindowMinutes: p.iot.flapping.window_minutes,
      timeZone: p.household.timezone,
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
      deviceClasses: p.iot.device_classes,
      openhabPerHour: openhabLimits(p),
      maxBodyBytes: p.security.max_body_bytes,
      bodyTimeoutMs: p.server.body_timeout_seconds * 1000,
    },
    pipeline,
    isCritical: (ev) => guard.isCritical(ev),
    log: log.child("ingest"),
    now,
    health,
    heartbeat: o.heartbeat,
    ...(o.signing && nonceStore
      ? {
        signing: {
          key: o.signing.key,
          nonceStore,
          toleranceMs: p.security.timestamp_tolerance_minutes * 60_000,
          onTimestamp: o.signing.onTimestamp,
        },
      }
      : {}),
  });
  // the mesh confirmed an alert: only then may the critical group acknowledge its alarm
  outbox.onSent((m) => guard.alarms.markSent(m.deliveryId, m.sentAt ?? now()));
  const acknowledge = createAcknowledger({
    ackWords: p.content.ack_words,
    ownerIds: [o.roles.owner],
    criticalChannel: o.roles.criticalChannel,
    target: {
      byDelivery: (id) => guard.alarms.byDelivery(id),
      unacknowledgedSent: (at) => guard.alarms.unacknowledgedSent(at),
      acknowledge: (ids, at) => {
        const acked = guard.acknowledge(ids, at);
        if (acked.length) log.info("alerts_acknowledged", { devices: acked.map((a) => a.device) });
        return acked;
      },
    },
    now,
  });
  return {
    guard,
    pipeline,
    ingestApp,
    acknowledge,
    health,
    tick: (t) => pipeline.tick(t),
    close: () => nonceStore?.close?.(),
  };
}
