/**
 * ai-switch end to end, as root: the real CLI with its manifest sandbox, real
 * nft inside a throw-away network namespace, stand-ins for nvidia-smi,
 * systemctl and incus (tests/peers/ai_switch) and real processes as GPU
 * compute processes.
 */
import assert from "node:assert/strict";
import { renderTable, transaction } from "../../../scripts/ai_switch/ruleset.ts";
import { parseEntry } from "../../../scripts/ai_switch/history.ts";
import { NO_FLUSH_WARNING } from "../../../scripts/ai_switch/switch.ts";
import { acquireLock } from "../../../scripts/ai_switch/lock.ts";
import {
  canRunAsRoot,
  gpuProcess,
  liveTable,
  sh,
  skipReason,
  withNamespace,
  Workdir,
} from "./harness.ts";

const root = canRunAsRoot();
if (!root) console.log(`ai_switch cli_test: ${skipReason()}`);

/** One test: a namespace, a workdir, cleaned up whatever happens. */
function rootTest(name: string, fn: (ns: string, w: Workdir) => Promise<void>) {
  Deno.test({
    name,
    ignore: !root,
    fn: async () => {
      const w = await Workdir.create();
      try {
        await withNamespace((ns) => fn(ns, w));
      } finally {
        await w.remove();
      }
    },
  });
}

function indexOf(calls: string[], line: string): number {
  const i = calls.indexOf(line);
  assert.ok(i >= 0, `expected call ${JSON.stringify(line)} in:\n${calls.join("\n")}`);
  return i;
}

async function lastEntry(w: Workdir) {
  const lines = await w.log();
  assert.ok(lines.length > 0, "log is empty");
  return parseEntry(lines[lines.length - 1]!);
}

rootTest(
  "switch stops, flushes, swaps the rules, restarts, then writes state and log, in order",
  async (ns, w) => {
    const a = gpuProcess();
    const b = gpuProcess();
    await Deno.writeTextFile(`${w.root}/gpu/procs`, `${a.pid} 2048\n${b.pid} 1024\n`);
    const r = await w.cli(ns, ["switch", "--domain", "pro"]);
    assert.equal(r.code, 0, r.stderr);
    const calls = await w.calls();
    const order = [
      "systemctl stop ollama",
      "systemctl stop speaches",
      "nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits",
      "nvidia-smi --gpu-reset",
      "nft -c -f -",
      "nft -f -",
      "systemctl start ollama",
      "systemctl start speaches",
    ].map((l) => indexOf(calls, l));
    assert.deepEqual(order, [...order].sort((x, y) => x - y), calls.join("\n"));
    // The compute processes were really killed.
    assert.equal((await a.status).signal, "SIGKILL");
    assert.equal((await b.status).signal, "SIGKILL");
    assert.equal(await liveTable(ns), renderTable("pro"));
    assert.equal(await w.state(), "pro\n");
    const e = await lastEntry(w);
    assert.deepEqual([e.from, e.to, e.flush, e.result], ["none", "pro", true, "ok"]);
    assert.deepEqual(await w.running(), ["ollama", "speaches"]);
    // The step lines on stdout come in the documented order.
    const steps = r.stdout.split("\n").filter((l) => /^ai-switch: [a-z_]+$/.test(l));
    assert.deepEqual(steps.map((l) => l.slice(11)), [
      "lock",
      "stop_services",
      "flush_vram",
      "check_rules",
      "apply_rules",
      "verify_rules",
      "start_services",
      "write_state",
      "write_log",
    ]);
  },
);

rootTest("--no-flush skips the flush and logs that isolation was weakened", async (ns, w) => {
  const p = gpuProcess();
  try {
    await Deno.writeTextFile(`${w.root}/gpu/procs`, `${p.pid} 512\n`);
    const r = await w.cli(ns, ["switch", "--domain", "perso", "--no-flush"]);
    assert.equal(r.code, 0, r.stderr);
    const calls = await w.calls();
    assert.equal(calls.filter((c) => c.startsWith("nvidia-smi")).length, 0, calls.join("\n"));
    assert.ok(r.stderr.includes(NO_FLUSH_WARNING), r.stderr);
    const e = await lastEntry(w);
    assert.equal(e.flush, false);
    assert.equal(e.result, "ok");
    assert.ok(e.warning?.includes("isolation weakened"), e.warning);
    assert.equal(await liveTable(ns), renderTable("perso"));
    // The GPU process was left alone.
    assert.equal(
      await Promise.race([p.status.then(() => "dead"), Promise.resolve("alive")]),
      "alive",
    );
  } finally {
    await sh("kill", ["-KILL", String(p.pid)], false);
    await p.status;
  }
});

