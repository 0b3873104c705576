/**
 * Knowledge retrieval through the production mechanism, in a booted VM: the
 * joi VM of the README's deployment guide (Debian 12, systemd as PID 1,
 * installed by running the guide's build and joi blocks verbatim), a corpus
 * of markdown documents added the README's day-2 way, and each retrieval a
 * connection to a channel's retrieve socket made as joi's user: systemd starts
 * one `joi-retrieve` as the channel user with the unit's cgroup limits, which
 * reads the request line, queries the index and writes the answer.
 *
 * The floor, measured in the same run and interleaved with it: the same
 * socket and service, rendered from the production units with only the entry
 * point replaced by an empty script, so a connection costs exactly the
 * mechanism (socket activation, a fresh process as the channel user, Deno's
 * start) and nothing of retrieval.
 *
 * Needs root and debootstrap (like the booted test); prints why it skipped
 * otherwise.
 *
 * @module
 */
import { householdRoles, loadPolicyFile } from "../../services/common/policy/mod.ts";
import { productionLayout, retrieveSocketPath } from "../../services/common/permissions/mod.ts";
import { productionAddressesFrom, retrieveUnitNames } from "../../services/common/units/mod.ts";
import { requestLine } from "../../services/joi/knowledge/retrieve_protocol.ts";
import { closeSessions, type GuideRun, runDay2, runGuide } from "../../tests/e2e/deploy/guide.ts";
import { operatorEdits } from "../../tests/e2e/deploy/operator.ts";
import { installProbe, probeAs } from "../../tests/e2e/deploy/probe.ts";
import { parseGuide } from "../../tests/e2e/deploy/readme.ts";
import { snapshotRepository } from "../../tests/e2e/deploy/snapshot.ts";
import { hostAddresses } from "../../tests/e2e/topology.ts";
import { Cluster } from "../../tests/e2e/vm/cluster.ts";
import { ShellSession } from "../../tests/e2e/vm/shell.ts";
import { sh } from "../../tests/e2e/process.ts";
import type { Vm } from "../../tests/e2e/vm/vm.ts";
import { percentile as pct } from "./_stats.ts";

/** Connections per mechanism (interleaved). */
const SAMPLES = 40;
/** Documents in the corpus. */
const DOCUMENTS = 10_000;
/** The folder measured (every channel reads it); the channel is the owner's DM. */
const FOLDER = "shared";
/** The floor's channel-like name (its own socket beside the real ones). */
const FLOOR = "benchfloor";

const fmt = (xs: number[]) => `p50 ${pct(xs, 50).toFixed(1)} ms, p99 ${pct(xs, 99).toFixed(1)} ms`;

/** Why the booted measure cannot run here, or null. */
async function missing(): Promise<string | null> {
  if ((await sh("sh", ["-c", "id -u"], false)).stdout.trim() !== "0") {
    return "needs root (it boots a VM)";
  }
  if ((await sh("sh", ["-c", "test -x /usr/sbin/debootstrap"], false)).code !== 0) {
    return "needs debootstrap (apt install debootstrap)";
  }
  return null;
}

