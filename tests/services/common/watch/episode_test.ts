import assert from "node:assert/strict";
import { openDb } from "../../../../services/common/db.ts";
import { Episode } from "../../../../services/common/watch/episode.ts";
import { WatchLedger } from "../../../../services/common/watch/ledger.ts";
import { AlertGate } from "../../../../services/common/watch/alert_gate.ts";

const MIN = 60_000;

Deno.test("episode: told at the count threshold, once per episode, and its end once", () => {
  const ledger = new WatchLedger(openDb(":memory:"));
  const e = new Episode(ledger, "link", { count: 3 });
  const t0 = 1_000_000;
  assert.equal(e.observe(true, t0, "refused"), null);
  assert.equal(e.observe(true, t0 + 30_000, "refused"), null);
  const started = e.observe(true, t0 + 60_000, "refused");
  assert.deepEqual(started, {
    kind: "started",
    id: `link-${t0}`,
    since: t0,
    count: 3,
    detail: "refused",
  });
  // still bad: nothing more to tell
  assert.equal(e.observe(true, t0 + 90_000, "refused"), null);
  assert.equal(e.observe(true, t0 + 120_000, "timeout"), null);
  const ended = e.observe(false, t0 + 150_000);
  assert.deepEqual(ended, {
    kind: "ended",
    id: `link-${t0}`,
    since: t0,
    until: t0 + 150_000,
    detail: "timeout",
  });
  assert.equal(e.observe(false, t0 + 180_000), null);
});

Deno.test("episode: a stretch that ends before the threshold is never told", () => {
  const ledger = new WatchLedger(openDb(":memory:"));
  const e = new Episode(ledger, "link", { count: 3 });
  assert.equal(e.observe(true, 1), null);
  assert.equal(e.observe(true, 2), null);
  assert.equal(e.observe(false, 3), null);
  // the count starts again
  assert.equal(e.observe(true, 4), null);
  assert.equal(e.observe(true, 5), null);
  assert.equal(e.observe(true, 6)?.kind, "started");
});

Deno.test("episode: a duration threshold counts from the first bad observation or a given since", () => {
  const ledger = new WatchLedger(openDb(":memory:"));
  const e = new Episode(ledger, "model", { durationMs: 10 * MIN });
  const t0 = 5_000_000;
  assert.equal(e.observe(true, t0), null);
  assert.equal(e.observe(true, t0 + 9 * MIN), null);
  assert.equal(e.observe(true, t0 + 10 * MIN)?.kind, "started");
  const silent = new Episode(ledger, "house");
  // observed silent now, but silent since the last heartbeat 6 minutes ago
  const t = silent.observe(true, t0, null, t0 - 6 * MIN);
  assert.equal(t?.kind, "started");
  assert.equal(t?.kind === "started" ? t.since : 0, t0 - 6 * MIN);
});

Deno.test("episode: a restart neither forgets an open episode nor tells it again", () => {
  const db = openDb(":memory:");
  const first = new Episode(new WatchLedger(db), "house");
  assert.equal(first.observe(true, 100)?.kind, "started");
  // a new process over the same database
  const again = new Episode(new WatchLedger(db), "house");
  assert.equal(again.observe(true, 200), null);
  assert.deepEqual(again.open, { id: "house-100", since: 100 });
  assert.equal(again.observe(false, 300)?.kind, "ended");
  assert.equal(new Episode(new WatchLedger(db), "house").observe(false, 400), null);
});

const HOUR = 3_600_000;

Deno.test("alert gate: once per (watch, episode, phase), across restarts", () => {
  const db = openDb(":memory:");
  const gate = new AlertGate({ ledger: new WatchLedger(db), perHour: () => 10 });
  const a = { watch: "model", episode: "model-1", phase: "alert", safety: false };
  assert.deepEqual(gate.decide(a, 1000), { send: true, at: 1000 });
  assert.deepEqual(gate.decide(a, 2000), { send: false, reason: "duplicate" });
  const restarted = new AlertGate({ ledger: new WatchLedger(db), perHour: () => 10 });
  assert.deepEqual(restarted.decide(a, 3000), { send: false, reason: "duplicate" });
  assert.deepEqual(restarted.decide({ ...a, phase: "recovered" }, 3000), { send: true, at: 3000 });
});

Deno.test("alert gate: the hourly cap defers (never drops) what is not safety; safety goes at once", () => {
  const gate = new AlertGate({ ledger: new WatchLedger(openDb(":memory:")), perHour: () => 3 });
  const t0 = 10 * HOUR;
  const at = (i: number, safety = false) =>
    gate.decide({ watch: "w", episode: `e${i}`, phase: "alert", safety }, t0 + i);
  assert.deepEqual([at(0), at(1), at(2)].map((v) => v.send && v.at), [t0, t0 + 1, t0 + 2]);
  // the 4th waits until the first of the hour has aged out, the 5th after the 2nd...
  assert.deepEqual(at(3), { send: true, at: t0 + HOUR });
  assert.deepEqual(at(4), { send: true, at: t0 + 1 + HOUR });
  // a safety alert ignores the cap
  assert.deepEqual(at(5, true), { send: true, at: t0 + 5 });
  // first in, first out: a later one never overtakes a waiting one
  assert.deepEqual(at(6), { send: true, at: t0 + 2 + HOUR });
});

Deno.test("alert gate: quiet hours defer what is not safety to their end", () => {
  const quietEnd = 7 * HOUR;
  const gate = new AlertGate({
    ledger: new WatchLedger(openDb(":memory:")),
    perHour: () => 10,
    quietUntil: (t) => (t % (24 * HOUR) < 7 * HOUR ? t - (t % (24 * HOUR)) + quietEnd : null),
  });
  const night = 3 * HOUR;
  assert.deepEqual(gate.decide({ watch: "m", episode: "1", phase: "a", safety: false }, night), {
    send: true,
    at: quietEnd,
  });
  assert.deepEqual(gate.decide({ watch: "h", episode: "1", phase: "a", safety: true }, night), {
    send: true,
    at: night,
  });
  assert.deepEqual(gate.decide({ watch: "m", episode: "2", phase: "a", safety: false }, 9 * HOUR), {
    send: true,
    at: 9 * HOUR,
  });
});
