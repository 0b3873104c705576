/**
 * Each of joi's watches with an injected clock: told at its threshold, once
 * per episode, and its recovery (see harness.ts for the bench).
 */
import assert from "node:assert/strict";
import type { Heartbeat } from "../../../../services/common/watch/heartbeat.ts";
import type { WireResponse } from "../../../../services/common/wire/client.ts";
import { ClockWatch } from "../../../../services/joi/watch/clock.ts";
import { DriftWatch } from "../../../../services/joi/watch/drift.ts";
import { ExpiryWatch } from "../../../../services/joi/watch/expiry.ts";
import { HouseWatch } from "../../../../services/joi/watch/house.ts";
import { LinkWatch } from "../../../../services/joi/watch/link.ts";
import type { LinkRequester } from "../../../../services/common/watch/link_ping.ts";
import { ModelWatch } from "../../../../services/joi/watch/model.ts";
import type { GpuHealth } from "../../../../services/joi/llm/health.ts";
import { driftReport, writeDriftReport } from "../../../../services/common/watch/drift_report.ts";
import { bench, NOON } from "./harness.ts";

const S = 1000;
const MIN = 60 * S;
const DAY = 24 * 60 * MIN;
const OWNER = "owner_private_dm";
const CRITICAL = "critical_group";

// ---- house ----

function beat(
  at: number,
  o: Partial<{ started: number; failing: number | null; up: boolean }> = {},
): Heartbeat {
  return {
    source: "openhab.homelab.example",
    sent_at: at,
    relay: {
      started_at: o.started ?? NOON - DAY,
      failing_since: o.failing ?? null,
      pending_critical: 0,
      buffered: 0,
    },
    openhab: {
      reachable: o.up ?? true,
      since: NOON - DAY,
      last_traffic_at: at,
      error: o.up === false ? "connection refused" : null,
    },
    cert: null,
  };
}

function house(b: ReturnType<typeof bench>, expectRelay = true) {
  return new HouseWatch({
    ledger: b.ledger,
    alerts: b.alerts,
    silentMs: () => b.policy.watch.house_silent_seconds * S,
    expectRelay,
    timeZone: () => "UTC",
    log: b.log,
    now: b.now,
  });
}

Deno.test("house watch: silent past house_silent_seconds -> one critical alert; a restarted relay -> 'back, it had stopped'", async () => {
  const b = bench();
  const h = house(b);
  h.heartbeat(beat(b.now()), b.now());
  for (let i = 1; i <= 4; i++) {
    b.clock.now += MIN;
    h.heartbeat(beat(b.now()), b.now());
    h.tick(b.now());
  }
  const lastBeat = b.now();
  // the relay stops: 5 minutes (the default) of silence are not yet "silent"
  for (let s = 0; s <= 300; s += 5) {
    b.clock.now = lastBeat + s * S;
    h.tick(b.now());
  }
  await b.flush();
  assert.deepEqual(b.to(CRITICAL), []);
  b.clock.now = lastBeat + 301 * S;
  h.tick(b.now());
  for (let s = 0; s < 20; s++) {
    b.clock.now += 5 * S;
    h.tick(b.now());
  }
  await b.flush();
  assert.equal(b.to(CRITICAL).length, 1);
  assert.match(
    b.to(CRITICAL)[0]!,
    /^The house is silent: no heartbeat from the openHAB relay since 12:04 \(5 min\)/,
  );
  assert.match(b.to(CRITICAL)[0]!, /systemctl status joi-openhab-relay nebula/);
  assert.deepEqual(b.to(OWNER), []);
  // the relay restarts: its start time is after the silence began
  b.clock.now += 2 * MIN;
  h.heartbeat(beat(b.now(), { started: b.now() - 3 * S }), b.now());
  await b.flush();
  assert.equal(b.to(CRITICAL).length, 2);
  assert.match(
    b.to(CRITICAL)[1]!,
    /^The house is back: .* \(silent from 12:04, 9 min\)\. The relay restarted at 12:12: it had stopped\.$/,
  );
  h.heartbeat(beat(b.now() + MIN), b.now() + MIN);
  await b.flush();
  assert.equal(b.to(CRITICAL).length, 2);
});

