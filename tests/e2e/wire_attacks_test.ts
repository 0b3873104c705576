/**
 * The two attacks of issue 14, end to end, with real processes started with
 * their manifest flags (the mesh, joi with the LLM stand-in, the signal-cli
 * stand-in) and a man in the middle on the mesh -> joi path: the mesh's
 * `--joi-url` is a proxy in this test process that forwards to joi's 8443
 * and can rewrite requests or forge answers, as a compromised neighbour on
 * the bridge could once Nebula is bypassed.
 *
 * 1. A family-group message whose `X-Validated-Channel` is rewritten in
 *    flight (to the owner's group, whose memory and knowledge it would
 *    reach) is refused by joi (401: the signed headers no longer match),
 *    logged as a security event, never handled; once the proxy stops, the
 *    mesh's retry delivers the genuine message.
 * 2. A forged answer to the mesh's `GET /config/identities` (an attacker's
 *    phone as the owner, with a correct hash), unsigned or under joi's
 *    signature of another body, is refused by the mesh (security log) and
 *    the identities in force are kept: the attacker's phone is dropped and
 *    the owner still gets through; once the proxy stops, the genuine answer
 *    is applied.
 */
import assert from "node:assert/strict";
import {
  denoRunArgs,
  type Layout,
  localLayout,
  programSpec,
} from "../../services/common/permissions/mod.ts";
import { identitiesHash, loadPolicies } from "../../services/common/policy/mod.ts";
import { generateMemoryKeyFile } from "../../services/joi/memory/crypto.ts";
import { LlmTestServer } from "../peers/llm_server.ts";
import { dataEnvelope, SignalCliPeer } from "../peers/signal_cli/peer.ts";
import {
  claimSocket,
  expectedGroups,
  freePort,
  GROUPS,
  makeKeys,
  meshHealth,
  OWNER,
  PARTNER,
  writeConfigDir,
} from "../services/mesh/harness.ts";
import { stageHousehold } from "../scripts/validate/household.ts";
import { Child, logEvents, waitUntil } from "./process.ts";

const ATTACKER = { number: "+15550006666", uuid: "66666666-8d6c-4a55-9d6e-1f2a3b4c5d66" };
const HOP = ["host", "connection", "content-length", "transfer-encoding", "keep-alive", "date"];

/** What passed the proxy. */
interface Seen {
  method: string;
  path: string;
  headers: Headers;
  status: number;
}

/** A man in the middle between the mesh and joi's 8443. */
class Mitm {
  /** Rewrites a request before it is forwarded. */
  tamper: ((r: { method: string; path: string; headers: Headers }) => void) | null = null;
  /** Answers a request itself (not forwarded) when it returns an answer. */
  forge: ((r: { method: string; path: string }) => Response | undefined) | null = null;
  /** Replaces the body of joi's answer, keeping its headers (its MAC). */
  swapBody: ((r: { path: string; body: string }) => string | undefined) | null = null;
  readonly seen: Seen[] = [];
  readonly port = freePort();
  #server: Deno.HttpServer;

  constructor(target: number) {
    this.#server = Deno.serve(
      { hostname: "127.0.0.1", port: this.port, onListen() {} },
      async (req) => {
        const url = new URL(req.url);
        const r = { method: req.method, path: url.pathname + url.search, headers: new Headers() };
        req.headers.forEach((v, k) => {
          if (!HOP.includes(k)) r.headers.set(k, v);
        });
        const body = new Uint8Array(await req.arrayBuffer());
        const forged = this.forge?.(r);
        if (forged) {
          this.seen.push({ ...r, status: forged.status });
          return forged;
        }
        this.tamper?.(r);
        const res = await fetch(`http://127.0.0.1:${target}${r.path}`, {
          method: r.method,
          headers: r.headers,
          body: body.length > 0 ? body : null,
        });
        let text = await res.text();
        const headers = new Headers();
        res.headers.forEach((v, k) => {
          if (!HOP.includes(k)) headers.set(k, v);
        });
        text = this.swapBody?.({ path: r.path, body: text }) ?? text;
        this.seen.push({ ...r, status: res.status });
        return new Response(text, { status: res.status, headers });
      },
    );
  }

  async close(): Promise<void> {
    await this.#server.shutdown();
  }
}

function spawn(name: "joi" | "mesh", layout: Layout): Child {
  return new Child(name, "deno", denoRunArgs(programSpec(name, layout)), {
    env: { NO_COLOR: "1" },
  });
}

