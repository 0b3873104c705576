/**
 * Fuzz: the parsers of outside input that are plain functions — the SSE
 * reader (openHAB's event stream), the signal-cli envelope parser, each
 * ingest normaliser (openHAB bus events and values), the retrieve query
 * parser and the knowledge markdown scanner. Generated and mutated real
 * shapes; property: a result or the parser's own refusal, never a crash.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { IngestError } from "../../services/joi/ingest/errors.ts";
import { compileItemFilter } from "../../services/joi/ingest/items.ts";
import { decodeValue, normalizeBusEvent } from "../../services/joi/ingest/openhab_events.ts";
import {
  normalizeAlert,
  normalizePresence,
  normalizeSensors,
  normalizeState,
  normalizeWeather,
} from "../../services/joi/ingest/normalize.ts";
import { endpointSchemas } from "../../services/joi/ingest/schemas.ts";
import { parseDocument, renderDocument } from "../../services/joi/knowledge/markdown.ts";
import { parseNotification } from "../../services/mesh/signal/envelope.ts";
import { parseSse } from "../../services/openhab_relay/sse.ts";
import {
  canonicalQueryJson,
  parseQuery,
  QueryError,
  validateQuery,
} from "../../services/joi/knowledge/retrieve_protocol.ts";
import {
  check,
  checkAsync,
  hostileBytes,
  isCrash,
  mutated,
  mutateJson,
  nastyString,
} from "./_fuzz.ts";

/** Splits `bytes` at random points: how a network delivers a stream. */
const chunked = (bytes: Uint8Array, cuts: number[]) => {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let at = 0;
  for (const p of points) {
    out.push(bytes.subarray(at, p));
    at = p;
  }
  out.push(bytes.subarray(at));
  return out;
};

const SSE_REAL = [
  'event: message\ndata: {"topic":"openhab/items/Smoke/statechanged","payload":"{\\"type\\":\\"OnOff\\",\\"value\\":\\"ON\\",\\"oldType\\":\\"OnOff\\",\\"oldValue\\":\\"OFF\\"}","type":"ItemStateChangedEvent"}\n\n',
  'event: alive\ndata: {"type":"ALIVE","interval":10}\n\n',
  ": comment\nid: 7\ndata: a\ndata: b\n\n",
].join("");

Deno.test("fuzz: SSE reader", async () => {
  const enc = new TextEncoder();
  const input = fc.oneof(
    mutated(SSE_REAL).map((t) => enc.encode(t)),
    hostileBytes,
    fc.array(fc.oneof(nastyString, fc.constantFrom("data: ", "event: ", "\n", "\r", "\r\n", ":")))
      .map((p) => enc.encode(p.join(""))),
  );
  await checkAsync(
    "SSE reader",
    fc.tuple(input, fc.array(fc.nat(), { maxLength: 8 }), fc.constantFrom(64, 1024, 65_536)),
    async ([bytes, cuts, maxLine]) => {
      // whatever came before, an event after a blank line still arrives: no line kills the stream
      const tail = enc.encode("\n\ndata: SENTINEL\n\n");
      const all = new Uint8Array(bytes.length + tail.length);
      all.set(bytes);
      all.set(tail, bytes.length);
      const parts = chunked(all, cuts);
      const stream = new ReadableStream<Uint8Array>({
        start(c) {
          for (const p of parts) c.enqueue(p);
          c.close();
        },
      });
      let last: string | undefined;
      for await (const ev of parseSse(stream, { maxLineBytes: maxLine })) {
        assert.equal(typeof ev.event, "string");
        assert.ok(enc.encode(ev.data).length <= maxLine, "an event larger than the cap");
        last = ev.data;
      }
      assert.equal(last, "SENTINEL", "the event after the fuzzed bytes was lost");
    },
    150,
  );
});

