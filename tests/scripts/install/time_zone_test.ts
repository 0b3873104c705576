/**
 * Install proposes the VM's own time zone: a policy.yaml installed now takes
 * it (comments kept), one already configured is never changed and a
 * different zone is pointed out.
 */
import assert from "node:assert/strict";
import { loadPolicyFile } from "../../../services/common/policy/mod.ts";
import {
  proposeTimeZone,
  systemTimeZone,
  withTimeZone,
} from "../../../scripts/install/time_zone.ts";

Deno.test("install: a fresh policy.yaml takes the VM's zone; a configured one is kept and told", async () => {
  const dir = await Deno.makeTempDir({ prefix: "joi-tz-" });
  try {
    const path = `${dir}/policy.yaml`;
    await Deno.copyFile("policies/policy.yaml", path);
    const said: string[] = [];
    await proposeTimeZone(path, true, "America/New_York", (l) => said.push(l));
    const policy = loadPolicyFile("policy", path);
    assert.equal(policy.household.timezone, "America/New_York");
    assert.match(said[0]!, /America\/New_York, this VM's zone \(was Europe\/Bratislava\)/);
    assert.ok((await Deno.readTextFile(path)).includes("# The household's IANA time zone"));
    // already configured: never changed, the difference is shown
    said.length = 0;
    await proposeTimeZone(path, false, "Asia/Tokyo", (l) => said.push(l));
    assert.equal(loadPolicyFile("policy", path).household.timezone, "America/New_York");
    assert.match(said[0]!, /is America\/New_York; this VM's clock is in Asia\/Tokyo/);
    // the same zone (UTC has many names): nothing to say
    said.length = 0;
    await Deno.writeTextFile(path, withTimeZone(await Deno.readTextFile(path), "UTC")!);
    await proposeTimeZone(path, false, "Etc/UTC", (l) => said.push(l));
    assert.deepEqual(said, []);
    assert.equal(typeof systemTimeZone(), "string");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
