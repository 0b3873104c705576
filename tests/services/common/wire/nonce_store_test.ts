/**
 * The replay guard (nonce_store.ts): nonces, the durable ceiling and the
 * floor it leaves for the next run, dated-ahead nonces, segments, and a power
 * cut simulated by dropping every write that was not synced.
 */
import assert from "node:assert/strict";
import { openNonceStore } from "../../../../services/common/wire/mod.ts";

async function withDir(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "joi-nonce-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const claim = async (s: ReturnType<typeof openNonceStore>, nonce: string, ts: number) =>
  await s.claim(nonce, ts);

Deno.test("replay guard: a nonce is fresh once; the next run refuses what this run may have accepted", async () => {
  await withDir(async (dir) => {
    let t = 1_767_225_600_000;
    const now = () => t;
    const path = `${dir}/n.journal`;
    let store = openNonceStore(path, 60_000, { now, pruneEveryMs: 0 });
    assert.equal(store.floor, -Infinity, "a first run has nothing to refuse");
    const a = crypto.randomUUID();
    assert.equal(await claim(store, a, t), "fresh");
    assert.equal(await claim(store, a, t), "replay");
    assert.equal(store.seen(a), true);
    // a claim at or below the durable ceiling writes nothing and answers at once
    assert.equal(store.claim(crypto.randomUUID(), t + 500), "fresh");
    store.close();
    const files = [...Deno.readDirSync(dir)].map((e) => e.name);
    assert.equal(files.length, 1);
    assert.equal((await Deno.stat(`${dir}/${files[0]}`)).mode! & 0o777, 0o600);

    // the next run: everything signed up to the last ceiling is refused, nonces or not
    t += 100;
    store = openNonceStore(path, 60_000, { now, pruneEveryMs: 0 });
    assert.ok(store.floor >= t, `floor ${store.floor} covers what the last run let through`);
    assert.equal(await claim(store, a, t - 100), "before_restart");
    assert.equal(await claim(store, crypto.randomUUID(), t), "before_restart");
    assert.equal(await claim(store, crypto.randomUUID(), store.floor + 1), "fresh");
    store.close();
  });
});

Deno.test("replay guard: nonces dated ahead of the clock are journaled and refused after a restart", async () => {
  await withDir(async (dir) => {
    let t = 1_767_225_600_000;
    const now = () => t;
    const path = `${dir}/n.journal`;
    let store = openNonceStore(path, 900_000, { now, ceilingStepMs: 1000 });
    const ahead = crypto.randomUUID();
    // a client clock 4 minutes fast (within the tolerance)
    assert.equal(await claim(store, ahead, t + 240_000), "fresh");
    store.close();
    t += 5_000;
    store = openNonceStore(path, 900_000, { now, ceilingStepMs: 1000 });
    assert.ok(store.floor < t + 1000, "a fast client does not push the floor into the future");
    assert.equal(await claim(store, ahead, t + 240_000), "replay");
    assert.equal(await claim(store, crypto.randomUUID(), t), "fresh");
    store.close();
  });
});

Deno.test("replay guard: concurrent claims share one synced write; exactly one claim of a nonce wins", async () => {
  await withDir(async (dir) => {
    const store = openNonceStore(`${dir}/n.journal`, 60_000);
    const now = Date.now();
    const nonces = Array.from({ length: 200 }, () => crypto.randomUUID());
    const results = await Promise.all(
      [...nonces, ...nonces].map((n) => Promise.resolve(store.claim(n, now))),
    );
    assert.equal(results.filter((r) => r === "fresh").length, 200);
    assert.equal(results.filter((r) => r === "replay").length, 200);
    store.close();
    const lines = Deno.readTextFileSync(`${dir}/${[...Deno.readDirSync(dir)][0]!.name}`)
      .trim().split("\n");
    assert.ok(lines.length <= 3, `one ceiling write for 400 claims, got ${lines.length} lines`);
  });
});

Deno.test("replay guard: under steady traffic no claim waits for the disk; about one synced write per step", async () => {
  await withDir(async (dir) => {
    let t = 1_767_225_600_000;
    const path = `${dir}/n.journal`;
    const store = openNonceStore(path, 900_000, { now: () => t, ceilingStepMs: 1000 });
    // the first claim of a run (or after a quiet spell) waits for one sync
    assert.ok(store.claim(crypto.randomUUID(), t) instanceof Promise);
    await new Promise((r) => setTimeout(r, 20));
    let waited = 0;
    for (let i = 0; i < 100; i++) {
      t += 100; // 10 requests/s for 10 s, each signed "now"
      const r = store.claim(crypto.randomUUID(), t);
      if (typeof r !== "string") waited++;
      assert.equal(await r, "fresh");
      await new Promise((r) => setTimeout(r, 5)); // the disk gets its turn
    }
    assert.equal(waited, 0, "a request waited for a sync under steady traffic");
    store.close();
    const ceilings = Deno.readTextFileSync(`${dir}/${[...Deno.readDirSync(dir)][0]!.name}`)
      .trim().split("\n").filter((l) => l.startsWith("ceiling "));
    assert.ok(ceilings.length >= 9 && ceilings.length <= 12, `${ceilings.length} ceiling writes`);
    // and the next run still refuses everything this run let through
    const next = openNonceStore(path, 900_000, { now: () => t });
    assert.ok(next.floor >= t, `floor ${next.floor} below the last accepted timestamp ${t}`);
    next.close();
  });
});

Deno.test("replay guard: retention prunes nonces and deletes old segments, keeping the ceiling", async () => {
  await withDir(async (dir) => {
    let t = 1_767_225_600_000;
    const now = () => t;
    const path = `${dir}/n.journal`;
    const store = openNonceStore(path, 60_000, { now, pruneEveryMs: 0 });
    const a = crypto.randomUUID();
    assert.equal(await claim(store, a, t), "fresh");
    t += 30_000;
    const b = crypto.randomUUID();
    assert.equal(await claim(store, b, t), "fresh");
    assert.equal(store.size(), 2);
    t += 30_001; // a is now older than the retention, b is not
    assert.equal(store.prune(), 1);
    assert.equal(store.seen(a), false);
    assert.equal(store.seen(b), true);
    t += 240_000;
    assert.equal(await claim(store, crypto.randomUUID(), t), "fresh");
    store.prune();
    const segments = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    assert.equal(segments.length, 1, `old segments deleted: ${segments}`);
    store.close();
    const reopened = openNonceStore(path, 60_000, { now });
    assert.ok(reopened.floor >= t, "the newest segment carries the ceiling");
    reopened.close();
  });
});

Deno.test("replay guard: a power cut loses only unsynced writes, and nothing acted on one", async () => {
  // Model the page cache: writes land in memory, syncData makes them durable,
  // and the "power cut" throws away whatever was not synced. A request acts
  // only once its claim resolved; after the cut, no acted request is accepted again.
  await withDir(async (dir) => {
    const path = `${dir}/n.journal`;
    const durable = new Map<string, string>();
    const volatile = new Map<string, string>();
    const realOpen = Deno.open;
    // deno-lint-ignore no-explicit-any
    (Deno as any).open = async (p: string | URL, o: Deno.OpenOptions) => {
      const f = await realOpen(p, o);
      const name = String(p);
      if (!name.startsWith(dir) || name === dir) return f;
      return {
        write: (b: Uint8Array) => {
          volatile.set(
            name,
            (volatile.get(name) ?? durable.get(name) ?? "") + new TextDecoder().decode(b),
          );
          return Promise.resolve(b.length);
        },
        syncData: () => {
          durable.set(name, volatile.get(name) ?? durable.get(name) ?? "");
          return Promise.resolve();
        },
        close: () => f.close(),
      };
    };
    const acted: { nonce: string; ts: number }[] = [];
    let snapshot = new Map<string, string>();
    let t = 1_767_225_600_000;
    try {
      const store = openNonceStore(path, 900_000, { now: () => t, ceilingStepMs: 50 });
      for (let i = 0; i < 60; i++) {
        t += 37;
        const nonce = crypto.randomUUID();
        const ts = t + (i % 7 === 0 ? 120_000 : 0); // some dated ahead: journaled
        const r = store.claim(nonce, ts);
        if (i === 45) {
          // the cut strikes now: this claim's write (if any) is in flight, unsynced
          snapshot = new Map(durable);
          void Promise.resolve(r).catch(() => {});
          break;
        }
        assert.equal(await r, "fresh");
        acted.push({ nonce, ts });
      }
      store.close();
    } finally {
      (Deno as unknown as { open: typeof Deno.open }).open = realOpen;
    }
    // after the cut only what was durable at that moment is on disk
    for (const e of Deno.readDirSync(dir)) Deno.removeSync(`${dir}/${e.name}`);
    for (const [name, text] of snapshot) Deno.writeTextFileSync(name, text);
    const after = openNonceStore(path, 900_000, { now: () => t + 1000 });
    assert.ok(acted.length === 45);
    for (const { nonce, ts } of acted) {
      const r = await after.claim(nonce, ts);
      assert.notEqual(r, "fresh", `request ${nonce} acted before the cut and was accepted again`);
    }
    after.close();
  });
});

Deno.test("replay guard: a bad retention or an unwritable path gives a clear error", () => {
  assert.throws(() => openNonceStore("/tmp/x.journal", 0), /retention must be a positive/);
  assert.throws(
    () => openNonceStore("/nonexistent-dir/n.journal", 1000),
    /cannot open the nonce store \/nonexistent-dir\/n.journal/,
  );
});
