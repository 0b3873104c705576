import assert from "node:assert/strict";
import { tallyJunit } from "../scripts/test.ts";

Deno.test("tallyJunit counts passed, failed and skipped cases", () => {
  const xml = `<testsuites><testsuite>
    <testcase name="a"></testcase>
    <testcase name="b"><failure message="x"/></testcase>
    <testcase name="c"><skipped/></testcase>
    <testcase name="d"/>
  </testsuite></testsuites>`;
  assert.deepEqual(tallyJunit(xml), { passed: 2, failed: 1, skipped: 1 });
});
