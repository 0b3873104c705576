import assert from "node:assert/strict";
import { materialize, parseRecording, replay } from "../../scripts/replay.ts";
import { criticalTexts, directTexts, startHarness } from "../services/joi/harness.ts";
import { denoRunArgs, localLayout, programSpec } from "../../services/common/permissions/mod.ts";

const DAY = "scripts/data/household_day.jsonl";

Deno.test("the recorded day parses, fits the limits and tells a household's story", async () => {
  const events = parseRecording(await Deno.readTextFile(DAY), DAY);
  assert.ok(events.length > 300);
  const by = (ep: string) => events.filter((e) => e.endpoint === ep);
  for (const ep of ["presence", "sensors", "weather", "alert", "state", "events"]) {
    assert.ok(by(ep).length > 0, `${ep} present`);
  }
  for (const e of events) {
    assert.ok(
      new TextEncoder().encode(JSON.stringify(e.body)).length <= 10_240,
      `${e.at} under 10 KiB`,
    );
  }
  const readings = by("sensors").flatMap((e) => (e.body.data as { readings: unknown[] }).readings);
  assert.ok(readings.length > 10_000, "temperature and humidity every few seconds");
  assert.ok(
    by("sensors").every((e) => (e.body.data as { readings: unknown[] }).readings.length <= 50),
  );
  assert.throws(
    () => parseRecording('{"at":"25:00:00","endpoint":"state","body":{}}', "x.jsonl"),
    /x\.jsonl:1: "25:00:00"/,
  );
  assert.throws(
    () => parseRecording('{"at":"01:00:00","endpoint":"bogus","body":{}}', "x.jsonl"),
    /x\.jsonl:1: "endpoint"/,
  );
});

Deno.test("materialize: fresh event ids and times relative to now, scaled by speed", () => {
  const now = Date.UTC(2026, 2, 30, 12);
  const b = materialize(
    {
      at: "10:00:00",
      endpoint: "sensors",
      body: {
        event_id: "x",
        timestamp: 0,
        data: { readings: [{ measured_at: "09:59:00" }], expires_at: "+4h" },
      },
    },
    now,
    60,
  );
  assert.notEqual(b.event_id, "x");
  assert.equal(b.timestamp, new Date(now).toISOString());
  const d = b.data as { readings: { measured_at: string }[]; expires_at: string };
  assert.equal(d.readings[0]!.measured_at, new Date(now - 1000).toISOString());
  assert.equal(d.expires_at, new Date(now + 4 * 60_000).toISOString());
});

Deno.test("replaying the recorded day into joi: storm and smoke alarms, one flapping warning, limits at work", async () => {
  const h = await startHarness();
  try {
    const events = parseRecording(await Deno.readTextFile(DAY), DAY);
    const tally = await replay({
      events,
      joiUrl: h.url,
      speed: 1e9,
      sleep: () => Promise.resolve(),
    });
    await h.settle();
    assert.equal(tally.sensors![200], h.policy.rate_limits.openhab.sensors);
    assert.equal(tally.sensors![429], 288 - h.policy.rate_limits.openhab.sensors);
    assert.equal(tally.presence![200], 8);
    assert.equal(tally.alert![200], 1);
    const crit = criticalTexts(h.mesh);
    assert.ok(
      crit.some((t) => t.startsWith("ALERT: Storm")),
      "storm warning on the critical group",
    );
    assert.ok(
      crit.some((t) => t.startsWith("ALERT: Smoke by Kitchen_Smoke")),
      "smoke alarm on the critical group",
    );
    assert.equal(crit.length, 2);
    const direct = directTexts(h.mesh);
    assert.equal(
      direct.filter((t) => t.includes("FrontDoor_Contact")).length,
      1,
      "one malfunction warning",
    );
    assert.equal(h.services.guard.device("owner_phone")?.state, "home");
  } finally {
    await h.close();
  }
});

Deno.test("deno task devices shows flags, with its real read-only permissions", async () => {
  const h = await startHarness();
  try {
    await h.post("/api/v1/openhab/state", {
      event_id: crypto.randomUUID(),
      event_type: "s",
      timestamp: new Date(h.now()).toISOString(),
      source: "openhab.homelab.example",
      data: {
        item: "Kitchen_Smoke",
        previous_state: "OFF",
        new_state: "ON",
        changed_by: "automation",
      },
    });
    await h.settle();
    const spec = programSpec("devices", { ...localLayout(), joiStateDir: h.dir });
    const out = await new Deno.Command("deno", {
      args: denoRunArgs(spec),
      stdout: "piped",
      stderr: "piped",
    })
      .output();
    const text = new TextDecoder().decode(out.stdout);
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    assert.match(text, /^DEVICE\s+TYPE\s+STATE/);
    assert.match(text, /Kitchen_Smoke\s+smoke\s+ON\s+0\s+\S+ min\s+ALERTING 1/);
  } finally {
    await h.close();
  }
});
