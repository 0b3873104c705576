/**
 * joi's watches, built together: the worst failure of a safety system is a
 * silent one, so each way for joi to stop working is watched and told.
 *
 * | watch  | what                                   | told to        | safety |
 * |--------|----------------------------------------|----------------|--------|
 * | link   | joi <-> mesh over Nebula (summary)     | owner+critical | yes    |
 * | house  | the relay's heartbeat; openHAB itself  | critical       | yes    |
 * | clock  | offsets to mesh and openHAB; refusals  | owner          | refusals |
 * | model  | Ollama unreachable or on CPU           | owner          | no     |
 * | expiry | Nebula certificates, signal-cli age    | owner          | last day |
 * | drift  | the daily validation's report          | owner          | no     |
 *
 * (The mesh tells the household itself when joi is unreachable:
 * `services/mesh/watch/`.) Every message goes through {@link WatchAlerts}
 * and the outbox. Their state is in `joi.db`.
 *
 * @module
 */
import type { DatabaseSync } from "node:sqlite";
import type { Logger } from "../../common/log.ts";
import type { HouseholdRoles } from "../../common/policy/household.ts";
import type { Policy } from "../../common/policy/policy.ts";
import { CertReader } from "../../common/watch/cert_reader.ts";
import type { Heartbeat } from "../../common/watch/heartbeat.ts";
import { WatchLedger } from "../../common/watch/ledger.ts";
import type { LinkRequester } from "../../common/watch/link_ping.ts";
import type { GpuHealthMonitor } from "../llm/health.ts";
import type { Outbox } from "../outbox/outbox.ts";
import { WatchAlerts } from "./alerts.ts";
import { ClockWatch, type Peer } from "./clock.ts";
import { DriftWatch } from "./drift.ts";
import { ExpiryWatch } from "./expiry.ts";
import { HouseWatch } from "./house.ts";
import { LinkWatch } from "./link.ts";
import { ModelWatch } from "./model.ts";

/** Inputs of {@link createWatches}. */
export interface WatchesOptions {
  db: DatabaseSync;
  outbox: Outbox;
  roles: HouseholdRoles;
  /** The policy in force (reloads apply to texts, thresholds read per use). */
  policy: () => Policy;
  gpu: GpuHealthMonitor;
  /** Signed client to the mesh for the link checks; absent: no link watch (no key). */
  meshClient?: LinkRequester | undefined;
  /** joi's own Nebula certificate (`/etc/nebula/joi.crt`, production). */
  certPath?: string | undefined;
  /** The daily validation's report (production). */
  driftReport?: string | undefined;
  /** Production: a relay is expected from the start. */
  production: boolean;
  log: Logger;
  now: () => number;
}

/** joi's watches. */
export interface Watches {
  alerts: WatchAlerts;
  link: LinkWatch | undefined;
  house: HouseWatch;
  clock: ClockWatch;
  model: ModelWatch;
  expiry: ExpiryWatch;
  drift: DriftWatch;
  /** The ingest's heartbeat route calls this. */
  heartbeat(hb: Heartbeat, receivedAt: number): void;
  /** A request of `peer` refused for its timestamp (the signed routes' hook). */
  refused(peer: Peer, skewMs: number): void;
  /** Evaluates silences (every second with the event path's tick). */
  tick(now: number): void;
  /** Starts the periodic checks. */
  start(): void;
  /** Stops them. */
  stop(): void;
  /** For `/health`. */
  health(): Record<string, unknown>;
}

