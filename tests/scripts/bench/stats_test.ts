import assert from "node:assert/strict";
import { percentile } from "../../../scripts/bench/_stats.ts";

Deno.test("bench percentile: nearest rank; p99 of 100 values is the 99th, not the largest", () => {
  const xs = Array.from({ length: 100 }, (_, i) => 100 - i); // 100..1, unsorted
  assert.equal(percentile(xs, 99), 99);
  assert.equal(percentile(xs, 50), 50);
  assert.equal(percentile(xs, 100), 100);
  assert.equal(percentile([7], 99), 7);
  assert.ok(Number.isNaN(percentile([], 50)));
  assert.deepEqual(xs.slice(0, 2), [100, 99], "the input is not sorted in place");
  assert.throws(() => percentile(xs, 0), RangeError);
});