Deno.test("house watch: a cut link is told apart when heartbeats resume (the relay ran throughout, its posts failed)", async () => {
  const b = bench();
  const h = house(b);
  h.heartbeat(beat(b.now()), b.now());
  const cut = b.now();
  b.clock.now = cut + 6 * MIN;
  h.tick(b.now());
  await b.flush();
  assert.equal(b.to(CRITICAL).length, 1);
  b.clock.now = cut + 10 * MIN;
  h.heartbeat(beat(b.now(), { failing: cut + MIN }), b.now());
  await b.flush();
  assert.match(
    b.to(CRITICAL)[1]!,
    /The relay ran throughout; its posts to joi failed from 12:01: the link from the openHAB VM was cut\.$/,
  );
});

Deno.test("house watch: a dead openHAB behind a live relay is its own alert, and its recovery", async () => {
  const b = bench();
  const h = house(b);
  h.heartbeat(beat(b.now()), b.now());
  const down = b.now() + 30 * S;
  for (let t = 1; t <= 7; t++) {
    b.clock.now = NOON + t * MIN;
    const hb = beat(b.now(), { up: false });
    hb.openhab.since = down;
    h.heartbeat(hb, b.now());
    h.tick(b.now());
  }
  await b.flush();
  assert.equal(b.to(CRITICAL).length, 1);
  assert.match(
    b.to(CRITICAL)[0]!,
    /^openHAB is not answering the relay since 12:00 \(connection refused\)\. The relay and its link to joi work/,
  );
  b.clock.now += MIN;
  h.heartbeat(beat(b.now()), b.now());
  await b.flush();
  assert.match(b.to(CRITICAL)[1]!, /^openHAB answers the relay again/);
  assert.equal(b.to(CRITICAL).filter((t) => /house is silent/.test(t)).length, 0);
});

Deno.test("house watch: the local run is armed only once a relay was heard; joi's own downtime is not the house's", async () => {
  const b = bench();
  const h = house(b, false);
  b.clock.now += 60 * MIN;
  h.tick(b.now());
  await b.flush();
  assert.deepEqual(b.sent, []);
  // production: heard 10 minutes before joi restarted; silence counts from joi's start
  const p = bench({ db: b.db, clock: b.clock });
  p.ledger.save("house-last", { at: b.now() - 10 * MIN, hb: beat(b.now() - 10 * MIN) });
  const h2 = house(p, true);
  h2.tick(p.now());
  await p.flush();
  assert.deepEqual(p.sent, []);
  p.clock.now += 6 * MIN;
  h2.tick(p.now());
  await p.flush();
  assert.match(p.to(CRITICAL)[0]!, /since joi started at 13:00 \(last heard 12:50\)/);
});

// ---- clock ----

function clock(b: ReturnType<typeof bench>) {
  return new ClockWatch({
    ledger: b.ledger,
    alerts: b.alerts,
    alertMs: () => b.policy.security.clock_offset_alert_seconds * S,
    toleranceMs: () => b.policy.security.timestamp_tolerance_minutes * MIN,
    refusals: () => b.policy.watch.timestamp_refusals,
    log: b.log,
    now: b.now,
  });
}

Deno.test("clock watch: an offset above clock_offset_alert_seconds twice running is told once, and its end", async () => {
  const b = bench();
  const c = clock(b);
  const sample = (offsetMs: number) => {
    b.clock.now += 30 * S;
    c.sample("openhab", { offsetMs, rttMs: 0, at: b.now() });
  };
  sample(29_000);
  sample(31_000); // one sample above: not yet
  sample(2_000);
  sample(42_000);
  await b.flush();
  assert.deepEqual(b.to(OWNER), []);
  sample(43_000);
  sample(44_000);
  sample(45_000);
  await b.flush();
  assert.deepEqual(b.to(OWNER), [
    "The clock of the openHAB VM is 43 s ahead of joi's (I warn above 30 s). At 5 min apart, " +
    "alarms from the house will be refused: check time synchronisation (chrony) on both VMs.",
  ]);
  sample(-300);
  sample(100);
  await b.flush();
  assert.deepEqual(b.to(OWNER).slice(1), [
    "The clocks of joi and the openHAB VM agree again (0.3 s apart).",
  ]);
  assert.equal((c.status().openhab as { offset_ms: number }).offset_ms, 100);
});

