/**
 * Test harness of the mesh: a real joi-side HTTP server (verifying the
 * mesh->joi signature with the wire middleware, serving `/config/identities`),
 * real key files, a socket slot for the signal-cli peer, configuration
 * folders, and the mesh itself, in-process or as a child process with its
 * manifest flags.
 *
 * @module
 */
import { Hono } from "hono";
import { parseYaml } from "../../../services/common/policy/parse_yaml.ts";
import { createLogger, type Fields, memorySink } from "../../../services/common/log.ts";
import {
  fail,
  generateKeyFile,
  jsonBody,
  loadWireKey,
  ok,
  openNonceStore,
  serveGuarded,
  SignedClient,
  signedRoutes,
  type WireKey,
  type WireResponse,
} from "../../../services/common/wire/mod.ts";
import { type Layout, localLayout } from "../../../services/common/permissions/mod.ts";
import { claimSocket } from "../../_helpers/sockets.ts";
import { inboundMessageSchema } from "../../../services/joi/inbound/schema.ts";

/** Claims a free socket slot of this test run (see tests/_helpers/sockets.ts). */
export { claimSocket };
import { loadMeshConfig, type MeshConfig } from "../../../services/mesh/config.ts";
import type { IdentitiesConfig } from "../../../services/mesh/identity.ts";
import { hashIdentities, validateIdentities } from "../../../services/mesh/identity.ts";
import { createMesh, type Mesh } from "../../../services/mesh/service.ts";
import { JsonRpcClient } from "../../../services/mesh/signal/jsonrpc_client.ts";
import { type PeerGroup, SignalCliPeer } from "../../peers/signal_cli/peer.ts";

/** The example identities of policies/ (owner, partner, three groups). */
export const OWNER = {
  number: "+15550000001",
  uuid: "3b0b5f4e-8d6c-4a55-9d6e-1f2a3b4c5d01",
};
/** The partner of policies/identities.yaml. */
export const PARTNER = {
  number: "+15550000002",
  uuid: "3b0b5f4e-8d6c-4a55-9d6e-1f2a3b4c5d02",
};
/** Someone not in identities.yaml. */
export const STRANGER = {
  number: "+15550009999",
  uuid: "99999999-8d6c-4a55-9d6e-1f2a3b4c5d99",
};
/** Group ids of policies/identities.yaml. */
export const GROUPS = {
  owner_regular_dm: "b3duZXItcHVibGljLWdyb3VwLWlkLTAwMDAwMDAwMDA=",
  family_group: "ZmFtaWx5LWdyb3VwLWlkLTAwMDAwMDAwMDAwMDAwMDA=",
  critical_group: "Y3JpdGljYWwtZ3JvdXAtaWQtMDAwMDAwMDAwMDAwMDA=",
};

/** The groups of policies/groups.yaml with exactly their expected members. */
export function expectedGroups(): PeerGroup[] {
  const people: Record<string, { number: string; uuid: string }> = {
    owner: OWNER,
    partner: PARTNER,
  };
  const groups = policyData("groups").groups as Record<
    string,
    { signal_group_id: string; expected_members: string[] }
  >;
  return Object.entries(groups).map(([channel, g]) => ({
    id: g.signal_group_id,
    name: channel,
    members: g.expected_members.map((m) => {
      const person = people[m];
      if (!person) throw new Error(`harness: no test identity for group member ${m}`);
      return { ...person };
    }),
  }));
}

/** Reads a policy example as data. */
export function policyData(name: string): Record<string, unknown> {
  return parseYaml(Deno.readTextFileSync(`policies/${name}.yaml`)).doc.toJS() as Record<
    string,
    unknown
  >;
}

/** The example identities. */
export function exampleIdentities(): IdentitiesConfig {
  return validateIdentities(policyData("identities"));
}

/** A free TCP port on 127.0.0.1 (bound then released). */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** Writes both HMAC key files (0600) and loads them. */
export async function makeKeys(dir: string) {
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  await generateKeyFile(`${dir}/mesh_to_joi.key`);
  await generateKeyFile(`${dir}/joi_to_mesh.key`);
  return {
    dir,
    meshToJoi: await loadWireKey(dir, "mesh_to_joi"),
    joiToMesh: await loadWireKey(dir, "joi_to_mesh"),
  };
}