const ENVELOPE = {
  envelope: {
    source: "+15550000001",
    sourceNumber: "+15550000001",
    sourceUuid: "0b7e1c52-6d1e-4c3a-9f3e-2a1b3c4d5e6f",
    sourceName: "Owner",
    sourceDevice: 1,
    timestamp: 1_700_000_000_000,
    dataMessage: {
      timestamp: 1_700_000_000_000,
      message: "hello",
      expiresInSeconds: 0,
      viewOnce: false,
      groupInfo: { groupId: "aGVsbG8=", groupName: "Family", revision: 1, type: "DELIVER" },
      attachments: [{ contentType: "audio/aac", filename: null, id: "abc.aac", size: 1000 }],
      quote: { id: 1, authorNumber: "+15550000002", text: "q" },
      reaction: { emoji: "👍", targetSentTimestamp: 1, isRemove: false },
      mentions: [{ number: "+1", uuid: "u", start: 0, length: 1 }],
    },
  },
  account: "+15550000009",
};

Deno.test("fuzz: signal-cli envelope parser", () => {
  const params = fc.oneof(
    mutateJson(ENVELOPE),
    mutateJson({ subscription: 0, result: ENVELOPE }),
    fc.anything(),
  );
  check(
    "signal-cli envelope parser",
    fc.tuple(fc.constantFrom("receive", "receive", "send", ""), params),
    ([method, p]) => {
      const r = parseNotification(method, p);
      assert.ok(r && typeof r === "object" && typeof r.kind === "string");
    },
    400,
  );
});

const filter = compileItemFilter({ allow: ["*"], block: ["*_password*", "*_token*"] });
const BUS = [
  {
    topic: "openhab/items/Smoke/statechanged",
    payload: '{"type":"OnOff","value":"ON","oldType":"OnOff","oldValue":"OFF"}',
    type: "ItemStateChangedEvent",
  },
  {
    topic: "openhab/items/gSmoke/Smoke/statechanged",
    payload: '{"type":"OnOff","value":"ON","oldType":"OnOff","oldValue":"OFF"}',
    type: "GroupItemStateChangedEvent",
  },
  {
    topic: "openhab/things/zwave:device:1/statuschanged",
    payload: '[{"status":"OFFLINE","statusDetail":"NONE"},{"status":"ONLINE"}]',
    type: "ThingStatusInfoChangedEvent",
  },
  {
    topic: "openhab/channels/hue:0820:1:button/triggered",
    payload: '{"event":"1002.0","channel":"hue:0820:1:button"}',
    type: "ChannelTriggeredEvent",
  },
  {
    topic: "openhab/items/Temp/state",
    payload: '{"type":"Quantity","value":"21.5 °C"}',
    type: "ItemStateEvent",
  },
];

Deno.test("fuzz: ingest normalisers (openHAB bus events and values)", () => {
  const ctx = {
    eventId: "e1",
    source: "openhab.homelab.example",
    receivedAt: 1_000,
    stringMax: 120,
    refuse: filter.refusal,
  };
  const event = fc.oneof(
    fc.constantFrom(...BUS).chain((b) => mutateJson(b)),
    fc.constantFrom(...BUS).chain((b) => mutated(b.payload).map((payload) => ({ ...b, payload }))),
    fc.constantFrom(...BUS).chain((b) => mutated(b.topic).map((topic) => ({ ...b, topic }))),
  );
  check("ingest normaliser (bus events)", event, (e) => {
    const ev = e as { topic: string; payload: string; type: string };
    if (typeof ev?.topic !== "string" || typeof ev.payload !== "string") return; // the schema's job
    try {
      const r = normalizeBusEvent(ev, "events[0]", ctx);
      assert.ok(Array.isArray(r.events));
    } catch (err) {
      assert.ok(err instanceof IngestError, `crash: ${err}`);
    }
  }, 400);
  const types = ["OnOff", "OpenClosed", "Percent", "Decimal", "Quantity", "DateTime", "Point"];
  check(
    "ingest normaliser (values)",
    fc.tuple(fc.constantFrom(...types, "HSB", "String", "Raw", "UnDef", "x"), nastyString),
    ([type, value]) => {
      try {
        decodeValue(type, value, "f", 120);
      } catch (err) {
        assert.ok(err instanceof IngestError, `crash: ${err}`);
      }
    },
    300,
  );
});