Deno.test("clock watch: a burst of timestamp refusals is a safety alert naming the peer, ended after a quiet window", async () => {
  const b = bench();
  const c = clock(b);
  c.refused("mesh", 400_000);
  b.clock.now += MIN;
  c.refused("mesh", 400_000);
  await b.flush();
  assert.deepEqual(b.to(OWNER), []);
  b.clock.now += MIN;
  c.refused("mesh", 401_000);
  c.refused("mesh", 401_000);
  await b.flush();
  assert.equal(b.to(OWNER).length, 1);
  assert.match(
    b.to(OWNER)[0]!,
    /^joi refused 3 requests from the mesh VM in the last 10 min because their time was 6 min 41 s|^joi refused 3 requests from the mesh VM in the last 10 min because their time was 7 min behind/,
  );
  assert.equal(b.sent[0]!.priority, "critical");
  b.clock.now += 11 * MIN;
  c.tick(b.now());
  await b.flush();
  assert.match(b.to(OWNER)[1]!, /^No request from the mesh VM has been refused/);
});

// ---- model ----

function snap(o: Partial<GpuHealth>): GpuHealth {
  return {
    gpu_available: true,
    inference_time_ms: null,
    vram_used_mb: 4000,
    degraded: false,
    ollama_reachable: true,
    cpu_loaded: false,
    error: null,
    checked_at: null,
    ...o,
  };
}

Deno.test("model watch: Ollama unreachable for model_alert_minutes is told once, with recovery; shorter is not", async () => {
  const b = bench();
  const m = new ModelWatch({
    ledger: b.ledger,
    alerts: b.alerts,
    afterMs: b.policy.watch.model_alert_minutes * MIN,
    cpuCounts: () => true,
    timeZone: () => "UTC",
    log: b.log,
    now: b.now,
  });
  const down = snap({
    ollama_reachable: false,
    vram_used_mb: null,
    error: "nothing listens at http://127.0.0.1:11434 (connection refused)",
  });
  // a 5-minute blip: never told
  for (let i = 0; i < 5; i++) {
    m.observe(down);
    b.clock.now += MIN;
  }
  m.observe(snap({}));
  await b.flush();
  assert.deepEqual(b.sent, []);
  for (let i = 0; i <= 12; i++) {
    m.observe(down);
    b.clock.now += MIN;
  }
  await b.flush();
  assert.equal(b.to(OWNER).length, 1);
  assert.match(
    b.to(OWNER)[0]!,
    /^My language model \(Ollama\) has not answered since 12:05 \(10 min\): I cannot reply to messages\. Alarms and critical alerts still work/,
  );
  m.observe(snap({}));
  await b.flush();
  assert.match(
    b.to(OWNER)[1]!,
    /^My language model works again: it was down or slow from 12:05 to 12:18 \(13 min\)\.$/,
  );
  // GPU lost without anyone writing: Ollama holds the model on the CPU after it had used the GPU
  for (let i = 0; i <= 11; i++) {
    m.observe(snap({ vram_used_mb: 0, cpu_loaded: true }));
    b.clock.now += MIN;
  }
  await b.flush();
  assert.match(b.to(OWNER)[2]!, /^I have been running on the CPU since 12:18/);
  assert.equal(b.to(OWNER).length, 3);
});

// ---- expiry ----