/** Builds the watches over joi's database and outbox. */
export async function createWatches(o: WatchesOptions): Promise<Watches> {
  const { log, now } = o;
  const ledger = new WatchLedger(o.db);
  const tz = () => o.policy().household.timezone;
  const alerts = new WatchAlerts({
    ledger,
    outbox: o.outbox,
    roles: o.roles,
    policy: o.policy,
    log: log.child("alerts"),
    now,
  });
  const clock = new ClockWatch({
    ledger,
    alerts,
    alertMs: () => o.policy().security.clock_offset_alert_seconds * 1000,
    toleranceMs: () => o.policy().security.timestamp_tolerance_minutes * 60_000,
    refusals: () => o.policy().watch.timestamp_refusals,
    log: log.child("clock"),
    now,
  });
  const expiry = new ExpiryWatch({
    ledger,
    alerts,
    warnDays: () => o.policy().watch.cert_warn_days,
    remindDays: () => o.policy().watch.signal_cli_remind_days,
    timeZone: tz,
    log: log.child("expiry"),
    now,
  });
  const first = o.policy();
  const link = o.meshClient
    ? new LinkWatch({
      client: o.meshClient,
      ledger,
      alerts,
      outbox: o.outbox.store,
      // the relay's alarms held during the outage: its next heartbeat says they are in
      settled: (t) => {
        const last = house.last;
        if (!last && !o.production) return true;
        return last !== undefined && last.at > t && last.hb.relay.pending_critical === 0;
      },
      flush: () => {
        o.outbox.store.retryNow(now()); // the mesh is back: what waited for a retry goes now
        return o.outbox.pump();
      },
      failures: () => o.policy().nebula_health.alert_after_failures,
      checkIntervalMs: () => o.policy().nebula_health.check_interval_seconds * 1000,
      timeZone: tz,
      onClock: (s) => clock.sample("mesh", s),
      onMeshFacts: (f) => {
        if (f.cert && "notAfter" in f.cert) expiry.cert("mesh", f.cert.notAfter);
        else if (f.cert) expiry.certError("mesh", f.cert.error);
        if (f.signalCli) expiry.signalCli(f.signalCli);
      },
      log: log.child("link"),
      now,
    })
    : undefined;
  const house = new HouseWatch({
    ledger,
    alerts,
    silentMs: () => o.policy().watch.house_silent_seconds * 1000,
    expectRelay: o.production,
    timeZone: tz,
    log: log.child("house"),
    now,
  });
  const model = new ModelWatch({
    ledger,
    alerts,
    afterMs: first.watch.model_alert_minutes * 60_000,
    cpuCounts: () => o.policy().gpu_health.alert_on_fallback,
    timeZone: tz,
    log: log.child("model"),
    now,
  });
  o.gpu.onCheck((h) => model.observe(h));
  const drift = new DriftWatch({
    path: o.driftReport,
    ledger,
    alerts,
    timeZone: tz,
    log: log.child("drift"),
    now,
  });
  const own = new CertReader(o.certPath);
  const readOwn = async () => {
    await own.refresh();
    const f = own.facts();
    if (f && "not_after" in f) expiry.cert("joi", f.not_after);
    else if (f) expiry.certError("joi", f.error);
  };
  await readOwn();

  const timers: ReturnType<typeof setInterval>[] = [];
  return {
    alerts,
    link,
    house,
    clock,
    model,
    expiry,
    drift,
    heartbeat(hb, at) {
      house.heartbeat(hb, at);
      clock.sample("openhab", { offsetMs: hb.sent_at - at, rttMs: 0, at });
      if (hb.cert && "not_after" in hb.cert) expiry.cert("openhab", hb.cert.not_after);
      else if (hb.cert) expiry.certError("openhab", hb.cert.error);
    },
    refused: (peer, skewMs) => clock.refused(peer, skewMs),
    tick(t) {
      house.tick(t);
      clock.tick(t);
    },
    start() {
      const p = o.policy();
      if (link) {
        void link.check();
        timers.push(
          setInterval(() => void link.check(), p.nebula_health.check_interval_seconds * 1000),
        );
      }
      void drift.check();
      timers.push(setInterval(() => void drift.check(), 5 * 60_000));
      timers.push(setInterval(() => void readOwn(), 6 * 3_600_000));
      timers.push(setInterval(() => ledger.prune(now() - 400 * 86_400_000), 86_400_000));
    },
    stop() {
      for (const t of timers) clearInterval(t);
      timers.length = 0;
    },
    health: () => ({
      link: link?.status() ?? { reachable: null, note: "no joi_to_mesh.key: no link checks" },
      house: house.status(),
      clock: clock.status(),
      model: model.status(),
      expiry: expiry.status(),
      drift: drift.status(),
    }),
  };
}
