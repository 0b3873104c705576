/**
 * ai-switch proven with packets, as root: four bridges in a router namespace,
 * a client namespace on each, TCP agents dialling one another, ai-switch (the
 * real CLI in its sandbox) switching the router's rules.
 */
import assert from "node:assert/strict";
import { addressOf, type Agent, type Domain, PORT, Topology } from "./topology.ts";
import { canRunAsRoot, sh, skipReason, Workdir } from "./harness.ts";

const root = canRunAsRoot();
if (!root) console.log(`ai_switch netns_test: ${skipReason()}`);

async function reach(t: Topology, from: Domain, to: Domain): Promise<boolean> {
  return await t.agent(from).canConnect(to);
}

/** Connectivity from each `from` to `to`, probed concurrently. */
async function matrix(t: Topology, pairs: [Domain, Domain][]): Promise<Record<string, boolean>> {
  const results = await Promise.all(pairs.map(([f, to]) => reach(t, f, to)));
  return Object.fromEntries(pairs.map(([f, to], i) => [`${f}->${to}`, results[i] ?? false]));
}

/** One test: the four-domain topology and a workdir, cleaned up whatever happens. */
function topologyTest(name: string, fn: (t: Topology, w: Workdir) => Promise<void>) {
  Deno.test({
    name,
    ignore: !root,
    fn: async () => {
      const t = await Topology.create();
      const w = await Workdir.create();
      try {
        await fn(t, w);
      } finally {
        await t.destroy();
        await w.remove();
      }
    },
  });
}

/** Runs `ai-switch switch --domain <d> [extra]` in the router; it must succeed. */
async function switchTo(t: Topology, w: Workdir, d: Domain, ...extra: string[]): Promise<void> {
  const r = await w.cli(t.router, ["switch", "--domain", d, ...extra]);
  assert.equal(r.code, 0, r.stderr);
}

/** Starts anklume's agent dialling ai-tools with `concurrency` parallel attempts. */
async function hammerAiTools(t: Topology, concurrency: number): Promise<Agent> {
  const hammer = t.agent("anklume");
  await hammer.request({ op: "hammer", host: addressOf("ai-tools"), port: PORT, concurrency });
  return hammer;
}

/** Runs tests/peers/ai_switch/switch_loop.ts in the router (see `Workdir.loopArgs`). */
async function switchLoop(
  t: Topology,
  w: Workdir,
  ...loop: Parameters<Workdir["loopArgs"]>
): Promise<{ code: number; stdout: string; stderr: string }> {
  return await sh("ip", ["netns", "exec", t.router, "deno", ...w.loopArgs(...loop)]);
}

const PAIRS: [Domain, Domain][] = [
  ["pro", "ai-tools"],
  ["perso", "ai-tools"],
  ["anklume", "ai-tools"],
  ["ai-tools", "pro"],
  ["ai-tools", "perso"],
  ["ai-tools", "anklume"],
  ["pro", "perso"],
  ["perso", "anklume"],
  ["anklume", "pro"],
];

topologyTest(
  "only the chosen domain reaches ai-tools; ai-tools cannot dial it; others untouched; a switch cuts the old peer",
  async (t, w) => {
    // Before any rule: everything reaches everything (the control).
    assert.ok(Object.values(await matrix(t, PAIRS)).every((v) => v), "open before ai-switch");

    await switchTo(t, w, "pro");
    assert.deepEqual(await matrix(t, PAIRS), {
      "pro->ai-tools": true,
      "perso->ai-tools": false,
      "anklume->ai-tools": false,
      "ai-tools->pro": false,
      "ai-tools->perso": false,
      "ai-tools->anklume": false,
      "pro->perso": true,
      "perso->anklume": true,
      "anklume->pro": true,
    });

    // pro holds a connection open across the switch.
    const open = await t.agent("pro").request({
      op: "open",
      name: "held",
      host: addressOf("ai-tools"),
      port: PORT,
    });
    assert.equal(open.ok, true);

    await switchTo(t, w, "perso");
    assert.deepEqual(await matrix(t, PAIRS), {
      "pro->ai-tools": false,
      "perso->ai-tools": true,
      "anklume->ai-tools": false,
      "ai-tools->pro": false,
      "ai-tools->perso": false,
      "ai-tools->anklume": false,
      "pro->perso": true,
      "perso->anklume": true,
      "anklume->pro": true,
    });

    // The held connection is cut: its next line neither arrives nor echoes.
    const before = await linesFrom(t, "pro");
    const sent = await t.agent("pro").request({ op: "send", name: "held", timeoutMs: 1500 });
    assert.equal(sent.ok, false, "pro's open connection still works after the switch");
    assert.equal(await linesFrom(t, "pro"), before, "ai-tools received data from pro");
  },
);

