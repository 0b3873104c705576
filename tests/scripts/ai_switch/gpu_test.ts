import assert from "node:assert/strict";
import { FlushError, parseComputeApps, parseMemoryUsed } from "../../../scripts/ai_switch/gpu.ts";

Deno.test("compute apps parse from nvidia-smi's csv", () => {
  assert.deepEqual(parseComputeApps("1234, 2048\n  99, 10\n\n"), [
    { pid: 1234, usedMiB: 2048 },
    { pid: 99, usedMiB: 10 },
  ]);
  assert.deepEqual(parseComputeApps(""), []);
  assert.deepEqual(parseComputeApps("No running processes found\n"), []);
  assert.deepEqual(parseComputeApps("77, [N/A]\n"), [{ pid: 77, usedMiB: 0 }]);
});

Deno.test("a pid that would make kill hit everything, init or garbage is refused", () => {
  for (
    const bad of ["-1, 10", "0, 10", "1, 10", "1 2, 10", "12, ten", "12", "12, 3, 4", "0x10, 1"]
  ) {
    assert.throws(() => parseComputeApps(bad), FlushError, bad);
  }
  assert.throws(() => parseComputeApps("1, 10"), /refusing to kill it/);
  assert.throws(() => parseComputeApps("99999999999999999999, 1"), /refusing to kill it/);
});

Deno.test("memory used sums GPUs and refuses non-integers or nothing", () => {
  assert.equal(parseMemoryUsed("300\n"), 300);
  assert.equal(parseMemoryUsed("300\n200\n"), 500);
  assert.throws(() => parseMemoryUsed(""), /no GPU/);
  assert.throws(() => parseMemoryUsed("300 MiB"), /not an integer/);
});