/** Writes `n` markdown documents (one in 100 holds `needle`) under `dir`. */
async function writeCorpus(dir: string, n: number, needle: string): Promise<void> {
  let s = 7;
  const r = () => (s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32;
  const word = () =>
    Array.from(
      { length: 4 + Math.floor(r() * 6) },
      () => "abcdefghijklmnopqrstuvwxyz"[Math.floor(r() * 26)],
    )
      .join("");
  for (let i = 0; i < n; i++) {
    const words = Array.from({ length: 60 }, word);
    if (i % 100 === 0) words[30] = needle;
    await Deno.writeTextFile(
      `${dir}/doc-${String(i).padStart(6, "0")}.md`,
      `---\nid: ${crypto.randomUUID()}\ntitle: Doc ${i}\n---\n${words.join(" ")}\n`,
    );
  }
}

/**
 * The floor's units: `channel`'s, listening on `floorSocket` with the entry
 * point replaced by an empty script.
 */
async function installFloor(
  vm: Vm,
  channel: string,
  realSocket: string,
  floorSocket: string,
  empty: string,
): Promise<string> {
  const names = retrieveUnitNames(channel);
  const floor = retrieveUnitNames(FLOOR);
  const socket = await vm.readFile(`/etc/systemd/system/${names.socket}`);
  const service = await vm.readFile(`/etc/systemd/system/${names.service}`);
  if (!socket.includes(realSocket)) {
    throw new Error(`bench: ${names.socket} does not listen on ${realSocket}`);
  }
  const exec = /^ExecStart=(.*)$/m.exec(service)?.[1];
  const entry = exec?.split(" ").find((a) => a.endsWith("/scripts/retrieve.ts"));
  if (!exec || !entry) throw new Error(`bench: no retrieve entry point in ${names.service}`);
  const floorExec = `${exec.slice(0, exec.indexOf(entry))}${empty}`;
  await vm.writeFile(
    `/etc/systemd/system/${floor.socket}`,
    socket.replace(realSocket, floorSocket),
    {
      mode: 0o644,
    },
  );
  await vm.writeFile(
    `/etc/systemd/system/${floor.service}`,
    service.replace(/^ExecStart=.*$/m, `ExecStart=${floorExec}`),
    { mode: 0o644 },
  );
  await vm.exec(["systemctl", "daemon-reload"]);
  await vm.exec(["systemctl", "start", floor.socket]);
  return floorExec;
}

/** Runs the booted measure and prints its figures. */
export async function benchBooted(): Promise<void> {
  const why = await missing();
  if (why) {
    console.log(`retrieve (production mechanism, booted VM): skipped: ${why}`);
    return;
  }
  const print = (l: string) => console.log(`  ${l}`);
  const network = loadPolicyFile("network", "policies/network.yaml");
  const CHANNEL = householdRoles(loadPolicyFile("recipients", "policies/recipients.yaml")).ownerDm;
  const layout = productionLayout(
    productionAddressesFrom(network, loadPolicyFile("llm", "policies/llm.yaml")),
  );
  const { ips, prefix } = hostAddresses(network.nebula.underlay_cidr, 3);
  const c = await Cluster.start({ hosts: [{ name: "joi", address: ips[1]! }], prefix, print });
  const vm = c.vm("joi");
  const build = new ShellSession("build host", "bash", ["--noprofile", "--norc"], {
    cwd: await Deno.makeTempDir({ dir: c.dir, prefix: "build-" }),
  });
  const run: GuideRun = { sessions: {}, seconds: {} };
  try {
    const guide = parseGuide(await Deno.readTextFile("README.md"));
    const source = `${c.dir}/source.git`;
    await snapshotRepository(Deno.cwd(), source);
    const hooks = {
      placeholders: { "this repository": source },
      edit: operatorEdits({ vms: { joi: vm }, openhabToken: "unused-on-the-joi-vm" }),
    };
    const t0 = performance.now();
    await runGuide(
      guide.steps.filter((s) => s.host === "build" || s.host === "joi"),
      { build, vms: { joi: vm } },
      hooks,
      run,
    );
    print(`joi VM deployed by the README in ${((performance.now() - t0) / 1000).toFixed(0)} s`);

    // the corpus, added the README's way (its day-2 block indexes the folder)
    const needle = "benchneedle";
    const local = await Deno.makeTempDir({ dir: c.dir, prefix: "corpus-" });
    await writeCorpus(local, DOCUMENTS - 1, needle);
    const root = layout.joiStateDir;
    await vm.copyIn(local, `${root}/knowledge/${FOLDER}`);
    // as the folder's own files are: its owner and group, not world-readable
    await vm.exec([
      "sh",
      "-c",
      'find "$1" -maxdepth 1 -name "doc-*.md" -exec chown --reference="$1" {} + ' +
      "-exec chmod 0640 {} +",
      "sh",
      `${root}/knowledge/${FOLDER}`,
    ]);
    await vm.writeFile("/root/last.md", `---\ntitle: Last\n---\nThe ${needle} is here too.\n`, {
      mode: 0o644,
    });
    const op = guide.day2.knowledge;
    if (!op) throw new Error("bench: the README has no day-2 knowledge block");
    const t1 = performance.now();
    try {
      await runDay2(op, { joi: vm }, {
        ...hooks,
        placeholders: { ...hooks.placeholders, file: "/root/last.md", folder: FOLDER },
      });
    } catch (e) {
      (e as Error).message += `\n${await vm.journal(30)}`;
      throw e;
    }
    print(
      `${DOCUMENTS} documents indexed by the README's day-2 block in ${
        ((performance.now() - t1) / 1000).toFixed(0)
      } s`,
    );

    // the floor beside the real socket, and the measure
    const empty = "/opt/joi/scripts/bench/_empty_retrieve.ts";
    await vm.writeFile(empty, "", { mode: 0o644, owner: "root:root" });
    // cached as install caches the real entry point, so both start alike
    await vm.exec(["deno", "cache", "--frozen", empty], {
      cwd: "/opt/joi",
      env: { DENO_DIR: "/opt/joi/.deno", DENO_NO_UPDATE_CHECK: "1" },
    });
    const dir = layout.retrieveSocketDir;
    const realSock = retrieveSocketPath(dir, CHANNEL);
    const floorSock = retrieveSocketPath(dir, FLOOR);
    await installFloor(vm, CHANNEL, realSock, floorSock, empty);
    await installProbe(vm);
    const line = requestLine({ type: "search", q: needle, limit: 10 }).trimEnd();
    const check = await probeAs(vm, "joi", [{ socket: realSock, line }]);
    const first = check[0]!.runs[0]!;
    const hits = first.ok ? (JSON.parse(first.output ?? "{}").results ?? []).length : -1;
    if (hits < 10) {
      throw new Error(`bench: the query found ${hits} documents: ${JSON.stringify(first)}`);
    }
    const requests = [];
    for (let i = 0; i < SAMPLES; i++) {
      requests.push({ socket: floorSock, line: "" }, { socket: realSock, line });
    }
    const answers = await probeAs(vm, "joi", requests);
    const floor = answers.filter((a) => a.socket === floorSock).map((a) => a.runs[0]!);
    const real = answers.filter((a) => a.socket === realSock).map((a) => a.runs[0]!);
    const failed = [...floor, ...real].filter((r) => !r.ok);
    if (failed.length) {
      throw new Error(`bench: ${failed.length} connections failed: ${failed[0]!.error}`);
    }
    const ratio = pct(real.map((r) => r.ms), 50) / pct(floor.map((r) => r.ms), 50);
    console.log(`retrieve (production mechanism, booted VM): ${DOCUMENTS} documents in ${FOLDER}/`);
    console.log(
      `  floor  socket + empty joi-retrieve as ${CHANNEL}'s user: ${
        fmt(floor.map((r) => r.ms))
      } (${SAMPLES} runs)`,
    );
    console.log(
      `  retrieve end to end through ${CHANNEL}'s socket:      ${
        fmt(real.map((r) => r.ms))
      } (${SAMPLES} runs)`,
    );
    console.log(
      `  ratio p50 retrieve/floor: ${ratio.toFixed(2)}x (target <= 1.30x: ${
        ratio <= 1.3 ? "met" : "MISSED"
      })`,
    );
  } finally {
    await closeSessions(run);
    await build.close();
    const left = await c.destroy();
    if (left.length) console.error(`bench: left behind: ${left.join("; ")}`);
  }
}