rootTest(
  "--dry-run prints the exact ruleset and changes neither rules, state nor log",
  async (ns, w) => {
    assert.equal((await w.cli(ns, ["switch", "--domain", "pro"])).code, 0);
    const before = { table: await liveTable(ns), state: await w.state(), log: await w.log() };
    await w.clearCalls();
    const r = await w.cli(ns, ["switch", "--domain", "perso", "--dry-run"]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stdout.includes(transaction(renderTable("perso"))), r.stdout);
    assert.ok(r.stdout.includes("nft -c accepts this ruleset"), r.stdout);
    assert.deepEqual(
      { table: await liveTable(ns), state: await w.state(), log: await w.log() },
      before,
    );
    const calls = await w.calls();
    assert.ok(!calls.includes("nft -f -"), calls.join("\n"));
    assert.ok(!calls.some((c) => c.startsWith("systemctl")), calls.join("\n"));
    assert.ok(!calls.includes("nvidia-smi --gpu-reset"), calls.join("\n"));
  },
);

rootTest(
  "a failing nft transaction leaves the previous domain in force and the state unchanged",
  async (ns, w) => {
    assert.equal((await w.cli(ns, ["switch", "--domain", "pro"])).code, 0);
    await w.failOn("nft -f -");
    const r = await w.cli(ns, ["switch", "--domain", "perso"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /failed at apply_rules/);
    assert.equal(await liveTable(ns), renderTable("pro"));
    assert.equal(await w.state(), "pro\n");
    const e = await lastEntry(w);
    assert.deepEqual([e.from, e.to, e.result, e.step], ["pro", "perso", "failed", "apply_rules"]);
    assert.deepEqual(await w.running(), ["ollama", "speaches"]);
  },
);

rootTest(
  "a failing service restart restores the previous ruleset and leaves the state unchanged",
  async (ns, w) => {
    assert.equal((await w.cli(ns, ["switch", "--domain", "pro"])).code, 0);
    await w.failOn("systemctl start");
    await w.clearCalls();
    const r = await w.cli(ns, ["switch", "--domain", "perso", "--no-flush"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /failed at start_services/);
    assert.match(r.stderr, /previous ruleset restored/);
    assert.equal(await liveTable(ns), renderTable("pro"));
    assert.equal(await w.state(), "pro\n");
    const e = await lastEntry(w);
    assert.deepEqual([e.result, e.step], ["failed", "start_services"]);
    assert.match(e.error ?? "", /start ollama failed/);
    // The new rules were applied, then the old ones put back; services were retried.
    const calls = await w.calls();
    assert.equal(calls.filter((c) => c === "nft -f -").length, 2, calls.join("\n"));
    assert.equal(calls.filter((c) => c === "systemctl start ollama").length, 2, calls.join("\n"));
  },
);

rootTest("with no previous ruleset, a failed switch leaves every domain blocked", async (ns, w) => {
  await w.failOn("systemctl start");
  const r = await w.cli(ns, ["switch", "--domain", "pro", "--no-flush"]);
  assert.equal(r.code, 1);
  assert.equal(await liveTable(ns), renderTable(null));
  assert.equal(await w.state(), null);
  assert.match(r.stderr, /all domains blocked/);
});

rootTest("a flush that leaves a compute process or memory refuses the switch", async (ns, w) => {
  assert.equal((await w.cli(ns, ["switch", "--domain", "pro"])).code, 0);
  // A process kill cannot remove (pid above pid_max: listed, never killable).
  await Deno.writeTextFile(`${w.root}/gpu/ghosts`, "4000000 900\n");
  let r = await w.cli(ns, ["switch", "--domain", "perso"]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /failed at flush_vram: GPU compute processes survived the flush: 4000000/);
  assert.equal(await liveTable(ns), renderTable("pro"));
  assert.equal(await w.state(), "pro\n");
  assert.deepEqual(await w.running(), ["ollama", "speaches"]);
  await Deno.remove(`${w.root}/gpu/ghosts`);
  // Processes die but their memory stays in use.
  const p = gpuProcess();
  await Deno.writeTextFile(`${w.root}/gpu/procs`, `${p.pid} 4096\n`);
  await Deno.writeTextFile(`${w.root}/gpu/leak`, "");
  r = await w.cli(ns, ["switch", "--domain", "perso"]);
  await p.status;
  assert.equal(r.code, 1);
  assert.match(r.stderr, /GPU memory in use did not drop/);
  assert.equal(await liveTable(ns), renderTable("pro"));
  // An unsupported reset is only a warning.
  await Deno.remove(`${w.root}/gpu/leak`);
  await Deno.writeTextFile(`${w.root}/gpu/reset_unsupported`, "");
  r = await w.cli(ns, ["switch", "--domain", "perso"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /GPU reset not supported \(non-fatal\)/);
  assert.equal(await liveTable(ns), renderTable("perso"));
});

rootTest("a switch to the current domain checks the live rules and repairs them", async (ns, w) => {
  assert.equal((await w.cli(ns, ["switch", "--domain", "pro"])).code, 0);
  await w.clearCalls();
  let r = await w.cli(ns, ["switch", "--domain", "pro"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /nothing to do/);
  let calls = await w.calls();
  assert.ok(!calls.includes("nft -f -") && !calls.some((c) => c.startsWith("systemctl")));
  assert.equal((await lastEntry(w)).result, "unchanged");
  // Someone opens the forward chain behind ai-switch's back.
  await sh("ip", [
    "netns",
    "exec",
    ns,
    "nft",
    "insert",
    "rule",
    "inet",
    "joi_ai",
    "forward",
    "accept",
  ]);
  assert.notEqual(await liveTable(ns), renderTable("pro"));
  const drift = await w.cli(ns, ["status", "--json"]);
  assert.equal(drift.code, 3, "status exits 3 on drift");
  const status = JSON.parse(drift.stdout);
  assert.deepEqual([status.current, status.rulesMatch, status.liveAccess], [
    "pro",
    false,
    "unknown",
  ]);
  await w.clearCalls();
  r = await w.cli(ns, ["switch", "--domain", "pro"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /repairing/);
  assert.equal(await liveTable(ns), renderTable("pro"));
  assert.equal((await lastEntry(w)).result, "repaired");
  assert.equal((await w.cli(ns, ["status"])).code, 0);
  calls = await w.calls();
  assert.ok(!calls.some((c) => c.startsWith("systemctl")), "a repair does not touch services");
  // The table deleted altogether is repaired too.
  await sh("ip", ["netns", "exec", ns, "nft", "delete", "table", "inet", "joi_ai"]);
  r = await w.cli(ns, ["switch", "--domain", "pro"]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(await liveTable(ns), renderTable("pro"));
});

rootTest("two switches started at once do not interleave", async (ns, w) => {
  await Deno.writeTextFile(`${w.root}/slow`, "0.2\n");
  const one = w.spawnCli(ns, ["switch", "--domain", "pro", "--no-flush"]);
  const two = w.spawnCli(ns, ["switch", "--domain", "perso", "--no-flush"]);
  const [r1, r2] = await Promise.all([one.output(), two.output()]);
  const d = new TextDecoder();
  assert.equal(r1.code, 0, d.decode(r1.stderr));
  assert.equal(r2.code, 0, d.decode(r2.stderr));
  const svc = (await w.calls()).filter((c) => c.startsWith("systemctl") || c === "nft -f -")
    .map((c) => c.split(" ")[1]);
  const one_switch = ["stop", "stop", "-f", "start", "start"];
  assert.deepEqual(svc, [...one_switch, ...one_switch]);
  const entries = (await w.log()).map(parseEntry);
  assert.equal(entries.length, 2);
  assert.equal(entries[1]!.from, entries[0]!.to, "the second switch saw the first one's result");
  assert.equal(await w.state(), entries[1]!.to + "\n");
  assert.equal(await liveTable(ns), renderTable(entries[1]!.to));
});

rootTest("the incus service manager drives the services inside the GPU machine", async (ns, w) => {
  await w.writeInfra({ manager: "incus" });
  const r = await w.cli(ns, ["switch", "--domain", "anklume", "--no-flush"]);
  assert.equal(r.code, 0, r.stderr);
  const calls = (await w.calls()).filter((c) => c.startsWith("incus"));
  assert.deepEqual(calls, [
    "incus exec gpu-server --project ai-tools -- systemctl stop ollama",
    "incus exec gpu-server --project ai-tools -- systemctl stop speaches",
    "incus exec gpu-server --project ai-tools -- systemctl start ollama",
    "incus exec gpu-server --project ai-tools -- systemctl start speaches",
  ]);
  assert.deepEqual(await w.running(), ["gpu-server:ollama", "gpu-server:speaches"]);
});

rootTest("status and history report the domain, the rules, the GPU and the log", async (ns, w) => {
  assert.equal((await w.cli(ns, ["switch", "--domain", "pro", "--no-flush"])).code, 0);
  assert.equal((await w.cli(ns, ["switch", "--domain", "perso", "--no-flush"])).code, 0);
  const p = gpuProcess();
  try {
    await Deno.writeTextFile(`${w.root}/gpu/procs`, `${p.pid} 700\n`);
    const s = JSON.parse((await w.cli(ns, ["status", "--json"])).stdout);
    assert.equal(s.current, "perso");
    assert.equal(s.rulesMatch, true);
    assert.equal(s.liveAccess, "perso");
    assert.deepEqual(s.gpu, { apps: [{ pid: p.pid, usedMiB: 700 }], usedMiB: 1000 });
    const text = (await w.cli(ns, ["status"])).stdout;
    assert.match(text, /current domain: perso/);
    assert.match(text, /live rules: match/);
  } finally {
    await sh("kill", ["-KILL", String(p.pid)], false);
    await p.status;
  }
  const h = JSON.parse((await w.cli(ns, ["history", "--json"])).stdout);
  assert.deepEqual(
    h.entries.map((e: { from: string; to: string }) => `${e.from}->${e.to}`),
    ["none->pro", "pro->perso"],
  );
  const last = JSON.parse((await w.cli(ns, ["history", "--json", "--limit", "1"])).stdout);
  assert.equal(last.entries.length, 1);
});

rootTest(
  "a switch that cannot get the lock in time fails clearly and changes nothing",
  async (ns, w) => {
    assert.equal((await w.cli(ns, ["switch", "--domain", "pro", "--no-flush"])).code, 0);
    await w.clearCalls();
    const held = await acquireLock(w.lockFile, { timeoutMs: 1000 });
    try {
      const r = await w.cli(ns, ["switch", "--domain", "perso", "--lock-timeout=0.3"]);
      assert.equal(r.code, 1);
      assert.match(r.stdout, /another switch \(pid \d+\) is running: waiting/);
      assert.match(r.stderr, /another ai-switch \(pid \d+\) still holds .* raise --lock-timeout/);
    } finally {
      held.release();
    }
    const calls = await w.calls();
    assert.ok(!calls.some((c) => c.startsWith("systemctl") || c === "nft -f -"), calls.join("\n"));
    assert.equal(await w.state(), "pro\n");
    assert.equal(await liveTable(ns), renderTable("pro"));
    assert.equal((await w.log()).length, 1);
  },
);

rootTest(
  "restore at boot: the recorded domain, else ai_access_default; services untouched",
  async (ns, w) => {
    // A fresh boot with no state file: ai_access_default (pro) gets access, recorded.
    assert.equal(await liveTable(ns), null);
    let r = await w.cli(ns, ["restore"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /no state file: pro \(ai_access_default\) has access/);
    assert.equal(await liveTable(ns), renderTable("pro"));
    assert.equal((await Deno.readTextFile(w.stateFile)).trim(), "pro");
    let calls = await w.calls();
    assert.ok(!calls.some((c) => c.startsWith("systemctl") || c.startsWith("incus")), calls.join());
    // After a switch to perso, a reboot (rules gone) restores perso, not the default.
    assert.equal((await w.cli(ns, ["switch", "--domain", "perso"])).code, 0);
    await sh("ip", ["netns", "exec", ns, "nft", "delete", "table", "inet", "joi_ai"]);
    await w.clearCalls();
    r = await w.cli(ns, ["restore"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await liveTable(ns), renderTable("perso"));
    assert.equal((await lastEntry(w)).result, "repaired");
    calls = await w.calls();
    assert.ok(!calls.some((c) => c.startsWith("systemctl") || c.startsWith("incus")), calls.join());
    // A recorded domain infra.yml no longer has: every domain is blocked (fail closed).
    await Deno.writeTextFile(w.stateFile, "gone\n");
    r = await w.cli(ns, ["restore"]);
    assert.equal(r.code, 1);
    assert.equal(await liveTable(ns), renderTable(null));
  },
);
