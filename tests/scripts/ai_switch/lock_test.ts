import assert from "node:assert/strict";
import { acquireLock, LockTimeoutError } from "../../../scripts/ai_switch/lock.ts";

Deno.test("a second switch waits for the lock, then times out clearly", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/lock`;
    const first = await acquireLock(path, { timeoutMs: 1000 });
    assert.equal((await Deno.readTextFile(path)).trim(), `pid ${Deno.pid}`);
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    const waited: string[] = [];
    await assert.rejects(
      acquireLock(path, { timeoutMs: 50, onWait: (h) => waited.push(h) }),
      (e: Error) => {
        assert.ok(e instanceof LockTimeoutError);
        assert.match(e.message, /another ai-switch \(pid \d+\) still holds/);
        assert.match(e.message, /--lock-timeout/);
        return true;
      },
    );
    assert.deepEqual(waited, [`pid ${Deno.pid}`]);
    // A waiter that is still in time gets the lock once it is released.
    const second = acquireLock(path, { timeoutMs: 10_000 });
    first.release();
    (await second).release();
    // The abandoned waiter above took and released the lock once it came; it holds nothing now.
    const third = await acquireLock(path, { timeoutMs: 1000 });
    third.release();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an unusable lock path fails naming the path and the fix", async () => {
  await assert.rejects(
    acquireLock("/nonexistent-dir-ai-switch/lock", { timeoutMs: 10 }),
    /cannot open the lock file \/nonexistent-dir-ai-switch\/lock: .*--lock-file/,
  );
});