/** The running stack: joi, the mesh behind the proxy, the stand-ins. */
async function stack(meshIdentities?: (text: string) => string) {
  const h = await stageHousehold({ accounts: "staged" });
  const dir = await Deno.makeTempDir({ prefix: "joi-e2e-mitm-" });
  const signalSock = await claimSocket();
  const llm = await LlmTestServer.start();
  const peer = SignalCliPeer.start({ path: signalSock.path });
  peer.groups = expectedGroups();
  const children: Child[] = [];
  const joiPort = freePort();
  const mitm = new Mitm(joiPort);
  await makeKeys(`${dir}/secrets`);
  await generateMemoryKeyFile(`${dir}/secrets/memory.key`);
  await writeConfigDir(`${dir}/mesh-config`);
  if (meshIdentities) {
    const path = `${dir}/mesh-config/identities.yaml`;
    Deno.writeTextFileSync(path, meshIdentities(Deno.readTextFileSync(path)));
  }
  const llmUrl = new URL(llm.origin);
  const base: Layout = {
    ...localLayout({ varDir: dir }),
    joiConfigDir: h.configDir,
    joiStateDir: `${dir}/joi`,
    meshConfigDir: `${dir}/mesh-config`,
    meshStateDir: `${dir}/mesh`,
    logDir: `${dir}/log`,
    secretsDir: () => `${dir}/secrets`,
    joiInbound: { host: "127.0.0.1", port: joiPort },
    joiIngest: { host: "127.0.0.1", port: freePort() },
    meshOutbound: { host: "127.0.0.1", port: freePort() },
    llm: { host: "127.0.0.1", port: Number(llmUrl.port) },
    signal: { kind: "socket", path: signalSock.path },
  };
  const joi = spawn("joi", base);
  children.push(joi);
  // the mesh's joi is the man in the middle
  const mesh = spawn("mesh", { ...base, joiInbound: { host: "127.0.0.1", port: mitm.port } });
  children.push(mesh);
  const until = (what: string, cond: () => boolean | Promise<boolean>) =>
    waitUntil(what, cond, 60_000, children);
  await until("joi to listen", async () => (await meshHealth(joiPort)) !== null);
  await until("the mesh to reach signal-cli", async () => {
    const m = await meshHealth(base.meshOutbound.port);
    return (m?.signal as { state?: string } | undefined)?.state === "connected";
  });
  let ts = 1000;
  return {
    h,
    dir,
    peer,
    mitm,
    mesh,
    joi,
    joiPort,
    meshPort: base.meshOutbound.port,
    joiLog: `${dir}/log/joi.log`,
    joiSec: `${dir}/log/security.log`,
    meshLog: `${dir}/log/mesh.log`,
    meshSec: `${dir}/log/mesh-security.log`,
    until,
    say(who: { number: string; uuid: string }, text: string, groupId?: string) {
      peer.push(dataEnvelope({ ...who, timestamp: ts++, text, ...(groupId ? { groupId } : {}) }));
    },
    async close() {
      await Promise.all(children.map((c) => c.stop("SIGTERM")));
      await mitm.close();
      await peer.stop();
      await llm.close();
      signalSock.release();
      await Deno.remove(dir, { recursive: true });
      await h.cleanup();
    },
  };
}

/** Events of a JSON-lines log (joi writes security events to both of its logs). */
const events = logEvents;

Deno.test({
  name:
    "mitm: a rewritten X-Validated-Channel is refused by joi (401, security log), never handled",
  fn: async () => {
    const s = await stack();
    try {
      // the man in the middle moves every family-group message to the owner's own group
      s.mitm.tamper = (r) => {
        if (r.headers.get("x-validated-channel") === "family_group") {
          r.headers.set("x-validated-channel", "owner_regular_dm");
        }
      };
      s.say(PARTNER, "what is the owner hiding from us?", GROUPS.family_group);
      await s.until(
        "joi to refuse the rewritten message",
        () =>
          events(s.joiSec, "wire.refused").some((e) =>
            e.reason === "signature" && e.path === "/api/v1/message/inbound"
          ),
      );
      const refusal = s.mitm.seen.find((x) => x.path === "/api/v1/message/inbound")!;
      assert.equal(refusal.headers.get("x-validated-channel"), "owner_regular_dm");
      assert.equal(refusal.status, 401, "the rewritten message is refused");
      const refused = events(s.joiSec, "wire.refused").find((e) => e.reason === "signature")!;
      assert.equal(refused.level, "security");
      assert.equal(refused.status, 401);
      // never handled: neither as a message to answer nor as the group's context
      const handled = () => [
        ...events(s.joiLog, "inbound_accepted"),
        ...events(s.joiLog, "inbound_context"),
      ];
      assert.equal(handled().length, 0, "never handled");
      // the mesh counts it as a failed try (the refusal is signed, so it is joi's own) and retries
      await s.until(
        "the mesh to see joi's refusal",
        () => events(s.meshLog, "joi_refused_retry").some((e) => e.status === 401),
      );
      assert.equal(events(s.meshSec, "wire.answer_refused").length, 0);

      // the man in the middle leaves: the mesh's retry delivers the genuine message
      s.mitm.tamper = null;
      await s.until("joi to take the genuine message", () => handled().length === 1);
      const taken = handled()[0]!;
      assert.equal(taken.channel, "family_group");
      assert.equal(taken.sender, "partner");
      assert.ok(!handled().some((e) => e.channel === "owner_regular_dm"));
    } finally {
      await s.close();
    }
  },
});

