/**
 * Ingest benchmark, in one run on loopback:
 *
 * 1. sustained ingest through joi's full pipeline (source check, JSON/size
 *    checks, zod, normalizer, item filter, event-id store, flood guard with
 *    SQLite device state, transaction), relay batches of 50 openHAB bus
 *    events, next to a bare Hono + zod + SQLite insert endpoint taking the
 *    same batches: events/s, p50/p99 per request, and the ratio;
 * 2. the time from a critical event's POST to the signed send reaching a test
 *    mesh while another device floods at about 1,000 events/s: p50/p99;
 * 3. the whole alarm path, real relay, joi and mesh processes: alarm delivery
 *    latency from openHAB's stream to signal-cli's `send`, idle and while the
 *    relay carries 1,000 ordinary events/s including refused and oversized
 *    ones (`_alarm_path.ts`): p50/p99, target p99 < 50 ms, alarms lost (0).
 *
 * Rate limits are raised for phase 1 (they would refuse a benchmark by
 * design). Ingest HMAC signing is not measured: the wire module has no
 * openHAB direction yet (see the report).
 *
 * Run alone: `deno task bench ingest`.
 *
 * @module
 */
import { Hono } from "hono";
import { z } from "zod";
import { openDb } from "../../services/common/db.ts";
import { createLogger } from "../../services/common/log.ts";
import { loadPolicies, type Policy } from "../../services/common/policy/mod.ts";
import { signedHeaders } from "../../services/common/wire/sign.ts";
import { importWireKey, type WireKey } from "../../services/common/wire/keys.ts";
import { randomKeyBytes, startMeshPeer } from "../../tests/peers/mesh_peer.ts";
import { createEventServices } from "../../tests/services/joi/harness.ts";
import { alarmPath } from "./_alarm_path.ts";
import { percentile as pct } from "./_stats.ts";

const CONCURRENCY = 8;
const BATCH = 50;
const PHASE_MS = 5_000;

interface Figures {
  name: string;
  eventsPerSecond: number;
  p50: number;
  p99: number;
}

function batchBody(seq: number): string {
  const events = [];
  for (let i = 0; i < BATCH; i++) {
    const n = seq * BATCH + i;
    events.push({
      topic: `openhab/items/Sensor_${n % 400}_Temperature/statechanged`,
      payload: JSON.stringify({ type: "Quantity", value: `${(18 + (n % 70) / 10).toFixed(1)} °C` }),
      type: "ItemStateChangedEvent",
    });
  }
  return JSON.stringify({
    event_id: crypto.randomUUID(),
    event_type: "openhab_events",
    timestamp: Date.now(),
    source: "openhab.homelab.example",
    events,
  });
}

