import assert from "node:assert/strict";
import {
  readState,
  restoreState,
  tempPathOf,
  writeState,
} from "../../../scripts/ai_switch/state.ts";

Deno.test("the state file holds one domain, is replaced atomically and can be restored", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/ai-access-current`;
    assert.equal(await readState(path), null);
    await writeState(path, "pro");
    assert.equal(await Deno.readTextFile(path), "pro\n");
    assert.equal(await readState(path), "pro");
    await writeState(path, "perso");
    assert.equal(await readState(path), "perso");
    await assert.rejects(Deno.stat(tempPathOf(path)), Deno.errors.NotFound);
    await restoreState(path, "pro");
    assert.equal(await readState(path), "pro");
    await restoreState(path, null);
    assert.equal(await readState(path), null);
    await restoreState(path, null);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a state file that is not a domain name is refused with the fix", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/s`;
    await Deno.writeTextFile(path, "pro; rm -rf /\n");
    await assert.rejects(readState(path), /does not hold a domain name.*switch --domain/);
    await assert.rejects(writeState(path, "Not A Domain"), /not a DNS-safe name/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