/** The account the signal-cli peer runs as (its default). */
export const ACCOUNT = { number: "+15559990000", uuid: "0e0e0e0e-0000-4000-8000-00000000ac01" };

/** Test settings for mesh.yaml: fast retries, the peer's account number (its ACI is learnt). */
export const FAST_MESH_YAML = `
queue: { max_depth: 1000, retry_initial_ms: 20, retry_max_ms: 100 }
config_sync: { poll_minutes: 0 }
account: { number: "${ACCOUNT.number}" }
`;

/** Writes a mesh config folder: copies of the policy examples plus `meshYaml`. */
export async function writeConfigDir(dir: string, meshYaml = FAST_MESH_YAML): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  for (const f of ["identities.yaml", "groups.yaml", "policy.yaml"]) {
    await Deno.copyFile(`policies/${f}`, `${dir}/${f}`);
  }
  await Deno.writeTextFile(`${dir}/mesh.yaml`, meshYaml);
}

/**
 * The layout of a mesh child process whose files all live under `dir`
 * (`config/`, `state/`, `log/`, `secrets/`), talking to joi at `joiPort`,
 * listening on `meshPort` and reaching signal-cli at `signalSocket`.
 */
export function meshLayout(
  dir: string,
  o: { joiPort: number; meshPort: number; signalSocket: string },
): Layout {
  return {
    ...localLayout({ varDir: dir }),
    meshConfigDir: `${dir}/config`,
    meshStateDir: `${dir}/state`,
    logDir: `${dir}/log`,
    secretsDir: () => `${dir}/secrets`,
    joiInbound: { host: "127.0.0.1", port: o.joiPort },
    meshOutbound: { host: "127.0.0.1", port: o.meshPort },
    signal: { kind: "socket", path: o.signalSocket },
  };
}

/** The `data` of a loopback service's `/health` answer (the mesh's, joi's), or null while it does not answer. */
export async function meshHealth(port: number): Promise<Record<string, unknown> | null> {
  try {
    const r = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(2000) });
    return (await r.json()).data;
  } catch {
    return null;
  }
}

/**
 * Polls the mesh's `/health` until `pred` holds and returns that answer;
 * throws `failure` after `limitMs` (a safety net, not a timed assertion).
 */
