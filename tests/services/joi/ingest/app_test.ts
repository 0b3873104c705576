import assert from "node:assert/strict";
import { startHarness, stateEvent } from "../harness.ts";

const SRC = "openhab.homelab.example";
const base = (at: number) => ({
  event_id: crypto.randomUUID(),
  timestamp: new Date(at).toISOString(),
  source: SRC,
});

Deno.test("the five contract endpoints accept their shapes and normalize them", async () => {
  const h = await startHarness();
  try {
    const at = h.now();
    const presence = await h.post("/api/v1/openhab/presence", {
      ...base(at),
      event_type: "presence_changed",
      data: { entity: "owner_phone", state: "arriving", location: "Driveway", changed_at: at },
    });
    assert.equal(presence.status, 200, JSON.stringify(presence.json));
    assert.equal(presence.json.status, "ok");
    assert.deepEqual(
      { received: (presence.json.data as Record<string, unknown>).received },
      { received: true },
    );
    const sensors = await h.post("/api/v1/openhab/sensors", {
      ...base(at),
      event_type: "sensor_batch",
      data: {
        readings: [
          {
            sensor_id: "Living_Temperature",
            type: "temperature",
            value: 21.5,
            unit: "°C",
            measured_at: at,
          },
          {
            sensor_id: "Living_Temperature",
            type: "temperature",
            value: 22.5,
            unit: "°C",
            measured_at: at,
          },
          { sensor_id: "Living_Humidity", type: "humidity", value: 45, unit: "%", measured_at: at },
          { sensor_id: "Wifi_Password", type: "string", value: "hunter2", measured_at: at },
        ],
      },
    });
    assert.equal(sensors.status, 200, JSON.stringify(sensors.json));
    assert.equal((sensors.json.data as Record<string, number>).skipped, 1, "blocked item skipped");
    const weather = await h.post("/api/v1/openhab/weather", {
      ...base(at),
      event_type: "weather_update",
      data: {
        current: {
          condition: "cloudy",
          temperature: 14,
          humidity: 70,
          wind_speed: 12,
          wind_unit: "km/h",
        },
        forecast: [{
          date: "2026-03-31",
          high: 16,
          low: 8,
          condition: "rain",
          precipitation_chance: 80,
        }],
        alerts: [],
      },
    });
    assert.equal(weather.status, 200, JSON.stringify(weather.json));
    const alert = await h.post("/api/v1/openhab/alert", {
      ...base(at),
      event_type: "alert",
      priority: "low",
      data: { alert_type: "maintenance", title: "Filter", message: "Replace the HVAC filter" },
    });
    assert.equal(alert.status, 200);
    const state = await h.post("/api/v1/openhab/state", stateEvent("Hall_Light", "ON", at));
    assert.equal(state.status, 200);
    // readings are batched: last, min, max per sensor
    h.services.tick(at + h.policy.ingest.batch_minutes * 60_000);
    const ctx = h.services.context as unknown as {
      latest(n: number): { kind: string; summary: string }[];
    };
    const batch = ctx.latest(50).find((c) =>
      c.kind === "reading_batch" && c.summary.startsWith("Living_Temperature")
    );
    assert.equal(
      batch?.summary,
      "Living_Temperature (temperature): last 22.5 °C, min 21.5 °C, max 22.5 °C over 2 readings",
    );
    assert.ok(!JSON.stringify(ctx.latest(100)).includes("hunter2"));
    assert.equal(h.services.pipeline.weather?.forecast[0]?.condition, "rain");
    assert.equal(h.mesh.received.length, 0, "nothing here is critical");
  } finally {
    await h.close();
  }
});

