/**
 * The three-VM topology of the architecture document, built from network
 * namespaces for the end-to-end test: a switch namespace holding the bridge
 * (vmbr1), and the `mesh`, `joi` and `openhab` hosts on it through veth pairs,
 * with the underlay of the architecture (10.99.0.1/.2/.3 on a /29). Real
 * Nebula (Debian's package) runs in each host namespace with certificates made
 * by the real `nebula-cert` ({@link createCa}, {@link signNodes}), the node
 * configs of {@link renderNodeConfig} and the nftables guard of
 * {@link renderGuard}.
 *
 * Every name carries a per-run tag, so runs never collide, and
 * {@link Topology.destroy} kills what it started and deletes every namespace
 * (the veths and the bridge go with them).
 *
 * @module
 */
import { createCa, signNodes } from "../../scripts/nebula/certs.ts";
import {
  type NebulaPlan,
  type NodeName,
  renderGuard,
  renderNodeConfig,
} from "../../scripts/nebula/config.ts";
import type { AgentAnswer, AgentQuestion } from "./ns_agent.ts";
import { Child, type ChildOptions, sh, waitUntil } from "./process.ts";
import { buildBridge, deleteNamespaces } from "./vm/network.ts";

export { Child, type ChildOptions, sh, waitUntil };

/** The hosts, in underlay address order (10.99.0.1, .2, .3). */
export const HOSTS: NodeName[] = ["mesh", "joi", "openhab"];

/** What the topology is built from (network.yaml's figures). */
export interface TopologyOptions {
  /** Overlay CIDR (`nebula.cidr`). */
  cidr: string;
  /** Overlay address per host (`hosts`). */
  overlay: Record<NodeName, string>;
  /** Underlay CIDR (`nebula.underlay_cidr`); hosts get its first three addresses. */
  underlayCidr: string;
  /** Nebula's UDP port (`nebula.port`). */
  port: number;
  /** Nebula's interface (`nebula.interface`). */
  interface: string;
  /** API ports (`ports`). */
  ports: NebulaPlan["ports"];
  /** Temp folder for the PKI, configs and the guard file. */
  dir: string;
}

/** The first `n` host addresses of an IPv4 CIDR (`10.99.0.0/29` -> .1, .2, ...). */
export function hostAddresses(cidr: string, n: number): { ips: string[]; prefix: number } {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)\/(\d+)$/.exec(cidr);
  if (!m) throw new Error(`topology: ${cidr} is not an IPv4 CIDR`);
  const prefix = Number(m[5]);
  const base = ((Number(m[1]) << 24) | (Number(m[2]) << 16) | (Number(m[3]) << 8) |
    Number(m[4])) >>> 0;
  const size = 2 ** (32 - prefix);
  if (n > size - 2) throw new Error(`topology: ${cidr} has fewer than ${n} host addresses`);
  const ips = Array.from({ length: n }, (_, i) => {
    const v = (base + i + 1) >>> 0;
    return [v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255].join(".");
  });
  return { ips, prefix };
}

/** A probe agent ({@link ./ns_agent.ts}) inside one host namespace. */
export class NsAgent {
  readonly child: Child;
  #next = 1;

  constructor(ns: string, name: string, allowNet: string[]) {
    this.child = new Child(`${name} probe`, "ip", [
      "netns",
      "exec",
      ns,
      "deno",
      "run",
      "--no-prompt",
      `--allow-net=${allowNet.join(",")}`,
      new URL("./ns_agent.ts", import.meta.url).pathname,
    ], { stdin: true, lines: true });
  }

  /** Resolves once the agent runs. */
  async ready(): Promise<void> {
    await this.child.waitLine("the probe to start", (l) => l.ready === true);
  }