export async function waitForHealth(
  port: number,
  pred: (health: Record<string, unknown>) => boolean,
  failure: string,
  limitMs = 30_000,
): Promise<Record<string, unknown>> {
  const start = Date.now();
  while (true) {
    const h = await meshHealth(port);
    if (h && pred(h)) return h;
    if (Date.now() - start > limitMs) throw new Error(failure);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** policy.yaml `content.max_inbound_chars` of the examples (joi's schema limit). */
const JOI_MAX_INBOUND_CHARS =
  (policyData("policy").content as { max_inbound_chars: number }).max_inbound_chars;

/** One inbound message as joi received it. */
export interface Received {
  headers: Record<string, string>;
  body: Record<string, unknown>;
}

/**
 * The joi side: a real HTTP server verifying the mesh's signature and, as
 * joi does, validating each inbound body with joi's own schema (policy.yaml
 * `content.max_inbound_chars`): what joi would refuse is answered 400, so a
 * body the mesh builds wrong is seen here, not only in production.
 */
export class FakeJoi {
  readonly received: Received[] = [];
  /** Bodies refused by joi's schema, with the reason. */
  readonly refused: { body: Record<string, unknown>; reason: string }[] = [];
  /** Answer for inbound messages (default 200). */
  inboundStatus = 200;
  /** `will_respond` of a 200 answer (whether joi will answer: the mesh shows typing). */
  willRespond = true;
  /** identities served on /config/identities. */
  identities: IdentitiesConfig;
  /** Replace the served config with arbitrary data (malformed tests). */
  servedOverride: unknown = undefined;
  configFetches = 0;
  port: number;
  #server: Deno.HttpServer | null = null;
  #keys: { meshToJoi: WireKey; joiToMesh: WireKey };
  #stateDir: string;
  #waiters: { pred: () => boolean; resolve: () => void }[] = [];
  #nonces: ReturnType<typeof openNonceStore> | null = null;

  constructor(
    keys: { meshToJoi: WireKey; joiToMesh: WireKey },
    stateDir: string,
    port = freePort(),
  ) {
    this.#keys = keys;
    this.#stateDir = stateDir;
    this.port = port;
    this.identities = exampleIdentities();
  }

  /** The hash of the identities joi serves. */
  get hash(): string {
    return hashIdentities(this.identities);
  }

  /** Base URL. */
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Starts (or restarts) the server on the same port. */
  start(): void {
    if (this.#server) return;
    this.#nonces ??= openNonceStore(`${this.#stateDir}/joi-nonces.journal`, 15 * 60_000);
    const app = new Hono();
    const verify = signedRoutes({
      key: this.#keys.meshToJoi,
      direction: "mesh_to_joi",
      nonceStore: this.#nonces,
      allowedSources: ["127.0.0.1"],
      toleranceMs: 5 * 60_000,
      maxBodyBytes: 65536,
    });
    app.post("/api/v1/message/inbound", verify, (c) => {
      const headers: Record<string, string> = {};
      c.req.raw.headers.forEach((v, k) => (headers[k.toLowerCase()] = v));
      const body = jsonBody(c) as Record<string, unknown>;
      this.received.push({ headers, body });
      const parsed = inboundMessageSchema(JOI_MAX_INBOUND_CHARS).safeParse(body);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        const reason = `${issue?.path.join(".") || "(body)"}: ${issue?.message ?? "invalid"}`;
        this.refused.push({ body, reason });
        this.#notify();
        return fail(c, "invalid_request", reason);
      }
      this.#notify();
      if (this.inboundStatus !== 200) {
        return c.json({
          status: "error",
          request_id: crypto.randomUUID(),
          timestamp: new Date().toISOString(),
          error: { code: "internal_error", message: "down" },
        }, this.inboundStatus as 500);
      }
      return ok(c, { received: true, will_respond: this.willRespond });
    });
    app.get("/config/identities", verify, (c) => {
      this.configFetches++;
      this.#notify();
      if (this.servedOverride !== undefined) return ok(c, this.servedOverride);
      return ok(c, { hash: this.hash, config: this.identities });
    });
    this.#server = Deno.serve(
      { hostname: "127.0.0.1", port: this.port, onListen: () => {} },
      app.fetch,
    );
  }

  /** Stops the server (connections refused until {@link start}). */
  async stop(): Promise<void> {
    const s = this.#server;
    this.#server = null;
    if (s) await s.shutdown();
  }

  /** Closes everything. */
  async close(): Promise<void> {
    await this.stop();
    this.#nonces?.close();
  }

  /** A signed client joi->mesh. */
  client(meshUrl: string): SignedClient {
    return new SignedClient({
      baseUrl: meshUrl,
      key: this.#keys.joiToMesh,
      direction: "joi_to_mesh",
      maxRetries: 0,
    });
  }

  /** Sends an outbound request to the mesh as joi would. */
  outbound(meshUrl: string, body: unknown): Promise<WireResponse> {
    return this.client(meshUrl).request("POST", "/api/v1/message/outbound", body, {
      "X-Config-Hash": this.hash,
    });
  }

  /**
   * Resolves when `pred` holds (checked on each request); rejects after
   * `limitMs`, a safety net so a broken mesh fails the test instead of hanging it.
   */
  waitFor(pred: () => boolean, limitMs = 60_000): Promise<void> {
    if (pred()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w.pred !== pred);
        reject(
          new Error(
            `joi: condition not reached within ${limitMs} ms (${this.received.length} received)`,
          ),
        );
      }, limitMs);
      this.#waiters.push({
        pred,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      });
    });
  }

  /** Texts received, in order. */
  texts(): string[] {
    return this.received.map((r) => (r.body.content as { text?: string }).text ?? "");
  }

  #notify(): void {
    this.#waiters = this.#waiters.filter((w) => {
      if (w.pred()) {
        w.resolve();
        return false;
      }
      return true;
    });
  }
}

/** A text outbound body. */
export function outboundBody(
  id: string,
  text: string,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    transport: "signal",
    recipient: { id },
    priority: "normal",
    delivery: { target: "direct" },
    content: { type: "text", text },
    escalated: false,
    voice_response: false,
    ...extra,
  };
}

/** Builds the MeshConfig of a config folder (as the mesh's root does). */
export function configOf(dir: string): Promise<MeshConfig> {
  return Promise.resolve(loadMeshConfig(dir));
}