Deno.test("fuzz: ingest normalisers (presence, sensors, weather, alert, state)", () => {
  const schemas = endpointSchemas({ maxReadings: 50 });
  const ctx = { receivedAt: 1_000, stringMax: 120, refuse: filter.refusal };
  const common = {
    event_id: "0b7e1c52-6d1e-4c3a-9f3e-2a1b3c4d5e6f",
    timestamp: "2026-12-06T10:00:00Z",
    source: "127.0.0.1",
  };
  const real = {
    presence: {
      ...common,
      event_type: "presence",
      data: { entity: "Owner", state: "home", location: "home", changed_at: common.timestamp },
    },
    sensors: {
      ...common,
      event_type: "sensors",
      data: {
        readings: [{
          sensor_id: "T1",
          type: "temperature",
          value: 21.5,
          unit: "°C",
          measured_at: common.timestamp,
        }],
      },
    },
    weather: {
      ...common,
      event_type: "weather",
      data: {
        current: {
          condition: "rain",
          temperature: 9,
          humidity: 80,
          wind_speed: 3,
          wind_unit: "m/s",
        },
        forecast: [{
          date: "2026-12-07",
          high: 10,
          low: 2,
          condition: "sun",
          precipitation_chance: 5,
        }],
        alerts: [],
      },
    },
    alert: {
      ...common,
      event_type: "alert",
      priority: "high",
      data: { alert_type: "storm", title: "Storm", message: "wind" },
    },
    state: {
      ...common,
      event_type: "state",
      data: { item: "Smoke", previous_state: "OFF", new_state: "ON", changed_by: "manual" },
    },
  } as const;
  const normalizers = {
    presence: normalizePresence,
    sensors: normalizeSensors,
    weather: normalizeWeather,
    alert: normalizeAlert,
    state: normalizeState,
  } as const;
  const kinds = Object.keys(real) as (keyof typeof real)[];
  let reached = 0;
  check(
    "ingest normaliser (endpoints)",
    fc.constantFrom(...kinds).chain((k) => mutateJson(real[k]).map((body) => ({ k, body }))),
    ({ k, body }) => {
      const parsed = schemas[k].safeParse(body);
      if (!parsed.success) return; // refused with a 400 naming the field (the app's job)
      reached++;
      try {
        // deno-lint-ignore no-explicit-any
        const r = (normalizers[k] as (b: any, c: typeof ctx) => { events: unknown[] })(
          parsed.data,
          ctx,
        );
        assert.ok(Array.isArray(r.events));
      } catch (err) {
        assert.ok(err instanceof IngestError, `crash: ${err}`);
      }
    },
    400,
  );
  assert.ok(reached > 0, "no generated body passed the schemas");
});

Deno.test("fuzz: retrieve query parser", () => {
  const real = [
    '{"q":"boiler service","limit":3}',
    '{"id":"0b7e1c52-6d1e-4c3a-9f3e-2a1b3c4d5e6f"}',
  ];
  check(
    "retrieve query parser",
    fc.tuple(
      fc.constantFrom("search", "get", "x"),
      fc.oneof(fc.constantFrom(...real).chain((r) => mutated(r)), nastyString, fc.json()),
    ),
    ([type, json]) => {
      try {
        const q = parseQuery(type, json);
        // a query that passes survives its own canonical form unchanged
        assert.deepEqual(validateQuery(type, JSON.parse(canonicalQueryJson(q))), q);
      } catch (e) {
        assert.ok(e instanceof QueryError, `crash: ${e}`);
      }
    },
    400,
  );
});

Deno.test("fuzz: knowledge markdown scanner", () => {
  const real = "---\nid: 0b7e1c52-6d1e-4c3a-9f3e-2a1b3c4d5e6f\ntitle: Boiler\ncategory: home\n" +
    "---\n# Boiler\nService every autumn.\n";
  check(
    "knowledge markdown scanner",
    fc.tuple(fc.oneof(mutated(real), nastyString), nastyString),
    ([text, name]) => {
      const source = name || "a.md";
      let doc;
      try {
        doc = parseDocument(text, source);
      } catch (e) {
        // a refusal names the file (the scanner skips it and reports why)
        assert.ok(!isCrash(e) && (e as Error).message.startsWith(`${source}: `), `crash: ${e}`);
        return;
      }
      assert.equal(typeof doc.id, "string");
      // what the writer renders, the scanner reads back to the same document
      const again = parseDocument(renderDocument(doc), source);
      assert.equal(again.id, doc.id);
    },
    300,
  );
});
