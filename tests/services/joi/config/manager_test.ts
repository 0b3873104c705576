import assert from "node:assert/strict";
import { createLogger, memorySink } from "../../../../services/common/log.ts";
import { identitiesHash, loadPolicies } from "../../../../services/common/policy/mod.ts";
import { ConfigManager, parsePasswd } from "../../../../services/joi/config/mod.ts";

const USERS = [
  "joi-owner-private",
  "joi-owner-public",
  "joi-partner-private",
  "joi-partner-public",
  "joi-critical",
];

async function setup(extraUsers: string[]) {
  const dir = await Deno.makeTempDir({ prefix: "joi-config-" });
  for await (const e of Deno.readDir("./policies")) {
    if (e.isFile) await Deno.copyFile(`./policies/${e.name}`, `${dir}/${e.name}`);
  }
  const passwd = `${dir}/passwd`;
  const writePasswd = (users: string[]) =>
    Deno.writeTextFile(
      passwd,
      [
        "root:x:0:0:root:/root:/bin/bash",
        ...users.map((u, i) => `${u}:x:${2000 + i}:${2000 + i}::/nonexistent:/usr/sbin/nologin`),
      ]
        .join("\n") + "\n",
    );
  await writePasswd([...USERS, ...extraUsers]);
  const sink = memorySink();
  const alerts: string[] = [];
  const manager = await ConfigManager.create({
    load: () => loadPolicies(dir),
    hash: identitiesHash,
    requireSystemUsers: true,
    passwdPath: passwd,
    log: createLogger("joi", { sinks: [sink], quiet: true }),
  });
  manager.onAlert((m) => alerts.push(m));
  return { dir, manager, alerts, logs: sink.lines, writePasswd };
}

/** Renames the family group's user consistently in every policy file (a valid change). */
async function renameFamilyUser(dir: string, to: string) {
  for await (const e of Deno.readDir(dir)) {
    if (!/\.ya?ml$/.test(e.name)) continue;
    const text = await Deno.readTextFile(`${dir}/${e.name}`);
    await Deno.writeTextFile(`${dir}/${e.name}`, text.replace(/joi-family(?!-)/g, to));
  }
}

async function hup(): Promise<void> {
  const out = await new Deno.Command("kill", { args: ["-HUP", String(Deno.pid)] }).output();
  assert.equal(out.code, 0);
}

async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 1000 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(cond(), "the reload did not happen");
}

Deno.test("config: SIGHUP with a broken channel file keeps the old config and alerts; a valid one applies", async () => {
  const t = await setup(["joi-family", "joi-household"]);
  const stop = t.manager.listenSighup();
  try {
    assert.equal(t.manager.channelUser("family_group"), "joi-family");
    const before = t.manager.current();
    // broken: YAML that does not parse
    const good = await Deno.readTextFile(`${t.dir}/channel_users.yaml`);
    await Deno.writeTextFile(
      `${t.dir}/channel_users.yaml`,
      "allowed_channel_users:\n  family_group: [unclosed\n",
    );
    await hup();
    await until(() => t.manager.status().last_reload_error !== undefined);
    assert.equal(t.manager.current(), before, "the old snapshot stays in force");
    assert.equal(t.manager.channelUser("family_group"), "joi-family");
    assert.match(t.manager.status().last_reload_error!, /channel_users\.yaml:\d+:\d+/);
    assert.equal(t.alerts.length, 1);
    assert.ok(t.logs.some((l) => l.event === "config_reload_refused"));
    // valid: the family user renamed everywhere, and it exists on the system
    await Deno.writeTextFile(`${t.dir}/channel_users.yaml`, good);
    await renameFamilyUser(t.dir, "joi-household");
    await hup();
    await until(() => t.manager.current().generation === 2);
    assert.equal(t.manager.channelUser("family_group"), "joi-household");
    assert.equal(t.manager.status().last_reload_error, undefined);
    // unknown channels stay denied
    assert.equal(t.manager.channelUser("toString"), undefined);
    assert.equal(t.manager.channelUser("stranger_group"), undefined);
  } finally {
    stop();
    await Deno.remove(t.dir, { recursive: true });
  }
});

Deno.test("config: a reload naming a user that does not exist on the system is refused", async () => {
  const t = await setup(["joi-family"]);
  try {
    await renameFamilyUser(t.dir, "joi-ghost");
    const r = await t.manager.reload();
    assert.equal(r.ok, false);
    assert.match((r as { error: string }).error, /joi-ghost/);
    assert.equal(t.manager.channelUser("family_group"), "joi-family");
    await t.writePasswd([...USERS, "joi-family", "joi-ghost"]);
    assert.deepEqual(await t.manager.reload(), { ok: true, generation: 2 });
    assert.equal(t.manager.channelUser("family_group"), "joi-ghost");
  } finally {
    await Deno.remove(t.dir, { recursive: true });
  }
});

Deno.test("config: missing users at start: hard error when required, warning on /health otherwise", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/passwd`, "root:x:0:0:root:/root:/bin/bash\n");
    const base = {
      load: () => loadPolicies("./policies"),
      hash: identitiesHash,
      passwdPath: `${dir}/passwd`,
      log: createLogger("joi", { quiet: true }),
    };
    await assert.rejects(
      ConfigManager.create({ ...base, requireSystemUsers: true }),
      /do not exist on this system/,
    );
    const local = await ConfigManager.create({ ...base, requireSystemUsers: false });
    assert.equal(local.status().missing_channel_users.length, 6);
    assert.equal(local.channelUser("owner_private_dm"), "joi-owner-private");
    assert.deepEqual([...parsePasswd("a:x:1:1::/:/bin/sh\n# c\nbad line\n")], ["a"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
