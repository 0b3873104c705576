/**
 * The network the packet tests run on, all in namespaces the test creates:
 * a router namespace with the bridges net-pro, net-perso, net-anklume and
 * net-ai-tools (IP forwarding on), and one client namespace per bridge with a
 * TCP agent (tests/peers/ai_switch/tcp_agent.ts) that serves an echo port and
 * dials others on command. ai-switch runs inside the router namespace, as it
 * would on the anklume host.
 *
 * @module
 */
import { PEERS, sh, uniqueTag } from "./harness.ts";

/** The domains of the topology, in subnet order (10.199.<i+1>.0/24). */
export const DOMAINS = ["pro", "perso", "anklume", "ai-tools"] as const;
/** A domain of {@link DOMAINS}. */
export type Domain = typeof DOMAINS[number];
/** The echo port every agent serves. */
export const PORT = 7000;

/** The client address of a domain. */
export function addressOf(d: Domain): string {
  return `10.199.${DOMAINS.indexOf(d) + 1}.2`;
}

/** One agent process in a client namespace. */
export class Agent {
  #child: Deno.ChildProcess;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #waiting = new Map<number, (v: Record<string, unknown>) => void>();
  #next = 1;
  #ready: Promise<void>;

  constructor(ns: string, listen: string, allowed: string[]) {
    const child = new Deno.Command("ip", {
      args: [
        "netns",
        "exec",
        ns,
        "deno",
        "run",
        "--no-prompt",
        `--allow-net=${allowed.join(",")}`,
        `${PEERS}tcp_agent.ts`,
        `--listen=${listen}`,
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    this.#child = child;
    this.#writer = child.stdin.getWriter();
    let ready: () => void;
    this.#ready = new Promise((r) => (ready = r));
    (async () => {
      let buf = "";
      const dec = new TextDecoder();
      for await (const chunk of child.stdout) {
        buf += dec.decode(chunk);
        let nl;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const msg = JSON.parse(buf.slice(0, nl));
          buf = buf.slice(nl + 1);
          if (msg.ready) ready!();
          else this.#waiting.get(msg.id)?.(msg);
        }
      }
    })();
  }

  /** Resolves once the agent listens. */
  ready(): Promise<void> {
    return this.#ready;
  }

  /** Sends one command, resolves with its answer. */
  async request(cmd: Record<string, unknown>): Promise<Record<string, unknown>> {
    const id = this.#next++;
    const answer = new Promise<Record<string, unknown>>((r) => this.#waiting.set(id, r));
    await this.#writer.write(new TextEncoder().encode(JSON.stringify({ id, ...cmd }) + "\n"));
    return await answer;
  }

  /** True if a new connection to `to` opens and echoes within `timeoutMs`. */
  async canConnect(to: Domain, timeoutMs = 1500): Promise<boolean> {
    const r = await this.request({ op: "probe", host: addressOf(to), port: PORT, timeoutMs });
    return r.ok === true;
  }

  /** Stops the agent. */
  async stop(): Promise<void> {
    try {
      await this.#writer.close();
    } catch { /* already closed */ }
    try {
      this.#child.kill("SIGKILL");
    } catch { /* already gone */ }
    await this.#child.status;
  }
}

/** The namespaces and agents of one test. */
export class Topology {
  /** The router namespace (where ai-switch runs). */
  readonly router: string;
  /** Client namespace per domain. */
  readonly clients: Record<Domain, string>;
  /** Agent per domain. */
  readonly agents: Partial<Record<Domain, Agent>> = {};

  private constructor(tag: string) {
    this.router = `aisr${tag}`;
    this.clients = Object.fromEntries(
      DOMAINS.map((d, i) => [d, `aisc${tag}${i}`]),
    ) as Record<Domain, string>;
  }

  /** Builds the namespaces, bridges, links and agents. */
  static async create(): Promise<Topology> {
    const t = new Topology(uniqueTag());
    try {
      await t.#build();
    } catch (e) {
      await t.destroy();
      throw e;
    }
    return t;
  }

  /** The agent of a domain. */
  agent(d: Domain): Agent {
    const a = this.agents[d];
    if (!a) throw new Error(`no agent for ${d}`);
    return a;
  }

  async #build(): Promise<void> {
    const r = this.router;
    await sh("ip", ["netns", "add", r]);
    await sh("ip", ["-n", r, "link", "set", "lo", "up"]);
    await sh("ip", ["netns", "exec", r, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"]);
    for (const [i, d] of DOMAINS.entries()) {
      const c = this.clients[d];
      const br = `net-${d}`;
      const n = i + 1;
      await sh("ip", ["-n", r, "link", "add", br, "type", "bridge"]);
      await sh("ip", ["-n", r, "addr", "add", `10.199.${n}.1/24`, "dev", br]);
      await sh("ip", ["-n", r, "link", "set", br, "up"]);
      await sh("ip", ["netns", "add", c]);
      await sh("ip", ["-n", c, "link", "set", "lo", "up"]);
      await sh("ip", [
        "-n",
        r,
        "link",
        "add",
        `v${n}`,
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        c,
      ]);
      await sh("ip", ["-n", r, "link", "set", `v${n}`, "master", br, "up"]);
      await sh("ip", ["-n", c, "addr", "add", `10.199.${n}.2/24`, "dev", "eth0"]);
      await sh("ip", ["-n", c, "link", "set", "eth0", "up"]);
      await sh("ip", ["-n", c, "route", "add", "default", "via", `10.199.${n}.1`]);
      // A dropped SYN gives up after ~3 s instead of ~2 min, so blocked attempts end.
      await sh("ip", [
        "netns",
        "exec",
        c,
        "sh",
        "-c",
        "echo 1 > /proc/sys/net/ipv4/tcp_syn_retries",
      ]);
    }
    const all = DOMAINS.map(addressOf);
    for (const d of DOMAINS) {
      this.agents[d] = new Agent(this.clients[d], `${addressOf(d)}:${PORT}`, all);
    }
    await Promise.all(DOMAINS.map((d) => this.agent(d).ready()));
  }

  /** Stops the agents and deletes every namespace (links go with them). */
  async destroy(): Promise<void> {
    await Promise.all(Object.values(this.agents).map((a) => a.stop()));
    for (const ns of [...Object.values(this.clients), this.router]) {
      await sh("ip", ["netns", "del", ns], false);
    }
  }
}
