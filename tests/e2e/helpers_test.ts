/**
 * The end-to-end test's helpers, without root: the staging root of
 * `productionLayout` (default unchanged, every owned path prefixed, nothing
 * else), the `LoadCredential=` reader, the channel-user renaming, the
 * underlay address plan, and (as root) the sweep of a killed run's leftovers.
 */
import assert from "node:assert/strict";
import {
  denoRunArgs,
  productionLayout,
  programSpec,
} from "../../services/common/permissions/mod.ts";
import { loadPolicyFile } from "../../services/common/policy/mod.ts";
import { productionAddressesFrom, renderUnits } from "../../services/common/units/mod.ts";
import { ignoreUnless, isRoot } from "../_helpers/requires.ts";
import { forgetRun, recordRun, RUNS_DIR, sweepDeadRuns, undo } from "./leftovers.ts";
import {
  channelUsersOf,
  loadCredentials,
  plannedUsers,
  renameChannelUsers,
  stagePath,
  userPrefix,
} from "./stage.ts";
import { hostAddresses, sh } from "./topology.ts";

const addresses = productionAddressesFrom(
  loadPolicyFile("network", "policies/network.yaml"),
  loadPolicyFile("llm", "policies/llm.yaml"),
);

Deno.test("productionLayout: without a root the layout is the real system's", () => {
  const a = productionLayout(addresses);
  const b = productionLayout(addresses, {});
  for (const l of [a, b]) {
    assert.equal(l.codeDir, "/opt/joi");
    assert.equal(l.joiConfigDir, "/etc/joi");
    assert.equal(l.secretsDir("joi"), "/run/credentials/joi.service");
    assert.equal(l.retrieveSocketDir, "/run/joi-retrieve");
    assert.equal(l.retrieveBin, "/usr/local/bin/joi-retrieve");
  }
  for (const p of ["joi", "mesh", "openhab_relay", "retrieve"] as const) {
    assert.deepEqual(denoRunArgs(programSpec(p, b)), denoRunArgs(programSpec(p, a)));
  }
});

Deno.test("productionLayout: a root prefixes every path the layout owns, and nothing else", () => {
  const root = "/srv/stage/x";
  const real = productionLayout(addresses);
  const staged = productionLayout(addresses, { root: `${root}/` });
  const owned = [
    "codeDir",
    "joiConfigDir",
    "meshConfigDir",
    "relayConfigDir",
    "joiStateDir",
    "meshStateDir",
    "relayStateDir",
    "logDir",
    "retrieveBin",
    "retrieveSocketDir",
  ] as const;
  for (const k of owned) assert.equal(staged[k], `${root}${real[k]}`, k);
  for (const p of ["joi", "mesh", "openhab_relay"] as const) {
    assert.equal(staged.secretsDir(p), `${root}${real.secretsDir(p)}`);
  }
  // binaries, network endpoints and signal-cli's paths are not the layout's to move
  assert.equal(staged.sudoBin, real.sudoBin);
  assert.equal(staged.denoBin, real.denoBin);
  assert.deepEqual(staged.signal, real.signal);
  assert.equal(staged.signalAttachmentsDir, real.signalAttachmentsDir);
  assert.deepEqual(staged.joiInbound, real.joiInbound);
  assert.deepEqual(staged.llm, real.llm);
  assert.equal(staged.mode, "production");
  // a relative root would make the manifest's paths depend on the cwd
  assert.throws(() => productionLayout(addresses, { root: "var/stage/x" }), /absolute/);
});

Deno.test("loadCredentials reads the staged units' LoadCredential= lines", () => {
  const units = renderUnits(addresses, { serviceUser: "joi", channels: {} });
  const joi = units.find((u) => u.name === "joi.service")!;
  assert.deepEqual(loadCredentials(joi.text).map((c) => c.name).sort(), [
    "joi_to_mesh.key",
    "memory.key",
    "mesh_to_joi.key",
    "openhab_to_joi.key",
  ]);
  for (const c of loadCredentials(joi.text)) assert.equal(c.path, `/etc/joi/secrets/${c.name}`);
  assert.deepEqual(loadCredentials("[Service]\nExecStart=/bin/true\n"), []);
});

