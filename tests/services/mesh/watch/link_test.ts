/**
 * The mesh's end of the link watch with an injected clock: joi stops
 * answering (or its checks stop arriving) -> after alert_after_failures checks
 * the owner's DM and the critical group are told once; the outage is handed to
 * joi for its summary until joi acknowledges it; an alert that could not be
 * sent is retried, also after a restart.
 */
import assert from "node:assert/strict";
import { openDb } from "../../../../services/common/db.ts";
import { createLogger } from "../../../../services/common/log.ts";
import { loadPolicyFile } from "../../../../services/common/policy/mod.ts";
import { WatchLedger } from "../../../../services/common/watch/ledger.ts";
import type { WireResponse } from "../../../../services/common/wire/client.ts";
import { hashIdentities, IdentityStore, IdentityView } from "../../../../services/mesh/identity.ts";
import type { SignalTransport } from "../../../../services/mesh/signal/transport.ts";
import { MeshAlerts } from "../../../../services/mesh/watch/alerts.ts";
import { MeshLinkWatch } from "../../../../services/mesh/watch/link.ts";
import { MeshRefusalWatch } from "../../../../services/mesh/watch/clock.ts";
import { RefusalBursts } from "../../../../services/common/watch/refusals.ts";
import { GROUPS, OWNER } from "../harness.ts";

const S = 1000;
const NOON = Date.UTC(2026, 2, 4, 12, 0, 0);

/** A signal-cli that records `send` and can be made to fail. */
function signal() {
  const sends: Record<string, unknown>[] = [];
  const state = { up: true };
  const t: SignalTransport = {
    start() {},
    close: () => Promise.resolve(),
    request<T>(method: string, params?: Record<string, unknown>): Promise<T> {
      if (!state.up) return Promise.reject(new Error("signal-cli is not connected"));
      if (method === "send") sends.push(params ?? {});
      return Promise.resolve({ timestamp: Date.now(), results: [{ type: "SUCCESS" }] } as T);
    },
    onNotification() {},
    onConnect() {},
    status: () => ({
      state: "connected",
      version: "0.13.4",
      connectedSince: 0,
      lastError: null,
      reconnects: 0,
    }),
  };
  return { t, sends, state };
}

function rig(db = openDb(":memory:"), clock = { now: NOON }) {
  const identities = loadPolicyFile("identities", "./policies/identities.yaml");
  const store = new IdentityStore(new IdentityView(identities, hashIdentities(identities)));
  const sig = signal();
  const joi = { up: true, status: 200 };
  const now = () => clock.now;
  const log = createLogger("mesh", { quiet: true });
  const ledger = new WatchLedger(db);
  const alerts = new MeshAlerts({
    ledger,
    identities: store,
    transport: sig.t,
    owner: "owner",
    criticalChannel: "critical_group",
    log,
    now,
  });
  const watch = new MeshLinkWatch({
    client: {
      request(): Promise<WireResponse> {
        if (!joi.up) {
          return Promise.reject(new Error("no answer after 1 tries (Connection refused)"));
        }
        return Promise.resolve({
          status: joi.status,
          requestId: crypto.randomUUID(),
          attempts: 1,
          envelope: {
            status: "ok",
            request_id: crypto.randomUUID(),
            timestamp: new Date(clock.now - 2 * S).toISOString(),
            data: { time: clock.now },
          },
        });
      },
    },
    ledger,
    alerts,
    intervalMs: 30 * S,
    failures: 3,
    timeZone: "UTC",
    facts: () => ({ cert: null }),
    log,
    now,
  });
  return { watch, alerts, sig, joi, clock, db };
}

