import assert from "node:assert/strict";
import { acquireLock, checkLockDir, LockTimeoutError } from "../../../scripts/ai_switch/lock.ts";
import { DEFAULT_LOCK_FILE } from "../../../scripts/ai_switch/cli.ts";
import { ignoreUnless, isRoot } from "../../_helpers/requires.ts";

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
  const dir = await Deno.makeTempDir();
  try {
    await assert.rejects(
      acquireLock(`${dir}/no-such/deeper/lock`, { timeoutMs: 10 }),
      /cannot create the lock's folder \/.*\/no-such\/deeper: .*--lock-file/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the lock's folder: created 0700 if missing; one others may write is refused", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // missing: created, closed to others
    const fresh = `${dir}/run-anklume`;
    const lock = await acquireLock(`${fresh}/ai-switch.lock`, { timeoutMs: 100 });
    lock.release();
    assert.equal((await Deno.lstat(fresh)).mode! & 0o777, 0o700);
    // world-writable with the sticky bit, like /run/lock: any user could create the
    // lock file first and block every switch
    const open = `${dir}/lock-1777`;
    await Deno.mkdir(open);
    await Deno.chmod(open, 0o1777);
    await assert.rejects(
      () => acquireLock(`${open}/ai-switch.lock`, { timeoutMs: 100 }),
      /lets another user create the lock file and block every switch: chown root .* chmod 0700/,
    );
    await Deno.chmod(open, 0o770);
    await assert.rejects(() => acquireLock(`${open}/ai-switch.lock`, { timeoutMs: 100 }));
    await assert.rejects(() => checkLockDir(`${dir}/no-such/deeper`), /cannot create/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the default lock is in a root-only folder, not world-writable /run/lock", () => {
  assert.equal(DEFAULT_LOCK_FILE, "/run/anklume/ai-switch.lock");
});

Deno.test({
  name: "nothing found at the lock's name is written through: symlink, FIFO, hard link refused",
  ignore: ignoreUnless([isRoot(), "root"]),
  async fn() {
    // Deno resolves symlinks itself, so the kernel's protected_symlinks never applies:
    // before, a symlink at the lock's name (any local user could plant one in /run/lock)
    // made root truncate its target
    const dir = Deno.makeTempDirSync({ prefix: "joi-lock-" });
    try {
      const victim = `${dir}/shadow`;
      const secret = "root:$y$secret:19000::::::\n";
      Deno.writeTextFileSync(victim, secret, { mode: 0o640 });
      Deno.mkdirSync(`${dir}/lock`, { mode: 0o700 });
      const lock = `${dir}/lock/anklume-ai-switch.lock`;
      const sh = (line: string) =>
        assert.ok(new Deno.Command("sh", { args: ["-c", line] }).outputSync().success, line);
      const cases: [string, string, RegExp][] = [
        ["symlink", `ln -s ${victim} ${lock}`, /is a symlink/],
        ["dangling symlink", `ln -s ${dir}/new ${lock}`, /is a symlink/],
        ["FIFO", `mkfifo ${lock}`, /is a FIFO/],
        ["hard link", `ln ${victim} ${lock}`, /has 2 hard links/],
      ];
      for (const [name, plant, why] of cases) {
        sh(plant);
        await assert.rejects(acquireLock(lock, { timeoutMs: 100 }), (e: Error) => {
          assert.match(e.message, new RegExp(`the lock file ${lock} `), name);
          assert.match(e.message, why, name);
          return true;
        });
        assert.equal(Deno.readTextFileSync(victim), secret, name);
        assert.throws(() => Deno.lstatSync(`${dir}/new`), Deno.errors.NotFound, name);
        Deno.removeSync(lock);
      }
      (await acquireLock(lock, { timeoutMs: 100 })).release();
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
