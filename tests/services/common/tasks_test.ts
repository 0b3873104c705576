import assert from "node:assert/strict";
import { localLayout, PROGRAMS, programSpec } from "../../../services/common/permissions/mod.ts";
import { renderTasks } from "../../../services/common/tasks.ts";

const ROOT = new URL("../../../", import.meta.url).pathname;

Deno.test("deno.json tasks are exactly what the manifest derives (run `deno task sync`)", async () => {
  const config = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`));
  const expected = await renderTasks(localLayout(), ROOT);
  assert.deepEqual(config.tasks, expected);
});

Deno.test("no task and no program grants -A or an unscoped --allow-*", async () => {
  const tasks = await renderTasks(localLayout(), ROOT);
  for (const [name, cmd] of Object.entries(tasks)) {
    assert.doesNotMatch(cmd, /(^|\s)-A(\s|$)|--allow-all/, `task ${name}`);
    assert.doesNotMatch(
      cmd,
      /--allow-(read|write|net|run|env|sys|ffi|import)(\s|$)/,
      `task ${name}`,
    );
    assert.doesNotMatch(cmd, /--allow-ffi/, `task ${name}`);
  }
  for (const program of PROGRAMS) {
    const p = programSpec(program, localLayout()).permissions;
    for (const list of Object.values(p)) {
      for (const item of list) {
        assert.ok(item.length > 0 && !item.includes(","), `${program}: ${item}`);
      }
    }
    assert.ok(!p.net.some((n) => n.startsWith("0.0.0.0")), `${program} must not dial/bind 0.0.0.0`);
    for (const bin of p.run) {
      assert.ok(
        bin === "deno" || bin.startsWith("/") || program === "test" || program === "bench",
        `${program}: --allow-run must name exact binaries (absolute paths), got ${bin}`,
      );
    }
  }
});