Deno.test("renameChannelUsers renames every shipped channel user, and only those", () => {
  const text = Deno.readTextFileSync("policies/channel_users.yaml");
  const shipped = channelUsersOf(text);
  assert.equal(shipped.length, 6);
  const renamed = channelUsersOf(renameChannelUsers(text, "jab12c"));
  assert.deepEqual(renamed, shipped.map((u) => u.replace(/^joi-/, "jab12c-")));
  const recipients = renameChannelUsers(
    Deno.readTextFileSync("policies/recipients.yaml"),
    "jab12c",
  );
  assert.match(recipients, /^service_user: joi\b/m, "the service user keeps its name");
  assert.ok(!/\bjoi-[a-z]/.test(recipients), "no shipped account name is left");
});

Deno.test("hostAddresses: the first hosts of the underlay, refusing what does not fit", () => {
  assert.deepEqual(hostAddresses("10.99.0.0/29", 3), {
    ips: ["10.99.0.1", "10.99.0.2", "10.99.0.3"],
    prefix: 29,
  });
  assert.throws(() => hostAddresses("10.99.0.0/30", 3), /fewer than 3/);
  assert.throws(() => hostAddresses("10.99.0.0", 3), /not an IPv4 CIDR/);
});

Deno.test({
  name: "sweepDeadRuns removes what a killed run wrote down, and leaves live runs alone",
  ignore: ignoreUnless([isRoot(), "root"]),
  fn: async () => {
    const tag = `sw${crypto.randomUUID().slice(0, 4)}`;
    const ns = `je2e${tag}x`;
    const user = `${userPrefix(tag)}-swept`;
    const stage = `${stagePath(tag)}`;
    // a run that died: its pid is that of a finished child
    const dead = new Deno.Command("sh", { args: ["-c", "true"] }).spawn();
    await dead.status;
    const liveTag = `${tag}live`;
    try {
      await sh("ip", ["netns", "add", ns]);
      await sh("useradd", ["--system", "--user-group", "--no-create-home", user]);
      await Deno.mkdir(`${stage}/opt/joi`, { recursive: true });
      await recordRun(tag, { pid: dead.pid, namespaces: [ns], users: [user], stage });
      await recordRun(liveTag, { pid: Deno.pid, namespaces: [ns], users: [user], stage });
      const swept = await sweepDeadRuns();
      assert.ok(swept.includes(`${tag}.json`), swept.join(", "));
      assert.ok(!(await sh("ip", ["netns", "list"])).stdout.includes(ns), "namespace gone");
      assert.notEqual((await sh("getent", ["passwd", user], false)).code, 0, "user gone");
      assert.notEqual((await sh("getent", ["group", user], false)).code, 0, "group gone");
      assert.throws(() => Deno.statSync(stage), Deno.errors.NotFound);
      assert.throws(() => Deno.statSync(`${RUNS_DIR}/${tag}.json`), Deno.errors.NotFound);
      // this process is alive: its record stays
      assert.ok(Deno.statSync(`${RUNS_DIR}/${liveTag}.json`).isFile);
    } finally {
      await forgetRun(liveTag);
      await undo({ pid: dead.pid, namespaces: [ns], users: [user], stage });
      await forgetRun(tag);
    }
  },
});

Deno.test("plannedUsers names exactly the users the stage creates for a tag", () => {
  const text = Deno.readTextFileSync("policies/channel_users.yaml");
  const users = plannedUsers("abcdef12", text);
  assert.equal(users.length, channelUsersOf(text).length);
  for (const u of users) assert.match(u, /^jabcde-[a-z-]+$/);
});