Deno.test("expiry watch: certificate warnings at 30, 7 and 1 days, once each; expired; renewed", async () => {
  const b = bench();
  const e = new ExpiryWatch({
    ledger: b.ledger,
    alerts: b.alerts,
    warnDays: () => b.policy.watch.cert_warn_days,
    remindDays: () => b.policy.watch.signal_cli_remind_days,
    timeZone: () => "UTC",
    log: b.log,
    now: b.now,
  });
  const end = NOON + 40 * DAY;
  const at = async (daysBefore: number) => {
    b.clock.now = end - daysBefore * DAY;
    e.cert("openhab", end);
    e.cert("openhab", end);
    await b.flush();
    return b.to(OWNER).length;
  };
  assert.equal(await at(40), 0);
  assert.equal(await at(31), 0);
  assert.equal(await at(29.75), 1);
  assert.match(
    b.to(OWNER)[0]!,
    /^The Nebula certificate of the openHAB VM expires in 29 days \(Mon 13 Apr at 12:00\)\. Then the house's alarms stop reaching joi/,
  );
  assert.equal(await at(20), 1);
  assert.equal(await at(6.75), 2);
  assert.match(b.to(OWNER)[1]!, /expires in 6 days/);
  assert.equal(await at(0.5), 3);
  assert.match(b.to(OWNER)[2]!, /expires in less than a day/);
  assert.equal(b.sent[2]!.priority, "critical");
  assert.equal(await at(-0.1), 4);
  assert.match(b.to(OWNER)[3]!, /^The Nebula certificate of the openHAB VM expired at 12:00/);
  assert.equal(await at(-1), 4);
  // renewed: confirmed once
  b.clock.now = end + DAY;
  e.cert("openhab", end + 90 * DAY);
  e.cert("openhab", end + 90 * DAY);
  await b.flush();
  assert.equal(b.to(OWNER).length, 5);
  assert.match(b.to(OWNER)[4]!, /was renewed: valid until/);
  // first seen with 3 days left: only the most urgent warning due
  const b2 = bench();
  const e2 = new ExpiryWatch({
    ledger: b2.ledger,
    alerts: b2.alerts,
    warnDays: () => [30, 7, 1],
    remindDays: () => 7,
    timeZone: () => "UTC",
    log: b2.log,
    now: b2.now,
  });
  e2.cert("mesh", b2.now() + 3 * DAY);
  await b2.flush();
  assert.equal(b2.to(OWNER).length, 1);
  assert.match(b2.to(OWNER)[0]!, /mesh VM expires in 3 days/);
});

Deno.test("expiry watch: signal-cli past version_warn_days is told, then weekly", async () => {
  const b = bench();
  const e = new ExpiryWatch({
    ledger: b.ledger,
    alerts: b.alerts,
    warnDays: () => [30, 7, 1],
    remindDays: () => 7,
    timeZone: () => "UTC",
    log: b.log,
    now: b.now,
  });
  const told = [];
  for (let age = 70; age <= 90; age++) {
    b.clock.now += DAY;
    e.signalCli({ version: "0.13.4", ageDays: age, warnDays: 75 });
    e.signalCli({ version: "0.13.4", ageDays: age, warnDays: 75 });
    await b.flush();
    told.push(b.to(OWNER).length);
  }
  // ages 76, 83, 90
  assert.deepEqual(
    told.map((n, i) => [70 + i, n]).filter(([, n], i, a) => i === 0 || n !== a[i - 1]![1]),
    [
      [70, 0],
      [76, 1],
      [83, 2],
      [90, 3],
    ],
  );
  assert.match(b.to(OWNER)[0]!, /^signal-cli 0\.13\.4 on the mesh is 76 days old/);
});

// ---- drift ----