Deno.test("mesh link watch: joi stopped -> owner DM and critical group told after 3 failed checks, once", async () => {
  const r = rig();
  // joi checks in every 30 s and answers
  for (let i = 0; i < 3; i++) {
    r.clock.now += 30 * S;
    r.watch.answer({});
    await r.watch.check();
  }
  assert.equal(r.sig.sends.length, 0);
  assert.equal((r.watch.status().joi_clock as { offset_ms: number }).offset_ms, -2000);
  const stopped = r.clock.now + S;
  r.joi.up = false;
  for (let i = 1; i <= 2; i++) {
    r.clock.now = stopped + i * 30 * S;
    await r.watch.check();
  }
  await r.alerts.pump();
  assert.equal(r.sig.sends.length, 0);
  r.clock.now = stopped + 90 * S; // the third failed check: within 3 x check_interval_seconds
  await r.watch.check();
  await r.alerts.pump();
  for (let i = 4; i <= 8; i++) {
    r.clock.now = stopped + i * 30 * S;
    await r.watch.check();
  }
  await r.alerts.pump();
  assert.equal(r.sig.sends.length, 2);
  const [dm, group] = r.sig.sends;
  assert.deepEqual(dm!.recipient, [OWNER.number]);
  assert.equal(group!.groupId, GROUPS.critical_group);
  assert.match(
    String(dm!.message),
    /^joi is unreachable since 12:02: joi does not answer \(no answer after 1 tries \(Connection refused\)\)\. Alarms from the house and joi's replies cannot reach you until it is back; they stay queued\. Check the joi VM \(systemctl status joi nebula\)\.$/,
  );
  assert.equal(dm!.message, group!.message);
  assert.equal(r.watch.status().alerted, true);
  // joi is back: its check arrives, the episode ends at the mesh's next check, and the
  // outage goes to joi in the next answers until joi acknowledges it
  r.joi.up = true;
  r.clock.now += 30 * S;
  assert.equal(r.watch.answer({}).joi_outage, null);
  await r.watch.check();
  const told = r.watch.answer({}).joi_outage as { id: string; since: number; until: number };
  assert.equal(told.since, stopped + 30 * S);
  assert.equal(told.until, r.clock.now);
  assert.deepEqual(r.watch.answer({ ack_outage: "someone-else" }).joi_outage, told);
  assert.equal(r.watch.answer({ ack_outage: told.id }).joi_outage, null);
  assert.equal(r.watch.answer({}).joi_outage, null);
  assert.equal(r.sig.sends.length, 2);
});

Deno.test("mesh link watch: joi answers but its own checks stopped arriving (joi cannot reach the mesh) -> told", async () => {
  const r = rig();
  r.watch.answer({});
  for (let i = 1; i <= 6; i++) {
    r.clock.now = NOON + i * 30 * S;
    await r.watch.check();
  }
  await r.alerts.pump();
  assert.equal(r.sig.sends.length, 2);
  assert.match(
    String(r.sig.sends[0]!.message),
    /joi answers, but its own checks no longer reach the mesh/,
  );
});

Deno.test("mesh link watch: an alert signal-cli could not take is retried, also after a restart", async () => {
  const dir = await Deno.makeTempDir({ prefix: "joi-meshwatch-" });
  try {
    const clock = { now: NOON };
    const r = rig(openDb(`${dir}/mesh.db`), clock);
    r.sig.state.up = false;
    r.joi.up = false;
    for (let i = 1; i <= 3; i++) {
      clock.now = NOON + i * 30 * S;
      await r.watch.check();
    }
    await r.alerts.pump();
    assert.equal(r.sig.sends.length, 0);
    assert.equal(r.alerts.pending(), 2);
    r.db.close();
    // the mesh restarts; signal-cli is back
    const again = rig(openDb(`${dir}/mesh.db`), clock);
    again.joi.up = false;
    clock.now += 30 * S;
    await again.watch.check(); // the episode is still open: not told twice
    await again.alerts.pump();
    assert.equal(again.sig.sends.length, 2);
    assert.equal(again.alerts.pending(), 0);
    again.db.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("mesh clock watch: joi's requests refused for their time are told to both, once, and their end", async () => {
  const r = rig();
  const refusals = new RefusalBursts({ count: () => 3, windowMs: () => 10 * 60_000 });
  const w = new MeshRefusalWatch({
    ledger: new WatchLedger(r.db),
    alerts: r.alerts,
    refusals,
    windowMs: 10 * 60_000,
    log: createLogger("mesh", { quiet: true }),
    now: () => r.clock.now,
  });
  for (let i = 0; i < 5; i++) {
    r.clock.now += 30 * S;
    refusals.record("joi", 420_000, r.clock.now);
  }
  await r.alerts.pump();
  assert.equal(r.sig.sends.length, 2);
  assert.match(
    String(r.sig.sends[0]!.message),
    /^The mesh refused 3 requests from joi in the last 10 min because their time was 7 min behind the mesh's clock: joi's alerts and replies are not getting through\./,
  );
  assert.equal(r.sig.sends[1]!.groupId, GROUPS.critical_group);
  r.clock.now += 5 * 60_000;
  w.tick(r.clock.now); // still within the window of the last refusal
  r.clock.now += 6 * 60_000;
  w.tick(r.clock.now);
  w.tick(r.clock.now);
  await r.alerts.pump();
  assert.equal(r.sig.sends.length, 4);
  assert.match(String(r.sig.sends[2]!.message), /^joi's requests get through again/);
});
