import { DatabaseSync } from "node:sqlite";
import assert from "node:assert/strict";
import {
  type ChainRecord,
  generateMemoryKeyFile,
  GENESIS_HASH,
  loadMemoryKey,
  MemoryKeyError,
  MemoryStores,
  recordHash,
  verifyAll,
} from "../../../../services/joi/memory/mod.ts";

const RECIPIENTS = {
  recipients: { owner: {}, partner: {} },
  groups: { family: {}, critical: {} },
};

async function setup() {
  const dir = await Deno.makeTempDir({ prefix: "joi-memory-" });
  await Deno.mkdir(`${dir}/secrets`, { mode: 0o700 });
  await generateMemoryKeyFile(`${dir}/secrets/memory.key`);
  const key = await loadMemoryKey(`${dir}/secrets`);
  let clock = Date.UTC(2026, 0, 1);
  const stores = new MemoryStores({
    stateDir: `${dir}/state`,
    recipients: RECIPIENTS,
    key,
    now: () => clock,
  });
  return {
    dir,
    stores,
    key,
    advance: (ms: number) => (clock += ms),
    async cleanup() {
      stores.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

async function sqlite(path: string, sql: string): Promise<void> {
  const out = await new Deno.Command("sqlite3", {
    args: [path, sql],
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
}

Deno.test("memory: turns round-trip encrypted, per channel file per the data/ tree", async () => {
  const t = await setup();
  try {
    const s = t.stores.store("owner_private_dm");
    await s.appendTurn({ conversationId: "c", role: "user", sender: "owner", text: "hello joi" });
    await s.appendTurn({ conversationId: "c", role: "assistant", sender: "joi", text: "hi" });
    const conv = await s.conversation("c");
    assert.deepEqual(conv.turns.map((x) => x.text), ["hello joi", "hi"]);
    await Deno.stat(`${t.dir}/state/data/owner/private.db`);
    t.stores.store("family_group");
    await Deno.stat(`${t.dir}/state/data/group/family.db`);
    t.stores.store("critical_group");
    await Deno.stat(`${t.dir}/state/data/critical.db`);
    assert.throws(() => t.stores.store("stranger_dm"), /no store for channel/);
    const mode = (await Deno.stat(`${t.dir}/state/data/owner/private.db`)).mode! & 0o777;
    assert.equal(mode, 0o600);
  } finally {
    await t.cleanup();
  }
});

Deno.test("memory: the database files never contain a message's plaintext", async () => {
  const t = await setup();
  try {
    const secret = "my bank PIN is 4921 and the spare key is under the blue pot";
    const s = t.stores.store("owner_private_dm");
    await s.appendTurn({ conversationId: "c", role: "user", sender: "owner", text: secret });
    await s.appendFact({ conversationId: "c", sender: "owner", text: secret });
    await s.appendSummary({ conversationId: "c", text: secret, coversThroughId: 1 });
    const dataDir = `${t.dir}/state/data/owner`;
    let scanned = 0;
    for await (const e of Deno.readDir(dataDir)) {
      const bytes = await Deno.readFile(`${dataDir}/${e.name}`);
      const text = new TextDecoder("latin1").decode(bytes);
      assert.ok(!text.includes("blue pot"), `${e.name} holds plaintext`);
      assert.ok(!text.includes("4921"), `${e.name} holds plaintext`);
      scanned += bytes.length;
    }
    assert.ok(scanned > 0);
    // and it does decrypt with the key
    assert.equal((await s.conversation("c")).summary?.text, secret);
  } finally {
    await t.cleanup();
  }
});

Deno.test("memory: a wrong key cannot read the store", async () => {
  const t = await setup();
  try {
    await t.stores.store("owner_private_dm").appendTurn({
      conversationId: "c",
      role: "user",
      sender: "owner",
      text: "x",
    });
    t.stores.close();
    await generateMemoryKeyFile(`${t.dir}/secrets/other.key`);
    const other = await loadMemoryKey(`${t.dir}/secrets`, "other.key");
    const stores = new MemoryStores({
      stateDir: `${t.dir}/state`,
      recipients: RECIPIENTS,
      key: other,
    });
    await assert.rejects(stores.store("owner_private_dm").conversation("c"), MemoryKeyError);
    stores.close();
  } finally {
    await Deno.remove(t.dir, { recursive: true });
  }
});

Deno.test("memory: a ciphertext copied to another record does not decrypt (AAD binds id)", async () => {
  const t = await setup();
  try {
    const s = t.stores.store("owner_private_dm");
    await s.appendTurn({ conversationId: "c", role: "user", sender: "owner", text: "first" });
    await s.appendTurn({ conversationId: "c", role: "user", sender: "owner", text: "second" });
    t.stores.close();
    await sqlite(
      `${t.dir}/state/data/owner/private.db`,
      "UPDATE memory_records SET nonce=(SELECT nonce FROM memory_records WHERE id=1), " +
        "ciphertext=(SELECT ciphertext FROM memory_records WHERE id=1) WHERE id=2",
    );
    const stores = new MemoryStores({
      stateDir: `${t.dir}/state`,
      recipients: RECIPIENTS,
      key: t.key,
    });
    await assert.rejects(stores.store("owner_private_dm").conversation("c"), /decryption failed/);
    stores.close();
  } finally {
    await Deno.remove(t.dir, { recursive: true });
  }
});

Deno.test("memory: a key file readable by others is refused", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await generateMemoryKeyFile(`${dir}/memory.key`);
    await Deno.chmod(`${dir}/memory.key`, 0o644);
    await assert.rejects(loadMemoryKey(dir), /chmod 600/);
    await assert.rejects(loadMemoryKey(`${dir}/nope`), /does not exist/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

async function fill(t: Awaited<ReturnType<typeof setup>>, n: number) {
  const s = t.stores.store("owner_private_dm");
  for (let i = 1; i <= n; i++) {
    await s.appendTurn({
      conversationId: "c",
      role: i % 2 ? "user" : "assistant",
      sender: "owner",
      text: `m${i}`,
    });
  }
  return s;
}

function reportOf(
  t: { dir: string; key: { chainKey: Uint8Array } },
  channel = "owner_private_dm",
) {
  const r = verifyAll(`${t.dir}/state`, RECIPIENTS, t.key.chainKey).find((x) =>
    x.channel === channel
  );
  assert.ok(r);
  return r;
}

Deno.test("memory verify: passes on an untouched store", async () => {
  const t = await setup();
  try {
    await fill(t, 12);
    t.stores.close();
    const all = verifyAll(`${t.dir}/state`, RECIPIENTS, t.key.chainKey);
    assert.ok(all.every((r) => r.ok), JSON.stringify(all));
    assert.equal(reportOf(t).records, 12);
  } finally {
    await Deno.remove(t.dir, { recursive: true });
  }
});

Deno.test("memory verify: pinpoints a record edited with the sqlite3 shell", async () => {
  const t = await setup();
  try {
    await fill(t, 12);
    t.stores.close();
    await sqlite(
      `${t.dir}/state/data/owner/private.db`,
      "UPDATE memory_records SET sender='partner' WHERE id=7",
    );
    const r = reportOf(t);
    assert.equal(r.ok, false);
    assert.equal(r.broken?.id, 7);
    assert.match(r.broken!.reason, /altered/);
    assert.notEqual(r.broken!.expected, r.broken!.found);
  } finally {
    await Deno.remove(t.dir, { recursive: true });
  }
});

Deno.test("memory verify: an edited ciphertext, a deleted middle record, deleted newest records", async () => {
  const t = await setup();
  try {
    await fill(t, 10);
    t.stores.close();
    const db = `${t.dir}/state/data/owner/private.db`;
    await Deno.copyFile(db, `${db}.orig`);
    await sqlite(
      db,
      "UPDATE memory_records SET ciphertext='AAAA'||substr(ciphertext,5) WHERE id=3",
    );
    assert.equal(reportOf(t).broken?.id, 3);
    await Deno.copyFile(`${db}.orig`, db);
    await sqlite(db, "DELETE FROM memory_records WHERE id=5");
    const mid = reportOf(t);
    assert.equal(mid.broken?.id, 6);
    assert.match(mid.broken!.reason, /#5\.\.#5 were deleted/);
    await Deno.copyFile(`${db}.orig`, db);
    await sqlite(db, "DELETE FROM memory_records WHERE id>=9");
    const tail = reportOf(t);
    assert.equal(tail.broken?.id, 9);
    assert.match(tail.broken!.reason, /newest/);
    await Deno.copyFile(`${db}.orig`, db);
    await sqlite(db, "DELETE FROM memory_records WHERE id<=2");
    const head = reportOf(t);
    assert.equal(head.broken?.id, 3);
    assert.match(head.broken!.reason, /no prune record/);
    await Deno.copyFile(`${db}.orig`, db);
    assert.equal(reportOf(t).ok, true);
  } finally {
    await Deno.remove(t.dir, { recursive: true });
  }
});

Deno.test("memory prune: retention deletes old records and the chain stays valid", async () => {
  const t = await setup();
  try {
    const s = await fill(t, 5); // day 0
    t.advance(10 * 86_400_000);
    for (let i = 0; i < 3; i++) {
      await s.appendTurn({ conversationId: "c", role: "user", sender: "owner", text: `late${i}` });
    }
    t.advance(86_400_000);
    const res = await s.prune(5);
    assert.equal(res.deleted, 5);
    assert.equal(s.count(), 4); // 3 kept turns + the prune record
    assert.deepEqual((await s.conversation("c")).turns.map((x) => x.text), [
      "late0",
      "late1",
      "late2",
    ]);
    assert.equal(reportOf(t).ok, true, JSON.stringify(reportOf(t)));
    // a second prune that removes everything, including the first prune record
    t.advance(30 * 86_400_000);
    await s.appendTurn({ conversationId: "c", role: "user", sender: "owner", text: "after" });
    t.advance(30 * 86_400_000);
    const all = await s.prune(5);
    assert.equal(all.deleted, 5);
    assert.equal(s.count(), 1);
    await s.appendTurn({ conversationId: "c", role: "user", sender: "owner", text: "new" });
    assert.equal(reportOf(t).ok, true, JSON.stringify(reportOf(t)));
    // nothing old enough: no prune record
    assert.deepEqual(await s.prune(5), { deleted: 0 });
    // retention figures per channel from the policy
    const n = await t.stores.pruneAll({ owner_private_dm: 365 });
    assert.deepEqual(n, { owner_private_dm: 0 });
    t.stores.close();
    // tampering with a prune record is caught
    await sqlite(
      `${t.dir}/state/data/owner/private.db`,
      "UPDATE memory_records SET meta=replace(meta,'\"deleted\":5','\"deleted\":1') WHERE kind='prune'",
    );
    assert.equal(reportOf(t).ok, false);
  } finally {
    await Deno.remove(t.dir, { recursive: true });
  }
});

Deno.test("memory: a write after records were deleted outside joi is refused loudly", async () => {
  const t = await setup();
  try {
    await fill(t, 4);
    t.stores.close();
    await sqlite(`${t.dir}/state/data/owner/private.db`, "DELETE FROM memory_records WHERE id=4");
    const stores = new MemoryStores({
      stateDir: `${t.dir}/state`,
      recipients: RECIPIENTS,
      key: t.key,
    });
    await assert.rejects(
      stores.store("owner_private_dm").appendTurn({
        conversationId: "c",
        role: "user",
        sender: "owner",
        text: "x",
      }),
      /deleted outside joi/,
    );
    stores.close();
  } finally {
    await Deno.remove(t.dir, { recursive: true });
  }
});

Deno.test("memory verify: a deletion hidden by rebuilding the chain without the key is caught", async () => {
  const t = await setup();
  try {
    await fill(t, 12);
    t.stores.close();
    // The attacker can write both databases but does not hold memory.key: they
    // delete record 5 and recompute every later link and the head anchor with
    // a key of their own (a keyless sha256 chain would be rebuilt exactly so).
    const forgedKey = crypto.getRandomValues(new Uint8Array(32));
    const db = new DatabaseSync(`${t.dir}/state/data/owner/private.db`);
    db.exec("DELETE FROM memory_records WHERE id=5");
    const rows = db.prepare("SELECT * FROM memory_records ORDER BY id")
      .all() as unknown as ChainRecord[];
    let prev = GENESIS_HASH;
    for (const r of rows) {
      const { hash: _old, ...rest } = { ...r, prev_hash: prev };
      const hash = recordHash(rest, forgedKey);
      db.prepare("UPDATE memory_records SET prev_hash = ?, hash = ? WHERE id = ?").run(
        prev,
        hash,
        r.id,
      );
      prev = hash;
    }
    db.close();
    const state = new DatabaseSync(`${t.dir}/state/joi.db`);
    state.prepare("UPDATE memory_chain_heads SET last_hash = ? WHERE channel = ?").run(
      prev,
      "owner_private_dm",
    );
    state.close();

    const r = reportOf(t);
    assert.equal(r.ok, false, "the rebuilt chain must not verify");
    assert.equal(r.broken?.id, 1, "the first re-keyed link is reported");
    assert.match(r.broken!.reason, /altered/);
  } finally {
    await Deno.remove(t.dir, { recursive: true });
  }
});

Deno.test("memory verify: removing the chain-head anchor cannot hide a tail deletion", async () => {
  for (const removeAnchor of ["DROP TABLE memory_chain_heads", "delete joi.db"]) {
    const t = await setup();
    try {
      await fill(t, 12);
      t.stores.close();
      await sqlite(
        `${t.dir}/state/data/owner/private.db`,
        "DELETE FROM memory_records WHERE id>=10",
      );
      if (removeAnchor === "delete joi.db") {
        for (const f of ["joi.db", "joi.db-wal", "joi.db-shm"]) {
          await Deno.remove(`${t.dir}/state/${f}`).catch(() => {});
        }
      } else {
        await sqlite(`${t.dir}/state/joi.db`, removeAnchor);
      }
      const r = reportOf(t);
      assert.equal(r.ok, false, removeAnchor);
      assert.equal(r.broken?.id, 9, removeAnchor);
      assert.match(r.broken!.reason, /no chain head is anchored/);
      // a channel that never held a record needs no anchor
      assert.equal(reportOf(t, "family_group").ok, true);
    } finally {
      await Deno.remove(t.dir, { recursive: true });
    }
  }
});
