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

const decoder = new TextDecoder();

/** Runs a command; throws with its stderr unless `check` is false. */
export async function sh(
  cmd: string,
  args: string[],
  check = true,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(cmd, { args, stdin: "null", stdout: "piped", stderr: "piped" })
    .output();
  const r = {
    code: out.code,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
  };
  if (check && out.code !== 0) {
    throw new Error(`${cmd} ${args.join(" ")} failed (exit ${out.code}): ${r.stderr.trim()}`);
  }
  return r;
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

/** How a {@link Child} is started. */
export interface ChildOptions {
  /** Working directory. */
  cwd?: string;
  /** Environment variables. */
  env?: Record<string, string>;
  /** Start from an empty environment. */
  clearEnv?: boolean;
  /** Pipe stdin (for {@link Child.send}). */
  stdin?: boolean;
  /** Parse stdout as JSON lines into {@link Child.lines}. */
  lines?: boolean;
}

/** A child process with its output kept for failure messages. */
export class Child {
  readonly name: string;
  readonly process: Deno.ChildProcess;
  /** stderr (and stdout when not consumed as lines), as received. */
  readonly output: string[] = [];
  /** JSON lines received on stdout (when `lines` was asked for). */
  readonly lines: Record<string, unknown>[] = [];
  exited = false;
  #writer: WritableStreamDefaultWriter<Uint8Array> | null = null;
  #watchers = new Set<() => void>();

  constructor(name: string, cmd: string, args: string[], o: ChildOptions = {}) {
    this.name = name;
    this.process = new Deno.Command(cmd, {
      args,
      ...(o.cwd !== undefined ? { cwd: o.cwd } : {}),
      ...(o.env !== undefined ? { env: o.env } : {}),
      ...(o.clearEnv !== undefined ? { clearEnv: o.clearEnv } : {}),
      stdin: o.stdin ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    if (o.stdin) this.#writer = this.process.stdin.getWriter();
    this.#drain(this.process.stderr, false);
    this.#drain(this.process.stdout, o.lines ?? false);
    this.process.status.then(() => {
      this.exited = true;
      this.#notify();
    });
  }

  async #drain(stream: ReadableStream<Uint8Array>, lines: boolean): Promise<void> {
    const dec = new TextDecoder();
    let buf = "";
    try {
      for await (const chunk of stream) {
        const text = dec.decode(chunk, { stream: true });
        if (!lines) {
          this.output.push(text);
          continue;
        }
        buf += text;
        let nl;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          try {
            this.lines.push(JSON.parse(line));
          } catch {
            this.output.push(line + "\n");
          }
          this.#notify();
        }
      }
    } catch { /* the process went away */ }
  }

  #notify(): void {
    for (const w of this.#watchers) w();
  }

  /** Writes one JSON line to stdin. */
  async send(value: unknown): Promise<void> {
    if (!this.#writer) throw new Error(`${this.name}: stdin is not piped`);
    await this.#writer.write(new TextEncoder().encode(JSON.stringify(value) + "\n"));
  }

  /** Waits (bounded) for a stdout line matching `pred`; fails naming `what`. */
  waitLine(
    what: string,
    pred: (l: Record<string, unknown>) => boolean,
    timeoutMs = 30_000,
  ): Promise<Record<string, unknown>> {
    const found = () => this.lines.find(pred);
    return new Promise((resolve, reject) => {
      const check = () => {
        const l = found();
        if (l) {
          done();
          resolve(l);
        } else if (this.exited) {
          done();
          reject(new Error(`${this.name} exited before ${what}:\n${this.tail()}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`gave up waiting for ${what} from ${this.name}:\n${this.tail()}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.#watchers.delete(check);
      };
      this.#watchers.add(check);
      check();
    });
  }

  /** The last lines of its output, for failure messages. */
  tail(n = 40): string {
    return this.output.join("").split("\n").slice(-n).join("\n");
  }

  /** Sends `signal` (ignored when it already exited), then waits for the exit. */
  async stop(signal: Deno.Signal = "SIGTERM"): Promise<void> {
    try {
      await this.#writer?.close();
    } catch { /* closed */ }
    if (!this.exited) {
      try {
        this.process.kill(signal);
      } catch { /* gone */ }
    }
    const killer = setTimeout(() => {
      try {
        this.process.kill("SIGKILL");
      } catch { /* gone */ }
    }, 5_000);
    await this.process.status;
    clearTimeout(killer);
  }
}

/**
 * Polls `cond` every 50 ms for at most `limitMs`; fails early when a child of
 * `watch` exits. The error names `what` and shows the children's output.
 */
export async function waitUntil(
  what: string,
  cond: () => boolean | Promise<boolean>,
  limitMs = 30_000,
  watch: Child[] = [],
): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (true) {
    if (await cond()) return;
    const exited = watch.filter((c) => c.exited);
    if (exited.length > 0) {
      // give the others a moment to report too: several can fail for one cause
      await new Promise((r) => setTimeout(r, 1_000));
      throw new Error(
        watch.filter((c) => c.exited).map((c) =>
          `${c.name} exited while waiting for ${what}:\n${c.tail()}`
        ).join("\n"),
      );
    }
    if (Date.now() > deadline) {
      throw new Error(
        `gave up after ${limitMs} ms waiting for ${what}\n` +
          watch.map((c) => `--- ${c.name}:\n${c.tail()}`).join("\n"),
      );
    }
    await new Promise((r) => setTimeout(r, 50));
  }
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
    const sw = this.switchNs;
    await sh("ip", ["netns", "add", sw]);
    this.#created.push(sw);
    await sh("ip", ["-n", sw, "link", "set", "lo", "up"]);
    await sh("ip", ["-n", sw, "link", "add", "vmbr1", "type", "bridge"]);
    await sh("ip", ["-n", sw, "link", "set", "vmbr1", "up"]);
    for (const node of HOSTS) {
      const ns = this.ns[node];
      await sh("ip", ["netns", "add", ns]);
      this.#created.push(ns);
      await sh("ip", ["-n", ns, "link", "set", "lo", "up"]);
      const port = `v${node}`;
      await sh("ip", [
        "-n",
        sw,
        "link",
        "add",
        port,
        "type",
        "veth",
        "peer",
        "name",
        "eth1",
        "netns",
        ns,
      ]);
      await sh("ip", ["-n", sw, "link", "set", port, "master", "vmbr1", "up"]);
      await sh("ip", [
        "-n",
        ns,
        "addr",
        "add",
        `${this.underlay[node]}/${this.underlayPrefix}`,
        "dev",
        "eth1",
      ]);
      await sh("ip", ["-n", ns, "link", "set", "eth1", "up"]);
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
    const problems: string[] = [];
    await Promise.all(this.children.map((c) => c.stop("SIGKILL")));
    for (const ns of this.#created.reverse()) {
      // anything still running in the namespace (a grandchild) is killed first
      const pids = await sh("ip", ["netns", "pids", ns], false);
      for (const pid of pids.stdout.split(/\s+/).filter(Boolean)) {
        await sh("kill", ["-KILL", pid], false);
        problems.push(`pid ${pid} was still running in ${ns}`);
      }
      const r = await sh("ip", ["netns", "del", ns], false);
      if (r.code !== 0) problems.push(`ip netns del ${ns}: ${r.stderr.trim()}`);
    }
    return problems;
  }
}