  async #ask(cmd: AgentQuestion): Promise<AgentAnswer> {
    const id = this.#next++;
    await this.child.send({ id, ...cmd });
    const timeout = cmd.timeoutMs + 30_000;
    return await this.child.waitLine(
      `the answer to ${JSON.stringify(cmd)}`,
      (l) => l.id === id,
      timeout,
    ) as unknown as AgentAnswer;
  }

  /** Whether a TCP connection to `host:port` opens within `timeoutMs`. */
  connect(host: string, port: number, timeoutMs = 4_000): Promise<AgentAnswer> {
    return this.#ask({ op: "connect", host, port, timeoutMs });
  }

  /** GETs `url` (JSON body parsed). */
  get(url: string, timeoutMs = 5_000): Promise<AgentAnswer> {
    return this.#ask({ op: "get", url, timeoutMs });
  }

  /** Stops the agent. */
  stop(): Promise<void> {
    return this.child.stop("SIGKILL");
  }
}

/** The namespaces, Nebula daemons and probes of one run. */
export class Topology {
  /** The per-run tag in every name. */
  readonly tag: string;
  /** The switch namespace (the bridge). */
  readonly switchNs: string;
  /** Host namespace per node. */
  readonly ns: Record<NodeName, string>;
  /** Underlay address per node. */
  readonly underlay: Record<NodeName, string>;
  /** Underlay prefix length. */
  readonly underlayPrefix: number;
  readonly o: TopologyOptions;
  /** Running Nebula per node. */
  readonly nebula: Partial<Record<NodeName, Child>> = {};
  /** Every child started in the namespaces (services, peers, probes). */
  readonly children: Child[] = [];
  #created: string[] = [];

  constructor(o: TopologyOptions) {
    this.o = o;
    this.tag = crypto.randomUUID().slice(0, 6);
    this.switchNs = `je2e${this.tag}sw`;
    this.ns = { mesh: `je2e${this.tag}m`, joi: `je2e${this.tag}j`, openhab: `je2e${this.tag}o` };
    const { ips, prefix } = hostAddresses(o.underlayCidr, HOSTS.length);
    const [mesh, joi, openhab] = ips;
    if (!mesh || !joi || !openhab) throw new Error(`topology: ${o.underlayCidr} is too small`);
    this.underlay = { mesh, joi, openhab };
    this.underlayPrefix = prefix;
  }

  /** Every namespace of the run, the switch first. */
  get namespaces(): string[] {
    return [this.switchNs, ...HOSTS.map((h) => this.ns[h])];
  }

  /** The Nebula plan the node configs are rendered from. */
  get plan(): NebulaPlan {
    return {
      cidr: this.o.cidr,
      overlay: this.o.overlay,
      underlay: this.underlay,
      port: this.o.port,
      ports: this.o.ports,
      interface: this.o.interface,
      pkiDir: `${this.o.dir}/pki`,
    };
  }

  /** Runs `cmd args` inside a host namespace. */
  exec(node: NodeName, cmd: string, args: string[], check = true) {
    return sh("ip", ["netns", "exec", this.ns[node], cmd, ...args], check);
  }

  /** Starts a child inside a host namespace and tracks it for teardown. */
  spawn(node: NodeName, name: string, cmd: string, args: string[], o: ChildOptions = {}): Child {
    const c = new Child(name, "ip", ["netns", "exec", this.ns[node], cmd, ...args], o);
    this.children.push(c);
    return c;
  }

  /** A probe agent in `node`'s namespace that may dial exactly `allowNet`. */
  async agent(node: NodeName, allowNet: string[]): Promise<NsAgent> {
    const a = new NsAgent(this.ns[node], node, allowNet);
    this.children.push(a.child);
    await a.ready();
    return a;
  }

  /** Builds the namespaces, the bridge and the links. */
  async build(): Promise<void> {
    await buildBridge({
      switchNs: this.switchNs,
      hosts: HOSTS.map((node) => ({
        ns: this.ns[node],
        port: `v${node}`,
        address: this.underlay[node],
      })),
      prefix: this.underlayPrefix,
      created: (ns) => this.#created.push(ns),
    });
    for (const node of HOSTS) {
      // A SYN that Nebula drops gives up after ~3 s instead of ~2 min, so probes
      // of forbidden ports (and the services' own retries) end quickly.
      await this.exec(node, "sh", ["-c", "echo 1 > /proc/sys/net/ipv4/tcp_syn_retries"]);
      // Loose reverse-path filtering, as Debian's systemd ships it (a fresh
      // namespace has none): it admits a forged overlay source on the underlay,
      // so the guard alone is what stops one.
      await this.exec(node, "sh", ["-c", "echo 2 > /proc/sys/net/ipv4/conf/all/rp_filter"]);
    }
  }