Deno.test("openHAB bus events: single and relay batches, with the relay's receive time", async () => {
  const h = await startHarness();
  try {
    const single = await h.post("/api/v1/openhab/events", {
      topic: "openhab/items/Kitchen_Smoke/statechanged",
      payload: JSON.stringify({ type: "OnOff", value: "ON", oldType: "OnOff", oldValue: "OFF" }),
      type: "ItemStateChangedEvent",
    });
    assert.equal(single.status, 200, JSON.stringify(single.json));
    await h.settle();
    assert.equal(h.mesh.received.length, 1, "a smoke alarm straight off openHAB's bus");
    const relayAt = h.now() - 2_000;
    const batch = await h.post("/api/v1/openhab/events", {
      ...base(h.now()),
      event_type: "openhab_events",
      events: [
        {
          topic: "openhab/items/Hall_Temperature/statechanged",
          payload: JSON.stringify({ type: "Quantity", value: "20.5 °C" }),
          type: "ItemStateChangedEvent",
          received_at: relayAt,
        },
        {
          topic: "openhab/things/zigbee:coordinator:1/statuschanged",
          payload: JSON.stringify([{ status: "OFFLINE", statusDetail: "NONE" }, {
            status: "ONLINE",
            statusDetail: "NONE",
          }]),
          type: "ThingStatusInfoChangedEvent",
        },
        {
          topic: "openhab/items/Router_Secret/state",
          payload: JSON.stringify({ type: "String", value: "x" }),
          type: "ItemStateEvent",
        },
      ],
    });
    assert.equal(batch.status, 200, JSON.stringify(batch.json));
    assert.equal((batch.json.data as Record<string, number>).events, 2);
    assert.equal((batch.json.data as Record<string, number>).skipped, 1);
    const batched = h.services.pipeline.batcher.flush(h.now(), true);
    const hall = batched.find((b) => b.device === "Hall_Temperature");
    assert.equal(hall?.at, relayAt, "quantities are batched, observed at the relay's receive time");
    assert.match(hall!.summary, /last 20\.5 °C/);
    assert.equal(h.services.guard.device("Hall_Temperature"), undefined, "not a flood-guard state");
    assert.equal(h.services.guard.device("zigbee:coordinator:1")!.state, "OFFLINE");
    assert.equal(h.services.guard.device("Router_Secret"), undefined, "blocked items never stored");
  } finally {
    await h.close();
  }
});

Deno.test("malformed bodies get 400 naming the field", async () => {
  const h = await startHarness();
  try {
    const at = h.now();
    const cases: [string, unknown, RegExp][] = [
      ["/api/v1/openhab/presence", {
        ...base(at),
        event_type: "p",
        data: { entity: "a", state: "upstairs", changed_at: at },
      }, /^data\.state: /],
      ["/api/v1/openhab/sensors", {
        ...base(at),
        event_type: "s",
        data: {
          readings: [{ sensor_id: "t", type: "temperature", value: 1, measured_at: "yesterday" }],
        },
      }, /^data\.readings\[0\]\.measured_at: /],
      ["/api/v1/openhab/sensors", {
        ...base(at),
        event_type: "s",
        data: {
          readings: Array.from(
            { length: 51 },
            () => ({ sensor_id: "t", type: "t", value: 1, measured_at: at }),
          ),
        },
      }, /^data\.readings: at most 50 readings/],
      ["/api/v1/openhab/alert", {
        ...base(at),
        event_type: "a",
        priority: "urgent",
        data: { alert_type: "smoke", title: "t", message: "m" },
      }, /^priority: /],
      ["/api/v1/openhab/state", {
        ...base(at),
        event_type: "s",
        data: { item: "x", previous_state: null, new_state: "ON", changed_by: "hacker" },
      }, /^data\.changed_by: /],
      ["/api/v1/openhab/state", {
        ...base(at),
        event_type: "s",
        extra: 1,
        data: { item: "x", previous_state: null, new_state: "ON", changed_by: "api" },
      }, /unknown field\(s\) "extra"/],
      ["/api/v1/openhab/state", {
        ...base(at),
        event_id: "not-a-uuid",
        event_type: "s",
        data: { item: "x", previous_state: null, new_state: "ON", changed_by: "api" },
      }, /^event_id: /],
      ["/api/v1/openhab/weather", {
        ...base(at),
        event_type: "w",
        data: {
          current: {
            condition: "x",
            temperature: "warm",
            humidity: 1,
            wind_speed: 1,
            wind_unit: "k",
          },
          forecast: [],
          alerts: [],
        },
      }, /^data\.current\.temperature: /],
      ["/api/v1/openhab/events", {
        topic: "openhab/items/X/state",
        payload: "{",
        type: "ItemStateEvent",
      }, /^\(body\)\.payload: /],
      ["/api/v1/openhab/state", "{broken json", /JSON/i],
    ];
    for (const [path, body, re] of cases) {
      const r = await h.post(path, body);
      assert.equal(r.status, 400, `${path} ${JSON.stringify(r.json)}`);
      const err = r.json.error as { code: string; message: string };
      assert.equal(err.code, "invalid_request");
      assert.match(err.message, re);
    }
  } finally {
    await h.close();
  }
});

