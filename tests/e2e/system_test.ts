/**
 * The whole system in one test, as root: the three VMs of the architecture as
 * network namespaces on a bridge (underlay 10.99.0.0/29), real Nebula from
 * Debian's package with certificates from the real `nebula-cert`, the node
 * firewalls of `scripts/nebula/config.ts` and the nftables guard in each
 * host. The code is laid out by the real installer (`deno task install`'s
 * CLI, `--root ./var/stage/<tag>`) and every service runs from the staged
 * `/opt/joi` with its production manifest flags (`--cached-only`, the staged
 * `.deno` cache), bound to its Nebula address, its secrets handed over as
 * `LoadCredential=` in its staged unit says.
 *
 * What cannot exist here has a protocol-faithful stand-in: signal-cli (its
 * Unix socket is a file, so the peer runs in this process and the mesh in its
 * namespace dials it), Ollama on joi's 127.0.0.1:11434 and openHAB's event
 * stream on the openHAB host's 127.0.0.1:8080 (both as children in their
 * namespace).
 *
 * Differences from production, stated: there is no systemd here, so the
 * services run as root inside their namespaces (not as their service users,
 * and without the units' hardening); the knowledge broker is not started
 * (joi's main does not call it yet); TCP SYN retries are cut to 1 in each
 * namespace so refused probes end in seconds.
 *
 * The test shows: an owner's Signal DM answered through mesh -> joi -> LLM ->
 * joi -> mesh; an openHAB smoke alarm delivered to the critical group through
 * the relay; the openHAB host cannot reach joi's 8443, the mesh cannot reach
 * 8445, and a packet forged on the underlay with the mesh's overlay address is
 * dropped by the guard (with the control: without the guard it reaches joi's
 * TCP stack); with joi's Nebula stopped an alarm is queued and delivered when
 * it returns, the mesh tells the owner and the critical group that joi is
 * unreachable within 3 link checks, and joi sends one summary when it is back.
 * Teardown leaves no namespace, process or user behind.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  type Layout,
  type ProgramName,
  UNIT_NAMES,
} from "../../services/common/permissions/mod.ts";
import { loadPolicyFile } from "../../services/common/policy/mod.ts";
import { productionAddressesFrom } from "../../services/common/units/mod.ts";
import { hasExecutable, ignoreUnless, isRoot } from "../_helpers/requires.ts";
import { itemChange, type OpenhabEvent } from "../peers/openhab_sse.ts";
import { dataEnvelope, type RecordedRequest, SignalCliPeer } from "../peers/signal_cli/peer.ts";
import { claimSocket, expectedGroups, OWNER } from "../services/mesh/harness.ts";
import { forgetRun, recordRun, sweepDeadRuns } from "./leftovers.ts";
import {
  plannedUsers,
  serviceArgs,
  serviceEnv,
  type Stage,
  stageDeployment,
  stagePath,
} from "./stage.ts";
import { type Child, HOSTS, type NsAgent, sh, Topology } from "./topology.ts";

const PEERS = new URL("../peers/", import.meta.url).pathname;
/** The link watch's check interval in this test (policy `nebula_health`). */
const LINK_CHECK_S = 2;

/** The `send` requests the signal-cli peer received. */
function sends(peer: SignalCliPeer): RecordedRequest[] {
  return peer.requests.filter((r) => r.method === "send");
}

/** Starts one service in its host namespace, as its unit's ExecStart would. */
function startService(
  t: Topology,
  node: "mesh" | "joi" | "openhab",
  program: ProgramName & ("joi" | "mesh" | "openhab_relay"),
  layout: Layout,
): Child {
  return t.spawn(node, program, "deno", serviceArgs(program, layout), {
    cwd: layout.codeDir,
    env: serviceEnv(layout),
    clearEnv: true,
  });
}

/** The `data` of a `/health` envelope fetched by a probe, or undefined. */
async function health(agent: NsAgent, url: string): Promise<Record<string, unknown> | undefined> {
  const r = await agent.get(url, 3_000);
  if (!r.ok || r.status !== 200) return undefined;
  return (r.body as { data?: Record<string, unknown> }).data;
}