Deno.test("drift watch: the owner is told which checks failed, once per failing set, and when it passes again", async () => {
  const b = bench();
  const dir = await Deno.makeTempDir({ prefix: "joi-drift-" });
  const path = `${dir}/report.json`;
  try {
    const d = new DriftWatch({
      path,
      ledger: b.ledger,
      alerts: b.alerts,
      timeZone: () => "UTC",
      log: b.log,
      now: b.now,
    });
    await d.check(); // no report yet
    writeDriftReport(
      path,
      driftReport([{ severity: "WARNING", code: "not_immutable" }], NOON),
    );
    await d.check();
    await b.flush();
    assert.deepEqual(b.sent, []);
    const failing = [
      { severity: "ERROR" as const, code: "unit_drift" },
      { severity: "CRITICAL" as const, code: "critical_in_private_group" },
      { severity: "WARNING" as const, code: "not_immutable" },
    ];
    b.clock.now += DAY;
    writeDriftReport(path, driftReport(failing, b.now()));
    await d.check();
    await d.check();
    b.clock.now += DAY; // next day, same failures
    writeDriftReport(path, driftReport(failing, b.now()));
    await d.check();
    await b.flush();
    assert.deepEqual(b.to(OWNER), [
      "The daily configuration check (joi-validate-config, 12:00) failed: 1 critical, 1 error. " +
      "Failed checks: critical_in_private_group, unit_drift. Run joi-validate-config on the joi VM " +
      "to see each problem and its fix.",
    ]);
    b.clock.now += DAY; // a different failure
    writeDriftReport(
      path,
      driftReport([{ severity: "ERROR", code: "secret_mode" }], b.now()),
    );
    await d.check();
    b.clock.now += DAY;
    writeDriftReport(path, driftReport([], b.now()));
    await d.check();
    await b.flush();
    assert.equal(b.to(OWNER).length, 3);
    assert.match(b.to(OWNER)[1]!, /Failed checks: secret_mode\./);
    assert.equal(b.to(OWNER)[2], "The daily configuration check passes again (12:00).");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---- link (joi's end) ----

/** joi's link watch on the bench, checking through `client` (3 failures to an episode). */
function linkWatch(b: ReturnType<typeof bench>, client: LinkRequester): LinkWatch {
  return new LinkWatch({
    client,
    ledger: b.ledger,
    alerts: b.alerts,
    outbox: b.outbox.store,
    flush: () => {
      b.outbox.store.retryNow(b.now());
      return b.outbox.pump();
    },
    failures: () => 3,
    timeZone: () => "UTC",
    log: b.log,
    now: b.now,
  });
}

function answer(status: number, data: Record<string, unknown> | null, at: number): WireResponse {
  return {
    status,
    requestId: crypto.randomUUID(),
    attempts: 1,
    envelope: status < 300
      ? {
        status: "ok",
        request_id: crypto.randomUUID(),
        timestamp: new Date(at).toISOString(),
        data,
      }
      : {
        status: "error",
        request_id: crypto.randomUUID(),
        timestamp: new Date(at).toISOString(),
        error: { code: "internal_error", message: "down" },
      },
  };
}

/** Queues an alarm's critical message to the critical group, as the event path does. */
function raiseAlarm(b: ReturnType<typeof bench>, text: string): void {
  b.outbox.enqueue({
    channel: "critical_group",
    text,
    priority: "critical",
    kind: "event_critical",
    template: true,
  });
}

Deno.test("link watch (joi): cut off, joi keeps queueing; back, one summary of delayed and expired messages", async () => {
  const b = bench();
  const link = { up: true, outage: null as null | Record<string, unknown>, acks: [] as unknown[] };
  const w = linkWatch(b, {
    request(_m, _p, body) {
      link.acks.push((body as Record<string, unknown>).ack_outage);
      if (!link.up) return Promise.reject(new Error("no answer: connection timed out"));
      return Promise.resolve(
        answer(200, { joi_outage: link.outage }, b.now() + 1500),
      );
    },
  });
  await w.check();
  assert.equal(w.status().reachable, true);
  assert.equal(w.status().clock?.offset_ms, 1500);
  const cut = b.now();
  link.up = false;
  b.mesh.up = false;
  // during the outage: an alarm and an ordinary reply are queued
  raiseAlarm(b, "ALERT: smoke");
  b.outbox.enqueue({
    channel: OWNER,
    text: "a reply",
    priority: "normal",
    kind: "reply",
    ttlMs: 5 * MIN,
  });
  for (let i = 1; i <= 20; i++) {
    b.clock.now = cut + i * 30 * S;
    await w.check();
    await b.flush();
  }
  assert.equal(w.status().reachable, false);
  assert.equal(w.status().failures, 20);
  assert.deepEqual(b.sent, []);
  // back at 12:10:30; the mesh reports the outage it told the household about
  link.up = true;
  b.mesh.up = true;
  link.outage = { id: "link-mesh-1", since: cut + 20 * S, until: b.now() };
  b.clock.now += 30 * S;
  await w.check();
  await b.flush();
  // delivered at once (the queue is retried when the link returns); the summary
  // waits one check for what was held elsewhere
  assert.match(b.to(CRITICAL)[0]!, /ALERT: smoke$/);
  assert.deepEqual(b.to(OWNER), []);
  b.clock.now += 30 * S;
  await w.check();
  await b.flush();
  const summary =
    "joi is back in touch. It was cut off from 12:00 to 12:10 (10 min). 1 alert was " +
    "delayed and is now delivered. 1 message expired and will not be sent.";
  assert.deepEqual(b.to(OWNER), [summary]);
  assert.equal(b.to(CRITICAL)[1], summary);
  // the next check acknowledges the mesh's outage; a repeat of it is not summarised again
  await w.check();
  await w.check();
  await b.flush();
  assert.equal(link.acks.at(-2), "link-mesh-1");
  assert.equal(b.to(OWNER).length, 1);
  // the mesh forgot it (it saw the ack): joi stops acknowledging
  link.outage = null;
  await w.check();
  await w.check();
  assert.equal(link.acks.at(-1), undefined);
});

Deno.test("link watch (joi): the summary counts the alerts that went out marked delayed, not one sent at once after the return", async () => {
  const b = bench();
  const link = { up: true };
  const w = linkWatch(b, {
    request() {
      if (!link.up) return Promise.reject(new Error("no answer: connection timed out"));
      return Promise.resolve(answer(200, { joi_outage: null }, b.now()));
    },
  });
  await w.check();
  const cut = b.now();
  link.up = false;
  b.mesh.up = false;
  raiseAlarm(b, "ALERT: smoke");
  for (let i = 1; i <= 6; i++) {
    b.clock.now = cut + i * 30 * S;
    await w.check();
    await b.flush();
  }
  // the link is back before joi's next check sees it: a new alarm goes out at once
  b.mesh.up = true;
  b.clock.now += 10 * S;
  raiseAlarm(b, "ALERT: water leak");
  await b.flush();
  assert.deepEqual(b.to(CRITICAL), ["ALERT: water leak"], "sent at once, not marked delayed");
  // joi's next check sees the link back: the held alarm goes, marked delayed; then the summary
  link.up = true;
  b.clock.now += 20 * S;
  await w.check();
  await b.flush();
  assert.match(b.to(CRITICAL)[1] ?? "", /^\[delayed; first raised .*ALERT: smoke$/);
  b.clock.now += 30 * S;
  await w.check();
  await b.flush();
  const summary = b.to(OWNER)[0] ?? "";
  assert.match(summary, /^joi is back in touch\. .* 1 alert was delayed and is now delivered\./);
});

Deno.test("link watch (joi): a joi that was stopped sees nothing itself, and still summarises the mesh's outage", async () => {
  const b = bench();
  const w = linkWatch(b, {
    request: () =>
      Promise.resolve(answer(200, {
        joi_outage: { id: "link-77", since: NOON - 20 * MIN, until: NOON - MIN },
      }, b.now())),
  });
  await w.check();
  await w.check();
  await b.flush();
  assert.deepEqual(b.to(OWNER), [
    "joi is back in touch. It was cut off from 11:40 to 11:59 (19 min). No alert was delayed.",
  ]);
});

// ---- the watches' voice ----

Deno.test("watch alerts: at night a non-safety message waits for the end of quiet hours, across a restart; safety goes at once", async () => {
  const dir = await Deno.makeTempDir({ prefix: "joi-watch-" });
  try {
    const { openDb } = await import("../../../../services/common/db.ts");
    const night = Date.UTC(2026, 2, 4, 23, 30, 0); // Wednesday 23:30 UTC: quiet until 07:00
    const clock = { now: night };
    const db = openDb(`${dir}/joi.db`);
    const b = bench({ db, clock });
    const model = {
      watch: "model",
      episode: "model-1",
      phase: "alert",
      safety: false,
      to: "owner" as const,
      text: "model down",
    };
    assert.equal(b.alerts.send(model), "queued");
    assert.equal(b.alerts.send({ ...model, text: "again" }), "duplicate");
    assert.equal(
      b.alerts.send({
        watch: "house",
        episode: "house-1",
        phase: "alert",
        safety: true,
        to: "critical",
        text: "house silent",
      }),
      "queued",
    );
    await b.flush();
    assert.deepEqual(b.sent.map((m) => m.content.text), ["house silent"]);
    // joi restarts at 03:00 over the same database
    db.close();
    clock.now = Date.UTC(2026, 2, 5, 3, 0, 0);
    const b2 = bench({ db: openDb(`${dir}/joi.db`), clock });
    assert.equal(b2.alerts.send(model), "duplicate");
    await b2.flush();
    assert.equal(b2.sent.length, 0);
    clock.now = Date.UTC(2026, 2, 5, 7, 0, 0);
    await b2.flush();
    assert.deepEqual(b2.sent.map((m) => m.content.text), ["model down"]);
    b2.db.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("watch alerts: more than alerts_per_hour non-safety messages wait for the next hour; none is lost", async () => {
  const b = bench({ edit: (p) => (p.watch.alerts_per_hour = 2) });
  for (let i = 0; i < 5; i++) {
    b.alerts.send({
      watch: `w${i}`,
      episode: "1",
      phase: "alert",
      safety: false,
      to: "owner",
      text: `m${i}`,
    });
  }
  await b.flush();
  assert.deepEqual(b.to(OWNER), ["m0", "m1"]);
  b.clock.now += 60 * MIN;
  await b.flush();
  assert.deepEqual(b.to(OWNER), ["m0", "m1", "m2", "m3"]);
  b.clock.now += 60 * MIN;
  await b.flush();
  assert.deepEqual(b.to(OWNER), ["m0", "m1", "m2", "m3", "m4"]);
});

Deno.test("link watch (joi): what joi saw and what the mesh told of one outage make one summary, in either order", async () => {
  for (const order of ["joi first", "mesh first"] as const) {
    const b = bench();
    const state = { up: true, outage: null as null | Record<string, unknown> };
    const w = linkWatch(b, {
      request() {
        if (!state.up) return Promise.reject(new Error("no answer: timed out"));
        return Promise.resolve(answer(200, { joi_outage: state.outage }, b.now()));
      },
    });
    const step = async (n = 1) => {
      for (let i = 0; i < n; i++) {
        b.clock.now += S;
        await w.check();
      }
    };
    // joi restarts slowly after the mesh told the household: its own first checks fail
    const meshOutage = { id: "link-m", since: NOON - 20 * S, until: NOON - 2 * S };
    if (order === "mesh first") state.outage = meshOutage;
    state.up = false;
    await step(4); // joi's own episode: three failures
    state.up = true;
    await step(); // back: joi's episode ends
    state.outage = meshOutage; // the mesh reports its outage (at once, or a check later)
    await step(5);
    state.outage = null;
    await step(3);
    await b.flush();
    const told = b.to(OWNER).filter((t) => t.startsWith("joi is back in touch"));
    assert.equal(told.length, 1, `${order}: ${told.join("\n")}`);
    assert.match(told[0]!, /^joi is back in touch\. It was cut off from 11:59 to 12:00 /, order);
  }
});