async function drive(name: string, url: string, signWith?: WireKey): Promise<Figures> {
  const path = new URL(url).pathname;
  const latencies: number[] = [];
  let seq = 0;
  let events = 0;
  const end = performance.now() + PHASE_MS;
  const worker = async () => {
    while (performance.now() < end) {
      const body = batchBody(seq++);
      const t = performance.now();
      // signing is part of what is measured: the relay signs every post
      const raw = new TextEncoder().encode(body);
      let headers: Record<string, string> = { "content-type": "application/json" };
      if (signWith) {
        headers = signedHeaders({
          key: signWith.request,
          direction: "openhab_to_joi",
          method: "POST",
          path,
          body: raw,
          headers: { ...headers, "x-request-id": crypto.randomUUID() },
        }).headers;
      }
      const r = await fetch(url, { method: "POST", headers, body: raw });
      await r.body?.cancel();
      if (r.status !== 200) throw new Error(`${name}: HTTP ${r.status}`);
      latencies.push(performance.now() - t);
      events += BATCH;
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const elapsed = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return {
    name,
    eventsPerSecond: events / elapsed,
    p50: pct(latencies, 50),
    p99: pct(latencies, 99),
  };
}

function bareServer(dir: string): Deno.HttpServer<Deno.NetAddr> {
  const db = openDb(`${dir}/bare.db`);
  db.exec("CREATE TABLE ev (topic TEXT, payload TEXT, type TEXT, at INTEGER)");
  const insert = db.prepare("INSERT INTO ev VALUES (?, ?, ?, ?)");
  const schema = z.object({
    event_id: z.uuid(),
    source: z.string(),
    events: z.array(z.object({ topic: z.string(), payload: z.string(), type: z.string() })).max(50),
  });
  const app = new Hono();
  app.post("/ingest", async (c) => {
    const r = schema.safeParse(await c.req.json());
    if (!r.success) return c.json({ error: "bad" }, 400);
    db.exec("BEGIN");
    for (const e of r.data.events) insert.run(e.topic, e.payload, e.type, Date.now());
    db.exec("COMMIT");
    return c.json({ status: "ok" });
  });
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, app.fetch);
}

function raiseLimits(p: Policy): Policy {
  const q = structuredClone(p);
  for (
    const k of Object.keys(q.rate_limits.openhab) as (keyof Policy["rate_limits"]["openhab"])[]
  ) {
    q.rate_limits.openhab[k] = 100_000_000;
  }
  return q;
}

function print(f: Figures): void {
  console.log(
    `${f.name.padEnd(34)} ${Math.round(f.eventsPerSecond).toString().padStart(7)} events/s  ` +
      `p50 ${f.p50.toFixed(2)} ms  p99 ${f.p99.toFixed(2)} ms per ${BATCH}-event request`,
  );
}

/** Runs the ingest benchmark. */
export async function bench(): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "joi-bench-ingest-" });
  const keyBytes = randomKeyBytes();
  const mesh = await startMeshPeer({ keyBytes, dir });
  const policy = raiseLimits(loadPolicies("policies").policy);
  const log = createLogger("bench", { quiet: true });
  const services = createEventServices({
    policy,
    stateDir: dir,
    meshUrl: mesh.url,
    meshKey: await importWireKey(keyBytes, "joi_to_mesh"),
    log,
  });
  const joi = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    services.ingestApp.fetch,
  );
  // the same pipeline requiring the relay's openhab_to_joi signature (production)
  const ingestKey = await importWireKey(randomKeyBytes(), "openhab_to_joi");
  await Deno.mkdir(`${dir}/signed`);
  const signedServices = createEventServices({
    policy,
    stateDir: `${dir}/signed`,
    meshUrl: mesh.url,
    meshKey: await importWireKey(keyBytes, "joi_to_mesh"),
    ingestKey,
    log,
  });
  const signedJoi = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    signedServices.ingestApp.fetch,
  );
  const bare = bareServer(dir);
  const joiUrl = `http://127.0.0.1:${joi.addr.port}/api/v1/openhab/events`;
  const bareUrl = `http://127.0.0.1:${bare.addr.port}/ingest`;
  try {
    // warm up both
    await drive("warmup", bareUrl).catch(() => {});
    const base = await drive("bare Hono + zod + SQLite insert", bareUrl);
    const full = await drive("joi ingest, full pipeline", joiUrl);
    const signed = await drive(
      "joi ingest, full pipeline, signed",
      `http://127.0.0.1:${signedJoi.addr.port}/api/v1/openhab/events`,
      ingestKey,
    );
    print(base);
    print(full);
    print(signed);
    console.log(
      `ratio signed/bare: ${(signed.eventsPerSecond / base.eventsPerSecond * 100).toFixed(1)}%, ` +
        `signed/unsigned: ${(signed.eventsPerSecond / full.eventsPerSecond * 100).toFixed(1)}%`,
    );
    console.log(
      `ratio full/bare: ${(full.eventsPerSecond / base.eventsPerSecond * 100).toFixed(1)}% ` +
        `(target >= 40%); target >= 10,000 events/s: ${
          full.eventsPerSecond >= 10_000 ? "met" : "NOT met"
        }`,
    );

    // phase 2: critical alert latency under a 1,000 events/s flood
    let flooding = true;
    let flooded = 0;
    const floodStart = performance.now();
    const flood = (async () => {
      let state = false;
      const started = performance.now();
      while (flooding) {
        // 20 requests of 5 flips each per 100 ms: ~1,000 events/s from one device
        const events = [];
        for (let i = 0; i < 5; i++) {
          state = !state;
          events.push({
            topic: "openhab/items/Porch_Contact/statechanged",
            payload: JSON.stringify({ type: "OpenClosed", value: state ? "OPEN" : "CLOSED" }),
            type: "ItemStateChangedEvent",
          });
        }
        const r = await fetch(joiUrl, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({
            event_id: crypto.randomUUID(),
            event_type: "openhab_events",
            timestamp: Date.now(),
            source: "openhab.homelab.example",
            events,
          }),
        });
        await r.body?.cancel();
        flooded += 5;
        const due = started + (flooded / 1000) * 1000;
        const wait = due - performance.now();
        if (wait > 0) await new Promise((res) => setTimeout(res, wait));
      }
    })();
    const samples: number[] = [];
    for (let i = 0; i < 100; i++) {
      const device = `Alarm${i}_Smoke`;
      const before = mesh.received.length;
      const t = performance.now();
      const r = await fetch(`http://127.0.0.1:${joi.addr.port}/api/v1/openhab/events`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          topic: `openhab/items/${device}/statechanged`,
          payload: JSON.stringify({
            type: "OnOff",
            value: "ON",
            oldType: "OnOff",
            oldValue: "OFF",
          }),
          type: "ItemStateChangedEvent",
        }),
      });
      await r.body?.cancel();
      await mesh.waitFor((rs) =>
        rs.slice(before).some((m) => m.body.content.text.includes(device))
      );
      samples.push(performance.now() - t);
      await new Promise((res) => setTimeout(res, 50));
    }
    flooding = false;
    await flood;
    const floodRate = flooded / ((performance.now() - floodStart) / 1000);
    samples.sort((a, b) => a - b);
    console.log(
      `critical POST -> signed send at the mesh, under a ${Math.round(floodRate)} ev/s flood: ` +
        `p50 ${pct(samples, 50).toFixed(2)} ms  p99 ${pct(samples, 99).toFixed(2)} ms ` +
        `(target p99 < 50 ms: ${
          pct(samples, 99) < 50 ? "met" : "NOT met"
        }); flood events ${flooded}`,
    );
  } finally {
    await joi.shutdown();
    await signedJoi.shutdown();
    await bare.shutdown();
    await services.outbox.pump().catch(() => {});
    await signedServices.outbox.pump().catch(() => {});
    services.close();
    signedServices.close();
    await mesh.close();
    await Deno.remove(dir, { recursive: true });
  }
  // phase 3: the whole alarm path, real processes
  await alarmPath();
}

if (import.meta.main) await bench();