Deno.test("oversized 413, wrong type 415, unknown source 403, repeated event_id 409", async () => {
  const h = await startHarness();
  try {
    const at = h.now();
    const big = stateEvent("x", "y".repeat(200), at);
    (big.data as Record<string, unknown>).previous_state = "z".repeat(11_000);
    assert.equal((await h.post("/api/v1/openhab/state", big)).status, 413);
    const res = await fetch(`${h.url}/api/v1/openhab/state`, {
      method: "POST",
      headers: { "content-type": "text/plain" },
      body: JSON.stringify(stateEvent("x", "ON", at)),
    });
    assert.equal(res.status, 415);
    await res.body?.cancel();
    const foreign = { ...stateEvent("x", "ON", at), source: "evil.example" };
    const f = await h.post("/api/v1/openhab/state", foreign);
    assert.equal(f.status, 403);
    assert.equal((f.json.error as { code: string }).code, "forbidden");
    const ev = stateEvent("Hall_Light", "ON", at);
    assert.equal((await h.post("/api/v1/openhab/state", ev)).status, 200);
    const again = await h.post("/api/v1/openhab/state", ev);
    assert.equal(again.status, 409);
    assert.equal((again.json.error as { code: string }).code, "replay_detected");
    h.clock.t += 31 * 60_000;
    assert.equal(
      (await h.post("/api/v1/openhab/state", ev)).status,
      200,
      "after the 30 min window",
    );
    assert.ok(h.logs.some((l) => l.level === "security" && l.event === "ingest_replay"));
  } finally {
    await h.close();
  }
});

Deno.test("a source address that is not an allowed openHAB node gets 403 before the body is read", async () => {
  const h = await startHarness({
    patch: (p) => {
      p.ingest.allowed_sources = ["openhab.homelab.example", "10.42.0.20"];
    },
  });
  try {
    const r = await h.post("/api/v1/openhab/state", stateEvent("Kitchen_Smoke", "ON", h.now()));
    assert.equal(r.status, 403);
    assert.equal(h.services.guard.device("Kitchen_Smoke"), undefined);
    const health = await fetch(`${h.url}/health`);
    assert.equal(health.status, 200);
    const body = await health.json();
    assert.equal(body.data.service, "joi-ingest");
    assert.equal(body.data.mesh_breaker, "closed");
  } finally {
    await h.close();
  }
});

Deno.test("scheduled forecast summaries come from the latest weather event, once per slot", async () => {
  // 06:59 in the household's zone (policies/policy.yaml: Europe/Bratislava, CEST = UTC+2)
  const sixFiftyNine = Date.UTC(2026, 2, 31, 4, 59, 0);
  const h = await startHarness({ startAt: sixFiftyNine });
  try {
    const r = await h.post("/api/v1/openhab/weather", {
      ...base(h.now()),
      event_type: "weather_update",
      data: {
        current: {
          condition: "fog",
          temperature: 6,
          humidity: 95,
          wind_speed: 3,
          wind_unit: "km/h",
        },
        forecast: [{
          date: "2026-03-31",
          high: 15,
          low: 5,
          condition: "sunny",
          precipitation_chance: 5,
        }],
        alerts: [],
      },
    });
    assert.equal(r.status, 200);
    const ctx = h.services.context as unknown as {
      latest(n: number): { kind: string; summary: string }[];
    };
    const summaries = () => ctx.latest(100).filter((c) => c.kind === "weather_summary");
    h.services.tick(sixFiftyNine + 30_000);
    assert.equal(summaries().length, 0);
    h.services.tick(sixFiftyNine + 60_000);
    h.services.tick(sixFiftyNine + 61_000);
    assert.equal(summaries().length, 1, "07:00 fires once");
    assert.match(
      summaries()[0]!.summary,
      /^Forecast at 07:00 \(weather from today at 06:59\): now fog, 6 °C, humidity 95%\. today: sunny, 5 to 15 °C, rain 5%$/,
    );
  } finally {
    await h.close();
  }
});
