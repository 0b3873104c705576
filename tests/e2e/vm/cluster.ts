/**
 * The VMs of one run of a booted test, on one bridge: {@link Cluster.start}
 * sweeps what killed runs left behind, writes down what this run will create
 * (see {@link ../leftovers.ts}), builds or reuses the cached Debian image,
 * builds the bridge `vmbr1` with each VM's static underlay address, copies the
 * image per VM and boots them all. {@link Cluster.destroy} powers them off and
 * removes everything the run created; {@link Cluster.leftovers} checks that
 * nothing of it remains (namespaces, cgroups, mounts, processes, files).
 *
 * Every name carries a per-run tag, so concurrent runs never collide.
 *
 * @module
 */
import { forgetRun, recordRun, sweepDeadRuns } from "../leftovers.ts";
import { sh } from "../process.ts";
import { ensureImage } from "./image.ts";
import { buildBridge, deleteNamespaces } from "./network.ts";
import { removeCgroup, removeTree, Vm } from "./vm.ts";

/** One VM of a cluster. */
export interface ClusterHost {
  /** Host name (`joi`, `mesh`, `openhab`). */
  name: string;
  /** Its static address on vmbr1. */
  address: string;
}

/** Options of {@link Cluster.start}. */
export interface ClusterOptions {
  /** The VMs. */
  hosts: ClusterHost[];
  /** Prefix length of the underlay (the README's /29). */
  prefix: number;
  /** Progress lines. */
  print?: (line: string) => void;
  /** Boot the VMs (default true). */
  boot?: boolean;
}

/** Where runs keep their VMs' root file systems. */
export const RUN_DIR = "./var/e2e";

/** A run's VMs on their bridge. */
export class Cluster {
  /** The per-run tag in every name. */
  readonly tag: string;
  /** The run's directory (absolute): VM roots and whatever the test puts there. */
  readonly dir: string;
  /** The switch namespace holding vmbr1. */
  readonly switchNs: string;
  /** The VMs by name. */
  readonly vms: Record<string, Vm> = {};
  readonly #namespaces: string[];
  readonly #cgroups: string[];
  readonly #hosts: ClusterHost[];

  private constructor(tag: string, dir: string, hosts: ClusterHost[]) {
    this.tag = tag;
    this.dir = dir;
    this.#hosts = hosts;
    this.switchNs = `jvm${tag}sw`;
    this.#namespaces = [this.switchNs, ...hosts.map((h) => this.netnsOf(h.name))];
    this.#cgroups = hosts.map((h) => this.cgroupOf(h.name));
  }

  /** VM `name` (throws when the cluster has none of that name). */
  vm(name: string): Vm {
    const vm = this.vms[name];
    if (!vm) throw new Error(`cluster: no VM named ${name} (${Object.keys(this.vms).join(", ")})`);
    return vm;
  }

  /** The network namespace of VM `name`. */
  netnsOf(name: string): string {
    return `jvm${this.tag}${name}`;
  }

  /** The cgroup of VM `name`. */
  cgroupOf(name: string): string {
    return `joi-e2e-${this.tag}-${name}`;
  }

  /** Builds the bridge and the VMs, and boots them (all at once). */
  static async start(o: ClusterOptions): Promise<Cluster> {
    const print = o.print ?? (() => {});
    const swept = await sweepDeadRuns();
    if (swept.length) print(`e2e: swept leftovers of dead runs: ${swept.join(", ")}`);
    const tag = crypto.randomUUID().slice(0, 6);
    await Deno.mkdir(`${RUN_DIR}/run-${tag}`, { recursive: true, mode: 0o700 });
    const dir = await Deno.realPath(`${RUN_DIR}/run-${tag}`);
    const c = new Cluster(tag, dir, o.hosts);
    await recordRun(tag, {
      pid: Deno.pid,
      namespaces: c.#namespaces,
      users: [],
      stage: dir,
      cgroups: c.#cgroups,
    });
    try {
      const image = await ensureImage(print);
      await buildBridge({
        switchNs: c.switchNs,
        hosts: o.hosts.map((h) => ({
          ns: c.netnsOf(h.name),
          port: `v${h.name}`.slice(0, 15),
          address: h.address,
        })),
        prefix: o.prefix,
      });
      for (const h of o.hosts) {
        c.vms[h.name] = await Vm.create({
          name: h.name,
          image,
          disk: `${dir}/${h.name}`,
          netns: c.netnsOf(h.name),
          cgroup: c.cgroupOf(h.name),
        });
      }
      if (o.boot ?? true) {
        const started = Date.now();
        const states = await Promise.all(Object.values(c.vms).map((vm) => vm.boot()));
        print(
          `e2e: booted ${Object.keys(c.vms).join(", ")} in ${Date.now() - started} ms ` +
            `(${states.join(", ")})`,
        );
      }
      return c;
    } catch (e) {
      const problems = await c.destroy();
      if (problems.length) (e as Error).message += `\n(cleanup: ${problems.join("; ")})`;
      throw e;
    }
  }

  /**
   * Powers every VM off (killing what does not stop), deletes the namespaces,
   * cgroups and the run's directory (kept when `keep`); returns what was
   * wrong. The run's record is dropped only when nothing was.
   */
  async destroy(keep = false): Promise<string[]> {
    const problems: string[] = [];
    const results = await Promise.all(Object.values(this.vms).map((vm) => vm.destroy(keep)));
    for (const r of results) problems.push(...r);
    const ns = await deleteNamespaces(this.#namespaces);
    problems.push(...ns.killed.map((k) => `${k} was still running`), ...ns.problems);
    // what a killed VM's processes held is free only now
    for (const cg of this.#cgroups) problems.push(...await removeCgroup(cg));
    if (!keep) problems.push(...await removeTree(this.dir));
    problems.push(...await this.leftovers(keep));
    if (problems.length === 0) await forgetRun(this.tag);
    return problems;
  }

  /** What of this run still exists (after {@link destroy}, nothing should). */
  async leftovers(keepFiles = false): Promise<string[]> {
    const left: string[] = [];
    const netns = (await sh("ip", ["netns", "list"], false)).stdout;
    for (const ns of this.#namespaces) {
      if (new RegExp(`^${ns}\\b`, "m").test(netns)) left.push(`namespace ${ns}`);
    }
    const r = await sh("sh", [
      "-c",
      // cgroups, mounts in the host's table, processes rooted in a VM's tree
      'ls -d /sys/fs/cgroup/*/joi-e2e-"$1"-* 2>/dev/null; ' +
      'grep -F "$2" /proc/self/mountinfo | sed "s/^/mount: /"; ' +
      'for p in /proc/[0-9]*; do r=$(readlink "$p/root" 2>/dev/null) || continue; ' +
      'case "$r" in "$2"/*) echo "process ${p#/proc/} rooted in $r";; esac; done; true',
      "sh",
      this.tag,
      this.dir,
    ], false);
    left.push(...r.stdout.split("\n").filter(Boolean));
    if (!keepFiles) {
      try {
        await Deno.stat(this.dir);
        left.push(`directory ${this.dir}`);
      } catch { /* gone, as it should be */ }
    }
    return left;
  }

  /** The VMs' names and addresses. */
  get hosts(): ClusterHost[] {
    return [...this.#hosts];
  }
}
