/**
 * Config sync end to end, as root, with real processes started with their
 * manifest flags: the signal-cli test peer, the mesh, joi (with the LLM
 * stand-in), and joi-revoke-recipient on a provisioned household with real
 * users. After `revoke partner`, joi reloads (SIGHUP to its pid), the mesh
 * learns the new identities from joi without a restart, the partner's phone
 * is dropped and the owner still gets through.
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
  makeKeys,
  meshHealth,
  OWNER,
  PARTNER,
  writeConfigDir,
} from "../services/mesh/harness.ts";
import { stageHousehold } from "../scripts/validate/household.ts";
import { runRevoke } from "../scripts/revoke/harness.ts";
import { Child, waitUntil } from "./topology.ts";
import { logEvents } from "./process.ts";

function spawn(name: "joi" | "mesh", layout: Layout): Child {
  return new Child(name, "deno", denoRunArgs(programSpec(name, layout)), {
    env: { NO_COLOR: "1" },
  });
}

const named = logEvents;

/** Waits for `cond` (at most 60 s), failing early when a child exits. */
function until(what: string, cond: () => boolean | Promise<boolean>, children: Child[]) {
  return waitUntil(what, cond, 60_000, children);
}

const health = meshHealth;

Deno.test({
  name: "config sync: after revoke partner, the mesh drops the partner's phone without a restart",
  ignore: Deno.uid() !== 0,
  fn: async () => {
    const h = await stageHousehold({ accounts: "real" });
    const dir = await Deno.makeTempDir({ prefix: "joi-e2e-sync-" });
    const signalSock = await claimSocket();
    const llm = await LlmTestServer.start();
    const peer = SignalCliPeer.start({ path: signalSock.path });
    peer.groups = expectedGroups();
    const children: Child[] = [];
    try {
      await makeKeys(`${dir}/secrets`);
      await generateMemoryKeyFile(`${dir}/secrets/memory.key`);
      await writeConfigDir(`${dir}/mesh-config`);
      const llmUrl = new URL(llm.origin);
      const layout: Layout = {
        ...localLayout({ varDir: dir }),
        joiConfigDir: h.configDir,
        joiStateDir: `${dir}/joi`,
        meshConfigDir: `${dir}/mesh-config`,
        meshStateDir: `${dir}/mesh`,
        logDir: `${dir}/log`,
        secretsDir: () => `${dir}/secrets`,
        joiInbound: { host: "127.0.0.1", port: freePort() },
        joiIngest: { host: "127.0.0.1", port: freePort() },
        meshOutbound: { host: "127.0.0.1", port: freePort() },
        llm: { host: "127.0.0.1", port: Number(llmUrl.port) },
        signal: { kind: "socket", path: signalSock.path },
      };
      const joiLog = `${dir}/log/joi.log`;
      const meshLog = `${dir}/log/mesh.log`;
      const meshSec = `${dir}/log/mesh-security.log`;
      const joi = spawn("joi", layout);
      children.push(joi);
      const mesh = spawn("mesh", layout);
      children.push(mesh);
      await until(
        "joi to listen",
        async () => (await health(layout.joiInbound.port)) !== null,
        children,
      );
      await until("the mesh to reach signal-cli", async () => {
        const m = await health(layout.meshOutbound.port);
        return (m?.signal as { state?: string } | undefined)?.state === "connected";
      }, children);
      const meshPid = mesh.process.pid;

      const accepted = () => named(joiLog, "inbound_accepted");
      let ts = 1000;
      const say = (who: typeof OWNER, text: string) =>
        peer.push(dataEnvelope({ ...who, timestamp: ts++, text }));

      // before: both phones get through to joi
      say(OWNER, "owner before");
      await until("joi to accept the owner's DM", () => accepted().length === 1, children);
      say(PARTNER, "partner before");
      await until("joi to accept the partner's DM", () => accepted().length === 2, children);
      assert.deepEqual(accepted().map((e) => e.channel), [
        "owner_private_dm",
        "partner_private_dm",
      ]);

      // revoke partner; joi is told through a pid file holding its real pid
      const pidFile = `${h.root}/run/joi/joi.pid`;
      Deno.mkdirSync(`${h.root}/run/joi`, { recursive: true });
      Deno.writeTextFileSync(pidFile, `${joi.process.pid}\n`);
      const oldHash = named(meshLog, "mesh_started")[0]?.identities_hash;
      assert.equal(oldHash, identitiesHash(loadPolicies(h.configDir).identities));
      const r = await runRevoke(h, ["partner"], pidFile);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /joi told to reload \(\/usr\/bin\/kill -HUP \d+\)/);
      await until(
        "joi to reload its config",
        () => named(joiLog, "config_reloaded").length >= 1,
        children,
      );
      const newHash = identitiesHash(loadPolicies(h.configDir).identities);
      assert.notEqual(newHash, oldHash);

      // The next request from joi carries the new hash: its reply to the owner.
      // The mesh fetches the identities before handling that request.
      say(OWNER, "owner after");
      await until(
        "joi to accept the owner's DM after the revoke",
        () => accepted().length === 3,
        children,
      );
      await until(
        "the mesh to sync identities from joi's next request",
        () => named(meshSec, "config_synced").length === 1,
        children,
      );
      const synced = named(meshSec, "config_synced")[0];
      assert.equal(synced!.reason, "joi request carried a new X-Config-Hash");
      assert.equal(synced!.old_hash, oldHash);
      assert.equal(synced!.new_hash, newHash);
      assert.deepEqual(synced!.removed, ["partner"]);

      // from now on the mesh itself drops the partner: joi never sees the message
      say(PARTNER, "partner after");
      await until(
        "the mesh to drop the revoked sender",
        () => named(meshSec, "unknown_sender_dropped").length === 1,
        children,
      );
      assert.deepEqual(
        accepted().map((e) => e.channel),
        ["owner_private_dm", "partner_private_dm", "owner_private_dm"],
      );
      // no restart: the same mesh process did it all
      assert.equal(mesh.exited, false);
      assert.equal(mesh.process.pid, meshPid);
      // privacy: the mesh logged events, never the message texts
      const logText = Deno.readTextFileSync(meshLog) + Deno.readTextFileSync(meshSec);
      assert.ok(!logText.includes("partner after"), "message text must never be logged");
    } finally {
      await Promise.all(children.map((c) => c.stop("SIGTERM")));
      await peer.stop();
      await llm.close();
      signalSock.release();
      await Deno.remove(dir, { recursive: true });
      await h.cleanup();
    }
  },
});
