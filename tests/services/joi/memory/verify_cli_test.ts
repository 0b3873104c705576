import assert from "node:assert/strict";
import {
  denoRunArgs,
  localLayout,
  programSpec,
} from "../../../../services/common/permissions/mod.ts";
import {
  generateMemoryKeyFile,
  loadMemoryKey,
  MemoryStores,
} from "../../../../services/joi/memory/mod.ts";
import { loadPolicies } from "../../../../services/common/policy/mod.ts";

/** Runs `deno task memory verify` as the manifest states it, on a temp state dir. */
async function verify(
  stateDir: string,
  secretsDir: string,
): Promise<{ code: number; out: string }> {
  const layout = { ...localLayout(), joiStateDir: stateDir, secretsDir: () => secretsDir };
  const spec = programSpec("memory", layout);
  const out = await new Deno.Command("deno", {
    args: [...denoRunArgs(spec), "verify"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  return { code: out.code, out: text };
}

Deno.test("deno task memory verify: passes untouched, pinpoints a sqlite3-shell edit, in its own sandbox", async () => {
  const dir = await Deno.makeTempDir({ prefix: "joi-memcli-", dir: "./var" }).catch(() =>
    Deno.makeTempDir()
  );
  try {
    const abs = await Deno.realPath(dir);
    await Deno.mkdir(`${abs}/secrets`, { mode: 0o700 });
    await generateMemoryKeyFile(`${abs}/secrets/memory.key`);
    const stores = new MemoryStores({
      stateDir: `${abs}/state`,
      recipients: loadPolicies("./policies").recipients,
      key: await loadMemoryKey(`${abs}/secrets`),
    });
    for (let i = 0; i < 9; i++) {
      await stores.store("family_group").appendTurn({
        conversationId: "f",
        role: "user",
        sender: "partner",
        text: `t${i}`,
      });
    }
    stores.close();
    const ok = await verify(`${abs}/state`, `${abs}/secrets`);
    assert.equal(ok.code, 0, ok.out);
    assert.match(ok.out, /ok\s+family_group: 9 records, chain intact/);
    const edit = await new Deno.Command("sqlite3", {
      args: [
        `${abs}/state/data/group/family.db`,
        "UPDATE memory_records SET created_at = created_at + 1 WHERE id = 4",
      ],
    }).output();
    assert.equal(edit.code, 0);
    const broken = await verify(`${abs}/state`, `${abs}/secrets`);
    assert.equal(broken.code, 1, broken.out);
    assert.match(broken.out, /BROKEN\s+family_group .*record #4: record content was altered/);
    assert.match(broken.out, /expected [0-9a-f]{64}\n\s+found\s+[0-9a-f]{64}/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