  /** Makes the CA, signs the three nodes and writes their configs. */
  async pki(nebulaCert = "/usr/bin/nebula-cert"): Promise<void> {
    const outDir = this.plan.pkiDir;
    await createCa({ nebulaCert, outDir, name: `joi e2e ${this.tag}`, duration: "2h" });
    const prefix = Number(this.o.cidr.split("/")[1]);
    await signNodes({ nebulaCert, outDir, overlay: this.o.overlay, prefix, duration: "1h" });
    for (const node of HOSTS) {
      await Deno.writeTextFile(this.configPath(node), renderNodeConfig(node, this.plan), {
        mode: 0o600,
      });
    }
    await Deno.writeTextFile(`${this.o.dir}/guard.nft`, renderGuard(this.plan), { mode: 0o644 });
  }

  /** The node's Nebula config file. */
  configPath(node: NodeName): string {
    return `${this.o.dir}/${node}.yml`;
  }

  /** Loads the guard in every host namespace (one `nft -f` transaction each). */
  async guard(): Promise<void> {
    for (const node of HOSTS) await this.exec(node, "nft", ["-f", `${this.o.dir}/guard.nft`]);
  }

  /** Packets the guard dropped in `node`'s namespace (the sum of its drop counters). */
  async guardDrops(node: NodeName): Promise<number> {
    const r = await this.exec(node, "nft", ["list", "table", "inet", "joi_nebula_guard"]);
    const counts = [...r.stdout.matchAll(/counter packets (\d+) bytes \d+ drop/g)];
    if (counts.length === 0) {
      throw new Error(`no drop counter in the guard of ${node}:\n${r.stdout}`);
    }
    return counts.reduce((sum, m) => sum + Number(m[1]), 0);
  }

  /** Starts Nebula in `node`'s namespace and waits until its interface has the overlay address. */
  async startNebula(node: NodeName): Promise<Child> {
    const c = this.spawn(node, `nebula (${node})`, "nebula", ["-config", this.configPath(node)]);
    this.nebula[node] = c;
    await this.until(`nebula on ${node} to bring up ${this.o.interface}`, async () => {
      if (c.exited) throw new Error(`nebula on ${node} exited:\n${c.tail()}`);
      const r = await this.exec(node, "ip", ["-j", "addr", "show", "dev", this.o.interface], false);
      return r.code === 0 && r.stdout.includes(`"${this.o.overlay[node]}"`);
    });
    return c;
  }

  /** Kills Nebula in `node`'s namespace (its interface goes with it). */
  async stopNebula(node: NodeName): Promise<void> {
    const c = this.nebula[node];
    if (!c) return;
    await c.stop("SIGKILL");
    delete this.nebula[node];
    await this.until(`${this.o.interface} to vanish on ${node}`, async () => {
      const r = await this.exec(node, "ip", ["link", "show", "dev", this.o.interface], false);
      return r.code !== 0;
    });
  }

  /** {@link waitUntil}, for the topology's tests. */
  until(
    what: string,
    cond: () => boolean | Promise<boolean>,
    limitMs = 30_000,
    watch: Child[] = [],
  ): Promise<void> {
    return waitUntil(what, cond, limitMs, watch);
  }

  /** Kills every child, then deletes every namespace this run created. */
  async destroy(): Promise<string[]> {
    await Promise.all(this.children.map((c) => c.stop("SIGKILL")));
    // anything still running in a namespace (a grandchild) is killed first
    const r = await deleteNamespaces(this.#created.reverse());
    return [...r.killed.map((k) => `${k} was still running`), ...r.problems];
  }
}
