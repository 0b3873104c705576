/**
 * The symlink-swap race against provision (root only): a real swapper
 * (`tests/peers/swapper.sh`, run as the household's service user) keeps
 * swapping directories and files of the state tree for symlinks into a
 * root-owned mirror of that tree and to a stand-in for `/etc/group`, and
 * makes drift so root always has a chown/chmod to do, while root re-runs
 * provision many times. No chown or chmod may ever land outside the tree:
 * every file of the mirror and the stand-in keeps its owner, group and mode.
 * Provision either applies its plan or refuses, naming the path.
 */
import assert from "node:assert/strict";
import { createHousehold, isRoot } from "./household.ts";

const SWAPPER = new URL("../../peers/swapper.sh", import.meta.url).pathname;
/** Provision runs at least this often against the swapper. */
const MIN_RUNS = 40;
/** And stops after this long even if no symlink was met yet (then the test fails). */
const MAX_MS = 40_000;

interface Mark {
  uid: number | null;
  gid: number | null;
  mode: number | null;
}

function mark(path: string): Mark {
  const st = Deno.lstatSync(path);
  return { uid: st.uid, gid: st.gid, mode: st.mode };
}

function walk(dir: string, out: string[] = []): string[] {
  for (const e of Deno.readDirSync(dir)) {
    const p = `${dir}/${e.name}`;
    out.push(p);
    if (e.isDirectory) walk(p, out);
  }
  return out;
}

Deno.test({
  name: "provision races a symlink swapper running as the service user: nothing outside changes",
  ignore: !isRoot(),
  async fn() {
    const h = createHousehold();
    const stop = `${h.dir}/stop`;
    let swapper: Deno.ChildProcess | undefined;
    try {
      // the mirror: every path of the state tree again, root's, outside the tree
      const mirror = `${h.dir}/mirror`;
      Deno.mkdirSync(mirror, { mode: 0o755 });
      Deno.writeTextFileSync(`${mirror}/etc-group`, "root:x:0:\n", { mode: 0o644 });
      const rels = h.provisioned.want.paths
        .filter((s) => s.path.startsWith(`${h.stateDir}/`))
        .map((s) => ({ rel: s.path.slice(h.stateDir.length + 1), type: s.type }));
      for (const { rel, type } of rels) {
        if (type === "dir") Deno.mkdirSync(`${mirror}/${rel}`, { recursive: true, mode: 0o755 });
        else Deno.writeTextFileSync(`${mirror}/${rel}`, "", { mode: 0o644 });
      }
      const outside = [mirror, ...walk(mirror)];
      const before = new Map(outside.map((p) => [p, mark(p)]));

      // victims at every depth: the top folders, folders below them, files
      const depth = (r: string) => r.split("/").length;
      const dirs = rels.filter((r) => r.type === "dir");
      const files = rels.filter((r) => r.type === "file");
      const victims = [
        ...dirs.filter((r) => depth(r.rel) === 1),
        ...dirs.filter((r) => depth(r.rel) === 2).slice(0, 3),
        ...dirs.filter((r) => depth(r.rel) >= 3).slice(0, 2),
        ...files.slice(0, 3),
      ].map((r) => r.rel);
      assert.ok(victims.length >= 5, `victims: ${victims}`);

      const script = `${h.dir}/swapper.sh`;
      Deno.copyFileSync(SWAPPER, script);
      Deno.chmodSync(script, 0o755);
      swapper = new Deno.Command("sudo", {
        args: ["-u", h.users.svc, "--", "/bin/sh", script, stop, mirror, ...victims],
        cwd: h.stateDir,
        stdin: "null",
        stdout: "piped",
        stderr: "null",
      }).spawn();

      let runs = 0;
      let applied = 0;
      const refusals = new Map<string, number>();
      const started = Date.now();
      while ((runs < MIN_RUNS || refusals.size === 0) && Date.now() - started < MAX_MS) {
        runs++;
        try {
          h.reprovision();
          applied++;
        } catch (e) {
          const msg = e instanceof Error ? e.message : String(e);
          // every refusal names a path of the tree
          assert.ok(msg.includes(h.stateDir), `refusal names no path of the tree: ${msg}`);
          const kind = /symlink/.test(msg)
            ? "symlink"
            : /replaced|changed/.test(msg)
            ? "changed under the walk"
            : /does not exist|No such file|not found/i.test(msg)
            ? "vanished"
            : msg.replace(h.stateDir, "<state>").slice(0, 80);
          refusals.set(kind, (refusals.get(kind) ?? 0) + 1);
        }
        await new Promise((r) => setTimeout(r, 0));
      }
      Deno.writeTextFileSync(stop, "");
      const out = await swapper.output();
      swapper = undefined;
      const rounds = Number(new TextDecoder().decode(out.stdout).trim());
      console.log(
        `race: ${runs} provision runs (${applied} applied), ${rounds} swapper rounds, refusals:`,
        Object.fromEntries(refusals),
      );

      for (const [p, was] of before) {
        assert.deepEqual(mark(p), was, `${p} was changed by root: the race was won`);
      }
      assert.ok(rounds > 0, "the swapper ran");
      assert.ok((refusals.get("symlink") ?? 0) > 0, "provision met (and refused) a symlink");

      // the tree as the attacker left it: put it back, then provision converges
      for (const v of victims) {
        const p = `${h.stateDir}/${v}`;
        for (const extra of [`${p}.lnk`, `${p}.drift`]) {
          try {
            Deno.removeSync(extra);
          } catch { /* absent */ }
        }
        try {
          if (Deno.lstatSync(p).isSymlink) Deno.removeSync(p);
        } catch { /* absent */ }
        try {
          Deno.renameSync(`${p}.away`, p);
        } catch { /* not away */ }
      }
      h.reprovision();
      assert.deepEqual(h.reprovision().actions, [], "a clean tree converges");
    } finally {
      if (swapper) {
        Deno.writeTextFileSync(stop, "");
        await swapper.status;
      }
      await h.cleanup();
    }
  },
});
