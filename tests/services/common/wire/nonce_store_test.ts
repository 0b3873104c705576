import assert from "node:assert/strict";
import { openNonceStore } from "../../../../services/common/wire/mod.ts";

Deno.test("nonce store: insert is true once, survives reopening, prunes after retention", async () => {
  const dir = await Deno.makeTempDir({ prefix: "joi-nonce-" });
  let t = 1_000_000;
  const now = () => t;
  try {
    const path = `${dir}/n.db`;
    let store = openNonceStore(path, 60_000, { now, pruneEveryMs: 0 });
    const a = crypto.randomUUID();
    assert.equal(store.insert(a), true);
    assert.equal(store.insert(a), false);
    assert.equal(store.seen(a), true);
    store.close();
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);

    store = openNonceStore(path, 60_000, { now, pruneEveryMs: 0 });
    assert.equal(store.insert(a), false, "a restart must not forget a nonce");
    t += 30_000;
    const b = crypto.randomUUID();
    assert.equal(store.insert(b), true);
    assert.equal(store.size(), 2);
    t += 30_001; // a is now older than the retention, b is not
    assert.equal(store.prune(), 1);
    assert.equal(store.seen(a), false);
    assert.equal(store.seen(b), true);
    store.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("nonce store: two handles on one file agree, exactly one insert wins", async () => {
  const dir = await Deno.makeTempDir({ prefix: "joi-nonce-" });
  try {
    const one = openNonceStore(`${dir}/n.db`, 60_000);
    const two = openNonceStore(`${dir}/n.db`, 60_000);
    let wins = 0;
    const nonce = crypto.randomUUID();
    for (let i = 0; i < 10; i++) {
      if ((i % 2 ? one : two).insert(nonce)) wins++;
    }
    assert.equal(wins, 1);
    one.close();
    two.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("nonce store: a bad retention or an unwritable path gives a clear error", () => {
  assert.throws(() => openNonceStore("/tmp/x.db", 0), /retention must be a positive/);
  assert.throws(
    () => openNonceStore("/nonexistent-dir/n.db", 1000),
    /cannot open the nonce store \/nonexistent-dir\/n.db/,
  );
});