/** An in-process mesh wired to a peer socket and a FakeJoi. */
export interface Running {
  mesh: Mesh;
  url: string;
  logs: Fields[];
  peer: SignalCliPeer;
  joi: FakeJoi;
  dir: string;
  stop(): Promise<void>;
}

/** Options of {@link startStack}. */
export interface StackOptions {
  meshYaml?: string;
  /** Edit the config before the mesh starts. */
  edit?: (c: MeshConfig) => void;
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
  startJoi?: boolean;
  /** signal-cli's attachments folder (long texts, voice notes). */
  attachmentsDir?: string;
  /** Run the periodic timers (sweeps); off by default. */
  timers?: boolean;
  /**
   * Wait for the first group check before returning (default true; it needs
   * joi's number, which a mesh.yaml without `account` learns from the first
   * message only).
   */
  waitForGroupCheck?: boolean;
}

/**
 * Starts a signal-cli peer on a socket slot, a FakeJoi, and an in-process
 * mesh (real JsonRpcClient, real signed client and middleware, real SQLite).
 */
export async function startStack(o: StackOptions = {}): Promise<Running> {
  const dir = await Deno.makeTempDir({ prefix: "mesh-test-" });
  const sock = await claimSocket();
  let keys: Awaited<ReturnType<typeof makeKeys>>;
  let config: MeshConfig;
  try {
    keys = await makeKeys(`${dir}/secrets`);
    await writeConfigDir(`${dir}/config`, o.meshYaml ?? FAST_MESH_YAML);
    config = await configOf(`${dir}/config`);
    o.edit?.(config);
  } catch (e) {
    sock.release();
    await Deno.remove(dir, { recursive: true });
    throw e;
  }
  const peer = SignalCliPeer.start({ path: sock.path });
  peer.groups = expectedGroups();
  const joi = new FakeJoi(keys, dir);
  if (o.startJoi !== false) joi.start();
  const sink = memorySink();
  const log = createLogger("mesh", { quiet: true, sinks: [sink], debug: true });
  const nonces = openNonceStore(`${dir}/mesh-nonces.journal`, 15 * 60_000);
  const transport = new JsonRpcClient({
    path: sock.path,
    log: log.child("signal"),
    initialBackoffMs: 10,
    maxBackoffMs: 50,
  });
  const mesh = await createMesh({
    config,
    stateDir: `${dir}/state`,
    attachmentsDir: o.attachmentsDir,
    transport,
    joi: new SignedClient({
      baseUrl: joi.url,
      key: keys.meshToJoi,
      direction: "mesh_to_joi",
      maxRetries: 0,
      timeoutMs: 5000,
    }),
    verify: signedRoutes({
      key: keys.joiToMesh,
      direction: "joi_to_mesh",
      nonceStore: nonces,
      allowedSources: ["127.0.0.1"],
      toleranceMs: config.security.toleranceMs,
      maxBodyBytes: config.security.maxBodyBytes,
    }),
    validateIdentities,
    hashIdentities,
    log,
    sleep: o.sleep,
    now: o.now,
    timers: o.timers ?? false,
  });
  const server = serveGuarded(mesh.app, {
    hostname: "127.0.0.1",
    port: 0,
    ...config.security.server,
  });
  const stop = async () => {
    await server.shutdown();
    await mesh.stop();
    nonces.close();
    await peer.stop();
    await joi.close();
    sock.release();
    await Deno.remove(dir, { recursive: true });
  };
  mesh.start();
  try {
    await peer.waitFor(() => peer.connected);
    await waitUntil(() => transport.status().state === "connected");
    if (o.waitForGroupCheck !== false) await waitUntil(() => mesh.monitor.lastCheck !== null);
  } catch (e) {
    await stop(); // never leave a socket slot or a temp folder behind
    throw e;
  }
  return {
    mesh,
    url: `http://127.0.0.1:${(server.addr as Deno.NetAddr).port}`,
    logs: sink.lines,
    peer,
    joi,
    dir,
    stop,
  };
}

/** Polls `pred` every few ms until it holds (fails after `limitMs`, a safety net). */
export async function waitUntil(pred: () => boolean, limitMs = 20_000): Promise<void> {
  const start = Date.now();
  while (!pred()) {
    if (Date.now() - start > limitMs) throw new Error("condition not reached");
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Log lines with `event`. */
export function events(logs: Fields[], event: string): Fields[] {
  return logs.filter((l) => l.event === event);
}
