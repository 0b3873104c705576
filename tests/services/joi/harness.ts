/**
 * Test harness for joi's event path: the real event path (createEventPath:
 * flood guard, pipeline, ingest app) and outbox over a SQLite file in a temp
 * folder, the real ingest app on 127.0.0.1:0, a real signed test mesh, and
 * one controllable clock shared by all of them. Home context goes to a
 * bounded buffer the tests read, in place of joi's agent.
 *
 * @module
 */
import { LocalTime } from "../../../services/common/local_time.ts";
import type { DatabaseSync } from "node:sqlite";
import { openDb } from "../../../services/common/db.ts";
import {
  createLogger,
  type Fields,
  type Logger,
  memorySink,
} from "../../../services/common/log.ts";
import {
  householdRoles,
  loadPolicies,
  loadPolicyFile,
  type Policy,
} from "../../../services/common/policy/mod.ts";
import { importWireKey, type WireKey } from "../../../services/common/wire/keys.ts";
import { ContextBuffer } from "../../../services/joi/ingest/context.ts";
import { createEventPath, type EventPath } from "../../../services/joi/ingest/event_path.ts";
import { httpMeshTransport } from "../../../services/joi/outbox/mesh_transport.ts";
import { Outbox } from "../../../services/joi/outbox/outbox.ts";
import { type MeshPeer, randomKeyBytes, startMeshPeer } from "../../peers/mesh_peer.ts";

/** joi's event side as the tests drive it: the event path, its outbox and database. */
export interface Services extends Omit<EventPath, "tick" | "close"> {
  db: DatabaseSync;
  outbox: Outbox;
  /** The home context the pipeline pushed (joi's agent in production). */
  context: ContextBuffer;
  /** Fires the timers (confirmation loop, batches, summaries). */
  tick(now?: number): number;
  /** Closes the database and the nonce store. */
  close(): void;
}

/** Inputs of {@link createEventServices}. */
export interface EventServicesOptions {
  policy: Policy;
  /** Folder of `joi.db` (and the ingest replay guard when signing). */
  stateDir: string;
  meshUrl: string;
  /** joi->mesh key. */
  meshKey: WireKey;
  /** openHAB->joi key: ingest then accepts signed events only. */
  ingestKey?: WireKey | undefined;
  log: Logger;
  now?: (() => number) | undefined;
}

/** Builds joi's event side the way joi's root does, without the conversation side. */
export function createEventServices(o: EventServicesOptions): Services {
  const now = o.now ?? Date.now;
  const { policy, log } = o;
  // the shipped household: owner, owner_private_dm, critical_group
  const roles = householdRoles(loadPolicyFile("recipients", "policies/recipients.yaml"));
  const db = openDb(`${o.stateDir}/joi.db`);
  const outbox = new Outbox({
    db,
    policy,
    transport: httpMeshTransport({ baseUrl: o.meshUrl, key: o.meshKey, now }),
    log: log.child("outbox"),
    roles,
    time: new LocalTime(policy.household.timezone),
    now,
  });
  const context = new ContextBuffer();
  const events = createEventPath({
    db,
    policy,
    roles,
    outbox,
    context,
    signing: o.ingestKey
      ? { key: o.ingestKey, nonceStorePath: `${o.stateDir}/ingest_nonces.journal` }
      : undefined,
    log,
    now,
  });
  return {
    ...events,
    db,
    outbox,
    context,
    tick: (t?: number) => events.tick(t ?? now()),
    close: () => {
      events.close();
      db.close();
    },
  };
}

/** Options of {@link startHarness}. */
export interface HarnessOptions {
  /** Edits a copy of the shipped policies/policy.yaml. */
  patch?: (p: Policy) => void;
  /** Start time (ms); default a fixed day at 12:00 UTC. */
  startAt?: number;
  /** Reuse a folder (restart tests). */
  dir?: string;
  /** Reuse a mesh peer. */
  mesh?: MeshPeer;
  keyBytes?: Uint8Array;
  clock?: { t: number };
  /** The openHAB->joi key: ingest then accepts signed events only (production). */
  ingestKeyBytes?: Uint8Array;
}