Deno.test({
  name:
    "e2e: Nebula topology in namespaces, production flags: DM answered, smoke alarm to the critical group, firewall and guard hold, alerts queued across a Nebula outage",
  ignore: ignoreUnless(
    [isRoot(), "root"],
    [hasExecutable("/usr/bin/nebula"), "nebula (apt install nebula)"],
    [hasExecutable("/usr/bin/nebula-cert"), "nebula-cert"],
    [hasExecutable("/usr/sbin/nft"), "nft"],
    [hasExecutable("/usr/sbin/ip") || hasExecutable("/usr/bin/ip"), "ip"],
    [hasExecutable("/usr/bin/ss") || hasExecutable("/usr/sbin/ss"), "ss (iproute2)"],
  ),
  sanitizeResources: false, // children's pipes are drained by background readers until exit
  sanitizeOps: false,
  fn: async () => {
    const network = loadPolicyFile("network", "policies/network.yaml");
    const llmPolicy = loadPolicyFile("llm", "policies/llm.yaml");
    const addresses = productionAddressesFrom(network, llmPolicy);
    const dir = await Deno.makeTempDir({ prefix: "joi-e2e-" });
    const t = new Topology({
      cidr: network.nebula.cidr,
      overlay: network.hosts,
      underlayCidr: network.nebula.underlay_cidr,
      port: network.nebula.port,
      interface: network.nebula.interface,
      ports: {
        joiInbound: network.ports.joi_inbound,
        meshOutbound: network.ports.mesh_outbound,
        joiIngest: network.ports.joi_ingest,
        proxy: network.ports.proxy,
      },
      dir,
    });
    // a run that was killed could not clean up: sweep what dead runs wrote down,
    // then write down what this one will create before creating it
    const swept = await sweepDeadRuns();
    if (swept.length) console.error(`e2e: swept leftovers of dead runs: ${swept.join(", ")}`);
    await recordRun(t.tag, {
      pid: Deno.pid,
      namespaces: t.namespaces,
      users: plannedUsers(t.tag, Deno.readTextFileSync("policies/channel_users.yaml")),
      stage: stagePath(t.tag),
    });
    const sock = await claimSocket();
    const peer = SignalCliPeer.start({ path: sock.path });
    peer.groups = expectedGroups();
    const token = crypto.randomUUID().replaceAll("-", "");
    let stage: Stage | undefined;
    const problems: string[] = [];
    try {
      stage = await stageDeployment({ tag: t.tag, addresses, openhabToken: token });
      // the link watch checks every 2 s here (30 s shipped), so its alert fits the test
      for (const dir of ["etc/joi", "etc/mesh-proxy", "etc/joi-relay"]) {
        const path = `${stage.root}/${dir}/policy.yaml`;
        Deno.writeTextFileSync(
          path,
          Deno.readTextFileSync(path)
            .replace(/check_interval_seconds: 30\b/, `check_interval_seconds: ${LINK_CHECK_S}`)
            .replace(/lighthouse_ping_timeout_ms: 5000\b/, "lighthouse_ping_timeout_ms: 1000"),
        );
      }
      // the signal-cli socket: a test slot stands for /run/signal-cli/socket
      const layout: Layout = { ...stage.layout, signal: { kind: "socket", path: sock.path } };
      // what runs below is each staged unit's ExecStart, but for the staging root
      // and the signal-cli socket slot
      for (const program of ["joi", "mesh", "openhab_relay"] as const) {
        const unit = Deno.readTextFileSync(
          `${stage.root}/etc/systemd/system/${UNIT_NAMES[program]}`,
        );
        const exec = /^ExecStart=(.+)$/m.exec(unit)?.[1]?.split(" ") ?? [];
        const ours = serviceArgs(program, layout).map((a) =>
          a.replaceAll(stage!.root, "").replaceAll(sock.path, addresses.signalSocket)
        );
        assert.deepEqual(ours, exec.slice(1), `${program} runs as its staged unit says`);
      }
      // what the assertions need, read from joi's staged configuration (joi's own
      // full load, with its cross-file checks, happens when it starts)
      const groupsPolicy = loadPolicyFile("groups", `${layout.joiConfigDir}/groups.yaml`);
      const llmStaged = loadPolicyFile("llm", `${layout.joiConfigDir}/llm.yaml`);
      const hosts = network.hosts;
      const ports = network.ports;
      const joiInbound = `${hosts.joi}:${ports.joi_inbound}`;
      const joiIngest = `${hosts.joi}:${ports.joi_ingest}`;
      const meshOutbound = `${hosts.mesh}:${ports.mesh_outbound}`;

      // --- the network: namespaces, bridge, PKI, Nebula, guard
      await t.build();
      await t.pki();
      await t.guard();
      for (const node of HOSTS) await t.startNebula(node);

      // --- stand-ins: Ollama on joi, openHAB's event stream on the openHAB host
      const llmAt = `${layout.llm.host}:${layout.llm.port}`;
      const reply = "The porch light is on and every door is locked.";
      const llm = t.spawn("joi", "llm stand-in", "deno", [
        "run",
        "--no-prompt",
        `--allow-net=${llmAt}`,
        `${PEERS}llm_server_main.ts`,
        `--port=${layout.llm.port}`,
        `--reply=${reply}`,
      ], { stdin: true, lines: true });
      await llm.waitLine("the LLM stand-in to listen", (l) => l.ready === true);
      const openhabAt = `${layout.openhab.host}:${layout.openhab.port}`;
      const openhab = t.spawn("openhab", "openHAB stand-in", "deno", [
        "run",
        "--no-prompt",
        `--allow-net=${openhabAt}`,
        `${PEERS}openhab_sse_main.ts`,
        `--port=${layout.openhab.port}`,
      ], { stdin: true, lines: true });
      await openhab.send({ token });
      await openhab.waitLine("the openHAB stand-in to listen", (l) => l.ready === true);
      let cmdId = 0;
      const openhabCmd = async (cmd: Record<string, unknown>) => {
        const id = ++cmdId;
        await openhab.send({ id, ...cmd });
        return await openhab.waitLine(`openHAB stand-in command ${id}`, (l) => l.id === id);
      };
      const pushAll = async (events: OpenhabEvent[]) => {
        for (const ev of events) await openhabCmd({ push: ev });
      };

      // --- the services, from the staged /opt/joi with their production flags
      const joi = startService(t, "joi", "joi", layout);
      const mesh = startService(t, "mesh", "mesh", layout);
      const relay = startService(t, "openhab", "openhab_relay", layout);
      const services = [joi, mesh, relay];

      // --- probes: each may dial exactly what the test asks of its host
      const fromMesh = await t.agent("mesh", [joiInbound, joiIngest]);
      const fromJoi = await t.agent("joi", [meshOutbound]);
      const fromOpenhab = await t.agent("openhab", [joiIngest, joiInbound]);

      // every service answers /health on its Nebula address, from its one allowed peer
      await t.until(
        "joi's 8443 /health from the mesh",
        async () => (await health(fromMesh, `http://${joiInbound}/health`)) !== undefined,
        60_000,
        services,
      );
      await t.until(
        "joi's 8445 /health from the openHAB host",
        async () => (await health(fromOpenhab, `http://${joiIngest}/health`)) !== undefined,
        30_000,
        services,
      );
      await t.until(
        "the mesh's 8444 /health from joi, with signal-cli connected",
        async () => {
          const h = await health(fromJoi, `http://${meshOutbound}/health`);
          return (h?.signal as { state?: string } | undefined)?.state === "connected";
        },
        30_000,
        services,
      );
      await t.until(
        "the relay to subscribe to openHAB's event stream",
        async () => {
          const s = await openhabCmd({ status: true });
          return Number(s.open) >= 1;
        },
        30_000,
        services,
      );

      // --- 1. a Signal DM from the owner is answered through mesh and joi
      const question = "Is the porch light still on?";
      peer.push(dataEnvelope({ ...OWNER, timestamp: 1_000, text: question }));
      await t.until(
        "the answer to the owner's DM to reach signal-cli",
        () =>
          sends(peer).some((s) =>
            JSON.stringify(s.params.recipient) === JSON.stringify([OWNER.number])
          ),
        60_000,
        [...services, llm],
      );
      const answer = sends(peer).find((s) =>
        JSON.stringify(s.params.recipient) === JSON.stringify([OWNER.number])
      )!;
      assert.equal(answer.params.message, reply, "the owner gets the LLM's answer, unchanged");
      const asked = llm.lines.filter((l) => l.request).map((l) =>
        (l.request as { messages: { role: string; content: string }[] }).messages
      );
      assert.ok(
        asked.some((m) => m.some((x) => x.role === "user" && x.content.includes(question))),
        "joi asked the LLM with the owner's message",
      );
      const models = llm.lines.filter((l) => l.request).map((l) =>
        (l.request as { model: string }).model
      );
      assert.equal(models[0], llmStaged.primary_model, "joi used llm.yaml's primary model");

      // --- 2. an openHAB smoke alarm reaches the critical group
      const criticalId = (groupsPolicy.groups as Record<string, { signal_group_id: string }>)
        .critical_group!.signal_group_id;
      const toCritical = (item: string) =>
        sends(peer).filter((s) =>
          s.params.groupId === criticalId && String(s.params.message).includes(item)
        );
      await pushAll(itemChange("Kitchen_Smoke", "OnOff", "ON", "OFF"));
      await t.until(
        "the smoke alarm to reach the critical group",
        () => toCritical("Kitchen_Smoke").length >= 1,
        60_000,
        services,
      );
      assert.match(String(toCritical("Kitchen_Smoke")[0]!.params.message), /smoke/i);

      // --- 3. the Nebula firewall: each port is open to its one group only
      const ohTo8443 = await fromOpenhab.connect(hosts.joi, ports.joi_inbound);
      assert.equal(ohTo8443.ok, false, "the openHAB host must not reach joi's 8443");
      assert.match(ohTo8443.error ?? "", /timed out/, "Nebula drops it silently");
      const meshTo8445 = await fromMesh.connect(hosts.joi, ports.joi_ingest);
      assert.equal(meshTo8445.ok, false, "the mesh must not reach joi's 8445");
      assert.match(meshTo8445.error ?? "", /timed out/, "Nebula drops it silently");
      // controls: the same probes reach the port their host is allowed
      assert.equal((await fromOpenhab.connect(hosts.joi, ports.joi_ingest)).ok, true);
      assert.equal((await fromMesh.connect(hosts.joi, ports.joi_inbound)).ok, true);

      // --- 4. a packet forged on the underlay with the mesh's overlay address
      const ifc = network.nebula.interface;
      const observe = `${dir}/observe.nft`;
      await Deno.writeTextFile(
        observe,
        [
          "table inet joi_e2e_observe {",
          "  chain input {",
          "    type filter hook input priority 0; policy accept;",
          `    ip saddr ${hosts.mesh} iifname != "${ifc}" tcp dport ${ports.joi_inbound} counter`,
          "  }",
          "}",
          "",
        ].join("\n"),
      );
      await t.exec("joi", "nft", ["-f", observe]);
      const observed = async () => {
        const r = await t.exec("joi", "nft", ["list", "table", "inet", "joi_e2e_observe"]);
        return Number(/counter packets (\d+)/.exec(r.stdout)?.[1] ?? NaN);
      };
      // the openHAB host claims the mesh's overlay address on its underlay NIC
      // and routes joi's overlay address straight over the bridge
      await t.exec("openhab", "ip", ["addr", "add", `${hosts.mesh}/32`, "dev", "eth1"]);
      await t.exec("openhab", "ip", [
        "route",
        "add",
        `${hosts.joi}/32`,
        "via",
        t.underlay.joi,
        "dev",
        "eth1",
        "src",
        hosts.mesh,
      ]);
      try {
        const before = await t.guardDrops("joi");
        const forged = await fromOpenhab.connect(hosts.joi, ports.joi_inbound, 3_000);
        assert.equal(forged.ok, false, "a forged mesh address must not open a connection");
        const after = await t.guardDrops("joi");
        assert.ok(after > before, `the guard counted the forged SYN (${before} -> ${after})`);
        assert.equal(await observed(), 0, "nothing forged got past the guard to joi's input");

        // control: without the guard the same forged SYN reaches joi's TCP stack
        await t.exec("joi", "nft", ["flush", "table", "inet", "joi_nebula_guard"]);
        try {
          await fromOpenhab.connect(hosts.joi, ports.joi_inbound, 3_000);
          assert.ok(
            (await observed()) >= 1,
            "control: without the guard the forged SYN is delivered to joi",
          );
          const halfOpen = await t.exec("joi", "ss", ["-Htn", "state", "syn-recv"]);
          assert.match(
            halfOpen.stdout,
            new RegExp(
              `${hosts.joi.replaceAll(".", "\\.")}:${ports.joi_inbound}\\s+${
                hosts.mesh.replaceAll(".", "\\.")
              }:\\d+`,
            ),
            "control: joi's 8443 holds a half-open connection from the forged address",
          );
        } finally {
          await t.exec("joi", "nft", ["-f", `${dir}/guard.nft`]);
        }
      } finally {
        await t.exec("openhab", "ip", ["route", "del", `${hosts.joi}/32`], false);
        await t.exec("openhab", "ip", ["addr", "del", `${hosts.mesh}/32`, "dev", "eth1"], false);
        await t.exec("joi", "nft", ["delete", "table", "inet", "joi_e2e_observe"], false);
      }

      // --- 5. joi's Nebula stops: the alarm is queued, then delivered when it returns;
      // the mesh tells the owner and the critical group joi is unreachable within
      // 3 checks (each ends at its 1 s deadline: a cut link drops packets), and joi
      // sends one summary when it is back
      const unreachable = () => relay.output.join("").split("relay_joi_unreachable").length - 1;
      const unreachableBefore = unreachable();
      const linkSends = (start: string) =>
        sends(peer).filter((s) =>
          String(s.params.message).startsWith(start) &&
          (s.params.groupId === criticalId ||
            JSON.stringify(s.params.recipient) === JSON.stringify([OWNER.number]))
        );
      const cut = Date.now();
      await t.stopNebula("joi");
      await pushAll(itemChange("Hall_Smoke", "OnOff", "ON", "OFF"));
      await t.until(
        "the relay to find joi unreachable and keep the alarm",
        () => unreachable() > unreachableBefore,
        60_000,
        services,
      );
      assert.equal(
        toCritical("Hall_Smoke").length,
        0,
        "nothing can be delivered during the outage",
      );
      await t.until(
        "the mesh to tell the owner and the critical group that joi is unreachable",
        () => linkSends("joi is unreachable since").length >= 2,
        30_000,
        services,
      );
      const told = Math.max(...linkSends("joi is unreachable since").map((r) => r.at)) - cut;
      console.error(`e2e: joi's Nebula stopped -> the mesh's alert after ${told} ms`);
      assert.ok(told <= 3 * (LINK_CHECK_S * 1000 + 1000), `alert ${told} ms after the cut`);
      await t.startNebula("joi");
      await t.until(
        "the queued alarm to reach the critical group after joi's Nebula returned",
        () => toCritical("Hall_Smoke").length >= 1,
        90_000,
        services,
      );
      await t.until(
        "joi's one summary of the outage to the owner and the critical group",
        () => linkSends("joi is back in touch").length >= 2,
        60_000,
        services,
      );
      assert.match(
        String(linkSends("joi is back in touch")[0]!.params.message),
        /^joi is back in touch\. It was cut off from .* 1 alert was delayed and is now delivered\./,
      );
      assert.equal(linkSends("joi is unreachable since").length, 2, "told once per episode");

      // --- 6. a compromised underlay host (root on it: its own guard gone) routes
      // joi's overlay address over the bridge with its own underlay source; the
      // Nebula firewall must not be bypassable this way either
      await t.exec("openhab", "nft", ["flush", "table", "inet", "joi_nebula_guard"]);
      await t.exec("openhab", "ip", [
        "route",
        "add",
        `${hosts.joi}/32`,
        "via",
        t.underlay.joi,
        "dev",
        "eth1",
      ]);
      try {
        const before = await t.guardDrops("joi");
        const bypass = await fromOpenhab.connect(hosts.joi, ports.joi_inbound, 3_000);
        assert.equal(
          bypass.ok,
          false,
          `an underlay host (${t.underlay.openhab}) opened joi's ${joiInbound} without Nebula: ` +
            `joi's guard drops overlay sources off ${ifc} but not overlay destinations ` +
            `(renderGuard in scripts/nebula/config.ts)`,
        );
        assert.ok(
          (await t.guardDrops("joi")) > before,
          "joi's guard counted the off-Nebula SYN",
        );
      } finally {
        await t.exec("openhab", "ip", ["route", "del", `${hosts.joi}/32`], false);
        await t.exec("openhab", "nft", ["-f", `${dir}/guard.nft`]);
      }

      // --- every service survived all of it; no message text in any log
      for (const s of services) assert.equal(s.exited, false, `${s.name} is still running`);
      const logs = [...Deno.readDirSync(layout.logDir)].map((e) =>
        Deno.readTextFileSync(`${layout.logDir}/${e.name}`)
      ).join("") + services.map((s) =>
        s.output.join("")
      ).join("");
      assert.ok(!logs.includes(question), "the owner's message text is never logged");
      assert.ok(!logs.includes(reply), "joi's answer text is never logged");
    } finally {
      problems.push(...await t.destroy());
      await peer.stop();
      sock.release();
      if (stage) problems.push(...await stage.cleanup());
      await Deno.remove(dir, { recursive: true });
      // nothing left behind: namespaces, users
      const left = await sh("ip", ["netns", "list"]);
      if (left.stdout.includes(`je2e${t.tag}`)) problems.push(`namespaces left:\n${left.stdout}`);
      for (const u of stage?.users ?? []) {
        if ((await sh("getent", ["passwd", u], false)).code === 0) problems.push(`user ${u} left`);
      }
      // the record stays for the next run's sweep only if something was left
      if (problems.length === 0) await forgetRun(t.tag);
    }
    assert.deepEqual(problems, [], "teardown left nothing behind");
  },
});
