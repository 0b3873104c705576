/**
 * root_fs: what it refuses (naming the path) and what it leaves behind. The
 * walk runs as root over a tree owned by another user (`nobody`), as
 * provision does over the service user's state directory.
 */
import assert from "node:assert/strict";
import {
  placePath,
  UnsafePathError,
  whileFrozen,
  writeNewFile,
} from "../../../scripts/common/root_fs.ts";
import { ignoreUnless, isRoot } from "../../_helpers/requires.ts";

const NOBODY = 65534;

/** Runs a shell line (the test sandbox cannot make symlinks itself: they are for the attacker). */
function sh(line: string): void {
  const out = new Deno.Command("sh", { args: ["-c", line] }).outputSync();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
}

function tree(): { dir: string; top: string; outside: string } {
  const dir = Deno.makeTempDirSync({ prefix: "joi-rootfs-" });
  Deno.chmodSync(dir, 0o755);
  const top = `${dir}/state`;
  Deno.mkdirSync(`${top}/sub`, { recursive: true });
  const outside = `${dir}/etc-group`;
  Deno.writeTextFileSync(outside, "root:x:0:\n", { mode: 0o644 });
  for (const p of [top, `${top}/sub`]) Deno.chownSync(p, NOBODY, NOBODY);
  return { dir, top, outside };
}

function refuses(fn: () => unknown, path: string, what: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof UnsafePathError, String(e));
    assert.equal(e.path, path);
    assert.match(e.message, what);
    return true;
  });
}

Deno.test({
  name: "root_fs refuses symlinks (target and on the way), FIFOs and hard links, naming them",
  ignore: ignoreUnless([isRoot(), "root"]),
  fn() {
    const { dir, top, outside } = tree();
    try {
      const own = { uid: NOBODY, gid: NOBODY, mode: 0o600 };
      sh(`ln -s '${outside}' '${top}/sub/f'`);
      refuses(
        () => placePath(`${top}/sub/f`, "file", own, { anchor: top }),
        `${top}/sub/f`,
        /is a symlink where a regular file is expected/,
      );
      sh(`ln -s '${dir}' '${top}/link'`);
      refuses(
        () => placePath(`${top}/link/etc-group`, "file", own, { anchor: top }),
        `${top}/link`,
        /is a symlink where a directory is expected/,
      );
      sh(`mkfifo '${top}/sub/fifo'`);
      refuses(
        () => placePath(`${top}/sub/fifo`, "file", own, { anchor: top }),
        `${top}/sub/fifo`,
        /is a FIFO/,
      );
      sh(`ln '${outside}' '${top}/sub/hard'`);
      refuses(
        () => placePath(`${top}/sub/hard`, "file", own, { anchor: top }),
        `${top}/sub/hard`,
        /2 hard links/,
      );
      refuses(
        () => placePath(`${top}/sub`, "file", own, { anchor: top }),
        `${top}/sub`,
        /is a directory where a regular file is expected/,
      );
      // nothing outside moved; the tree's own dirs got their owner and mode back
      const st = Deno.statSync(outside);
      assert.deepEqual([st.uid, st.gid, st.mode! & 0o7777], [0, 0, 0o644]);
      for (const p of [top, `${top}/sub`]) {
        const s = Deno.statSync(p);
        assert.deepEqual([s.uid, s.mode! & 0o7777], [NOBODY, 0o755], p);
      }
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "root_fs creates and fixes on descriptors, and freezes only while it works",
  ignore: ignoreUnless([isRoot(), "root"]),
  async fn() {
    const { dir, top } = tree();
    try {
      const own = { uid: NOBODY, gid: NOBODY, mode: 0o640 };
      assert.equal(
        placePath(`${top}/sub/new`, "file", own, { anchor: top, create: true }),
        "created",
      );
      assert.equal(placePath(`${top}/sub/new`, "file", own, { anchor: top }), "unchanged");
      assert.equal(
        placePath(`${top}/sub/new`, "file", { ...own, mode: 0o600 }, { anchor: top }),
        "changed",
      );
      assert.equal(
        placePath(`${top}/a/b`, "dir", { ...own, mode: 0o2750 }, {
          anchor: top,
          create: true,
          parents: true,
        }),
        "created",
      );
      assert.equal(Deno.statSync(`${top}/a/b`).mode! & 0o7777, 0o2750);
      assert.equal(Deno.statSync(`${top}/a`).uid, 0, "a missing parent is root's");
      writeNewFile(`${top}/sub/k`, new TextEncoder().encode("x\n"), own, { anchor: top });
      assert.throws(
        () => writeNewFile(`${top}/sub/k`, new Uint8Array(), own, { anchor: top }),
        /exists|EEXIST/,
      );
      const during = await whileFrozen(top, () => {
        const s = Deno.statSync(top);
        return [s.uid, s.mode! & 0o022];
      });
      assert.deepEqual(during, [0, 0], "frozen: root's, nobody else may write");
      const after = Deno.statSync(top);
      assert.deepEqual([after.uid, after.mode! & 0o7777], [NOBODY, 0o755], "given back");
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