/** A running harness. */
export interface Harness {
  dir: string;
  clock: { t: number };
  now: () => number;
  mesh: MeshPeer;
  keyBytes: Uint8Array;
  services: Services;
  logs: Fields[];
  url: string;
  policy: Policy;
  /** POSTs JSON to the ingest app; returns status and parsed body. */
  post(path: string, body: unknown, headers?: Record<string, string>): Promise<{
    status: number;
    json: Record<string, unknown>;
  }>;
  /** Advances the clock, runs the timers, waits for the outbox. */
  advance(ms: number): Promise<void>;
  /** Waits for the outbox to finish its current work. */
  settle(): Promise<void>;
  /** Stops joi's server and closes its database (the mesh stays, for restarts). */
  stopJoi(): Promise<void>;
  /** Stops everything and removes the folder. */
  close(): Promise<void>;
}

/** 2026-03-30 12:00:00 UTC. */
export const NOON = Date.UTC(2026, 2, 30, 12, 0, 0);

/** Starts a harness. */
export async function startHarness(o: HarnessOptions = {}): Promise<Harness> {
  const dir = o.dir ?? await Deno.makeTempDir({ prefix: "joi-h6-" });
  const clock = o.clock ?? { t: o.startAt ?? NOON };
  const now = () => clock.t;
  const keyBytes = o.keyBytes ?? randomKeyBytes();
  const mesh = o.mesh ?? await startMeshPeer({ keyBytes, dir, now });
  const policy = structuredClone(loadPolicies("policies").policy);
  o.patch?.(policy);
  const sink = memorySink();
  const log = createLogger("joi-test", { quiet: true, sinks: [sink], now });
  const services = createEventServices({
    policy,
    stateDir: dir,
    meshUrl: mesh.url,
    meshKey: await importWireKey(keyBytes, "joi_to_mesh"),
    ...(o.ingestKeyBytes
      ? { ingestKey: await importWireKey(o.ingestKeyBytes, "openhab_to_joi") }
      : {}),
    log,
    now,
  });
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    services.ingestApp.fetch,
  );
  const url = `http://127.0.0.1:${server.addr.port}`;
  let joiStopped = false;
  const h: Harness = {
    dir,
    clock,
    now,
    mesh,
    keyBytes,
    services,
    logs: sink.lines,
    url,
    policy,
    async post(path, body, headers = {}) {
      const res = await fetch(url + path, {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body: typeof body === "string" ? body : JSON.stringify(body),
      });
      const json = await res.json();
      return { status: res.status, json };
    },
    async settle() {
      await services.outbox.pump();
    },
    async advance(ms) {
      clock.t += ms;
      services.tick(clock.t);
      await services.outbox.pump();
    },
    async stopJoi() {
      if (joiStopped) return;
      joiStopped = true;
      await services.outbox.pump().catch(() => {});
      await server.shutdown();
      services.close();
    },
    async close() {
      await h.stopJoi();
      if (!o.mesh) await mesh.close();
      if (!o.dir) await Deno.remove(dir, { recursive: true });
    },
  };
  return h;
}

/** A relay batch of openHAB bus events (`POST /api/v1/openhab/events`). */
export function busBatch(
  events: unknown[],
  at: number = Date.now(),
  source = "openhab.homelab.example",
) {
  return {
    event_id: crypto.randomUUID(),
    event_type: "openhab_events",
    timestamp: at,
    source,
    events,
  };
}

/** A contract `state` body. */
export function stateEvent(
  item: string,
  state: string | null,
  at: number,
  previous: string | null = null,
) {
  return {
    event_id: crypto.randomUUID(),
    event_type: "state_changed",
    timestamp: new Date(at).toISOString(),
    source: "openhab.homelab.example",
    data: { item, previous_state: previous, new_state: state, changed_by: "automation" },
  };
}

/** Critical-group messages the mesh received. */
export function criticalTexts(mesh: MeshPeer): string[] {
  return mesh.received
    .filter((r) =>
      r.body.delivery.target === "group" && r.body.delivery.group_id === "critical_group"
    )
    .map((r) => r.body.content.text);
}

/** Direct messages to the owner the mesh received. */
export function directTexts(mesh: MeshPeer): string[] {
  return mesh.received
    .filter((r) => r.body.delivery.target === "direct" && r.body.recipient.id === "owner")
    .map((r) => r.body.content.text);
}