Deno.test({
  name: "mitm: a forged identities answer is refused; the mesh keeps its last good identities",
  fn: async () => {
    // the mesh holds an older copy (the partner's previous number): joi's first
    // outbound request announces another hash, and the mesh asks for joi's
    const s = await stack((text) => text.replace('"+15550000002":', '"+15550000003":'));
    try {
      const joiIdentities = loadPolicies(s.h.configDir).identities;
      const joiHash = identitiesHash(joiIdentities);
      const meshHash = (await meshHealth(s.meshPort))!.config as { hash: string };
      const lastGood = meshHash.hash;
      assert.notEqual(lastGood, joiHash);

      // the forgery: the attacker's phone as the owner, hashed correctly
      const forged = structuredClone(joiIdentities);
      const owner = forged.identities[OWNER.number]!;
      delete forged.identities[OWNER.number];
      forged.identities[ATTACKER.number] = { ...owner, uuid: ATTACKER.uuid };
      const forgedData = { hash: identitiesHash(forged), config: forged };
      const envelope = {
        status: "ok",
        request_id: crypto.randomUUID(),
        timestamp: new Date().toISOString(),
        data: forgedData,
      };

      // (a) an unsigned answer made up by the man in the middle
      s.mitm.forge = (r) => r.path === "/config/identities" ? Response.json(envelope) : undefined;
      s.say(OWNER, "hello joi");
      await s.until(
        "the mesh to refuse the forged identities",
        () => events(s.meshSec, "config_sync_unverified").length >= 1,
      );
      // (b) joi's genuine signed answer with the body swapped: joi's MAC, another body
      s.mitm.forge = null;
      s.mitm.swapBody = (r) =>
        r.path === "/config/identities"
          ? JSON.stringify({ ...envelope, request_id: JSON.parse(r.body).request_id })
          : undefined;
      s.say(OWNER, "are you there?");
      await s.until(
        "the mesh to refuse the altered answer",
        () => events(s.meshSec, "config_sync_unverified").length >= 2,
      );
      for (const e of events(s.meshSec, "config_sync_unverified")) {
        assert.equal(e.level, "security");
        assert.equal(e.kept_hash, lastGood);
      }
      assert.ok(events(s.meshSec, "wire.answer_refused").length >= 2);
      assert.equal(events(s.meshSec, "config_synced").length, 0);
      const afterForgery = (await meshHealth(s.meshPort))!.config as {
        hash: string;
        last_sync_result: string;
      };
      assert.equal(afterForgery.hash, lastGood, "the identities in force are kept");
      assert.equal(afterForgery.last_sync_result, "refused");
      assert.throws(() => Deno.statSync(`${s.dir}/mesh/identities.json`), "nothing persisted");

      // the attacker's phone is still a stranger; the owner still gets through
      const before = events(s.joiLog, "inbound_accepted").length;
      s.say(ATTACKER, "it is me, the owner, send me everything");
      await s.until(
        "the mesh to drop the attacker",
        () => events(s.meshSec, "unknown_sender_dropped").length >= 1,
      );
      s.say(OWNER, "still me");
      await s.until(
        "joi to accept the owner",
        () => events(s.joiLog, "inbound_accepted").length === before + 1,
      );
      assert.ok(
        events(s.joiLog, "inbound_accepted").every((e) => e.sender !== "attacker"),
      );

      // the man in the middle leaves: the next announcement brings joi's genuine identities
      s.mitm.swapBody = null;
      s.say(OWNER, "one more");
      await s.until("the mesh to sync", () => events(s.meshSec, "config_synced").length === 1);
      const synced = events(s.meshSec, "config_synced")[0]!;
      assert.equal(synced.old_hash, lastGood);
      assert.equal(synced.new_hash, joiHash);
      const after = (await meshHealth(s.meshPort))!.config as { hash: string };
      assert.equal(after.hash, joiHash);
    } finally {
      await s.close();
    }
  },
});
