/**
 * joi-validate-config as a real child process with its manifest flags (the
 * production layout, every system path moved under the staging root): the
 * flags suffice, the exit codes and both output formats hold.
 */
import assert from "node:assert/strict";
import {
  denoRunArgs,
  productionLayout,
  programSpec,
} from "../../../services/common/permissions/mod.ts";
import { loadPolicies } from "../../../services/common/policy/mod.ts";
import { productionAddressesFrom } from "../../../scripts/validate/mod.ts";
import { type Household, stageHousehold } from "./household.ts";

/** Runs the validate program with its manifest flags, rooted at the household. */
async function runCli(h: Household, extra: string[] = []) {
  const p = loadPolicies(h.configDir);
  const spec = programSpec(
    "validate",
    productionLayout(productionAddressesFrom({ network: p.network, llm: p.llm })),
  );
  // (issue 15: validate also leaves its verdict for joi's drift watch)
  await Deno.mkdir(`${h.root}/var/lib/joi-validate`, { recursive: true });
  const rooted = {
    ...spec,
    permissions: {
      ...spec.permissions,
      read: spec.permissions.read.map((r) => h.root + r),
      write: spec.permissions.write.map((w) => h.root + w),
    },
    args: [
      `--config-dir=${h.configDir}`,
      `--root=${h.root}`,
      `--report=${h.root}/var/lib/joi-validate/report.json`,
      ...extra,
    ],
  };
  assert.deepEqual(
    spec.args,
    ["--config-dir=/etc/joi", "--report=/var/lib/joi-validate/report.json"],
    "the manifest passes the config dir and the drift report only",
  );
  const out = await new Deno.Command("deno", {
    args: denoRunArgs(rooted),
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

Deno.test("validate CLI: passes a provisioned household with exactly its manifest flags", async () => {
  const h = await stageHousehold();
  try {
    const r = await runCli(h);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const lines = r.stdout.trim().split("\n");
    assert.match(
      lines[lines.length - 1]!,
      /^Configuration validation passed \(0 critical, 0 errors, 1 warnings\)$/,
    );
    assert.match(lines[0]!, /^WARNING retrieve_not_immutable: .*joi-retrieve is not immutable/);
  } finally {
    await h.cleanup();
  }
});

Deno.test("validate CLI: --json reports a fault and exits 1", async () => {
  const h = await stageHousehold();
  try {
    const unit = `${h.root}/etc/systemd/system/joi-retrieve-family_group.socket`;
    Deno.chmodSync(unit, 0o666);
    const r = await runCli(h, ["--json"]);
    assert.equal(r.code, 1, r.stderr);
    const report = JSON.parse(r.stdout);
    assert.equal(report.ok, false);
    assert.deepEqual(report.summary, { critical: 0, errors: 1, warnings: 1, ok: false });
    const f = report.findings.find((x: { code: string }) => x.code === "retrieval_unit_mode");
    assert.equal(f.severity, "ERROR");
    assert.equal(f.where, unit);
    assert.match(f.fix, /chmod 0644/);
    // the drift report joi reads: severities and codes only, readable by joi's group
    const path = `${h.root}/var/lib/joi-validate/report.json`;
    assert.doesNotMatch(r.stderr, /cannot write the report/, r.stderr);
    const drift = JSON.parse(Deno.readTextFileSync(path));
    assert.equal(drift.ok, false);
    assert.deepEqual(drift.failed, [
      { severity: "ERROR", code: "retrieval_unit_mode" },
      { severity: "WARNING", code: "retrieve_not_immutable" },
    ]);
    assert.equal(Deno.statSync(path).mode! & 0o777, 0o640);
  } finally {
    await h.cleanup();
  }
});

Deno.test("validate CLI: an unknown option exits 2 with usage, changing nothing", async () => {
  const h = await stageHousehold();
  try {
    const r = await runCli(h, ["--fix-everything"]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /Unknown option '--fix-everything'/);
    assert.match(r.stderr, /usage: joi-validate-config/);
  } finally {
    await h.cleanup();
  }
});