/** Lines the ai-tools echo server received from `d`'s address. */
async function linesFrom(t: Topology, d: Domain): Promise<number> {
  const r = await t.agent("ai-tools").request({ op: "accepted" });
  return (r.accepted as { from: string; lines: number }[])
    .filter((a) => a.from === addressOf(d))
    .reduce((s, a) => s + a.lines, 0);
}

/** Connections the ai-tools echo server accepted from `d`'s address. */
async function acceptedFrom(t: Topology, d: Domain): Promise<number> {
  const r = await t.agent("ai-tools").request({ op: "accepted" });
  return (r.accepted as { from: string }[]).filter((a) => a.from === addressOf(d)).length;
}

topologyTest(
  "while anklume hammers ai-tools during 100 switches between pro and perso, no connection gets through",
  async (t, w) => {
    // Positive control: the same hammer does connect when anklume is allowed.
    await switchTo(t, w, "anklume", "--no-flush");
    const hammer = await hammerAiTools(t, 4);
    await new Promise((r) => setTimeout(r, 300));
    const control = await hammer.request({ op: "stop", settleMs: 5000 });
    assert.ok(
      (control.successes as number) > 0,
      `control hammer never connected: ${JSON.stringify(control)}`,
    );

    await switchTo(t, w, "pro", "--no-flush");
    const acceptedBefore = await acceptedFrom(t, "anklume");
    await hammerAiTools(t, 300);
    const loop = await switchLoop(t, w, 100, ["perso", "pro"]);
    const result = JSON.parse(loop.stdout);
    assert.equal(result.failures, 0, loop.stdout);
    assert.equal(result.rounds, 100);
    const stats = await hammer.request({ op: "stop", settleMs: 8000 });
    console.log(
      `race: 100 switches in ${Math.round(sum(result.ms))} ms, ` +
        `${stats.attempts} attempts from anklume, ${stats.successes} through`,
    );
    assert.equal(stats.successes, 0, `connections got through: ${JSON.stringify(stats)}`);
    assert.ok((stats.attempts as number) >= 300, `too few attempts: ${JSON.stringify(stats)}`);
    assert.equal(await acceptedFrom(t, "anklume"), acceptedBefore, "ai-tools accepted anklume");
  },
);

function sum(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}

topologyTest(
  "control: the same hammer sees connections leak through a flush-then-load switch",
  async (t, w) => {
    await switchTo(t, w, "pro", "--no-flush");
    const hammer = await hammerAiTools(t, 300);
    // Batches of 50 non-atomic switches until something leaks (bounded).
    let leaked = 0;
    let rounds = 0;
    while (leaked === 0 && rounds < 400) {
      await switchLoop(t, w, 50, ["perso", "pro"], true, ["--non-atomic"]);
      rounds += 50;
      leaked = (await hammer.request({ op: "peek" })).successes as number;
    }
    const stats = await hammer.request({ op: "stop", settleMs: 8000 });
    console.log(
      `control: ${stats.successes} of ${stats.attempts} got through in ${rounds} non-atomic switches`,
    );
    assert.ok((stats.successes as number) > 0, "the race test cannot see a non-atomic switch");
  },
);
