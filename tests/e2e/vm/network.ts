/**
 * The isolated bridge of the deployment guide, built from network namespaces:
 * a switch namespace holding `vmbr1`, and one namespace per host, each joined
 * to the bridge by a veth pair whose host end is `eth1` with the host's static
 * underlay address. Nothing is routed anywhere else, so whatever runs in a host
 * namespace can reach its peers on the bridge and nothing outside.
 *
 * The namespaces are named (`/run/netns/<name>`), so they outlive what runs in
 * them: a VM booted in one keeps its NIC and address across a reboot, as a
 * Proxmox VM keeps its virtual NIC.
 *
 * @module
 */
import { sh } from "../process.ts";

/** One host on the bridge. */
export interface BridgeHost {
  /** Network namespace name. */
  ns: string;
  /** The veth end in the switch namespace (unique per host, at most 15 chars). */
  port: string;
  /** Underlay address. */
  address: string;
}

/** What {@link buildBridge} builds. */
export interface BridgeOptions {
  /** The switch namespace (holds vmbr1). */
  switchNs: string;
  /** The hosts. */
  hosts: BridgeHost[];
  /** Prefix length of the underlay. */
  prefix: number;
  /** Called with each namespace right after it exists (for cleanup records). */
  created?: (ns: string) => void;
}

/** Builds the switch namespace, `vmbr1`, the host namespaces and their links. */
export async function buildBridge(o: BridgeOptions): Promise<void> {
  const sw = o.switchNs;
  await sh("ip", ["netns", "add", sw]);
  o.created?.(sw);
  await sh("ip", ["-n", sw, "link", "set", "lo", "up"]);
  await sh("ip", ["-n", sw, "link", "add", "vmbr1", "type", "bridge"]);
  await sh("ip", ["-n", sw, "link", "set", "vmbr1", "up"]);
  for (const h of o.hosts) {
    await sh("ip", ["netns", "add", h.ns]);
    o.created?.(h.ns);
    await sh("ip", ["-n", h.ns, "link", "set", "lo", "up"]);
    await sh("ip", [
      "-n",
      sw,
      "link",
      "add",
      h.port,
      "type",
      "veth",
      "peer",
      "name",
      "eth1",
      "netns",
      h.ns,
    ]);
    await sh("ip", ["-n", sw, "link", "set", h.port, "master", "vmbr1", "up"]);
    await sh("ip", ["-n", h.ns, "addr", "add", `${h.address}/${o.prefix}`, "dev", "eth1"]);
    await sh("ip", ["-n", h.ns, "link", "set", "eth1", "up"]);
  }
}

/** What {@link deleteNamespaces} did. */
export interface DeleteReport {
  /** Processes that were still running in a namespace, killed (`pid N in NS`). */
  killed: string[];
  /** What could not be deleted. */
  problems: string[];
}

/**
 * Deletes the namespaces that exist among `names` (the veths and the bridge go
 * with them), first killing anything still running in them.
 */
export async function deleteNamespaces(names: string[]): Promise<DeleteReport> {
  const report: DeleteReport = { killed: [], problems: [] };
  const existing = (await sh("ip", ["netns", "list"], false)).stdout;
  for (const ns of names) {
    if (!new RegExp(`^${ns}\\b`, "m").test(existing)) continue;
    const pids = await sh("ip", ["netns", "pids", ns], false);
    for (const pid of pids.stdout.split(/\s+/).filter(Boolean)) {
      await sh("kill", ["-KILL", pid], false);
      report.killed.push(`pid ${pid} in ${ns}`);
    }
    const r = await sh("ip", ["netns", "del", ns], false);
    if (r.code !== 0) report.problems.push(`ip netns del ${ns}: ${r.stderr.trim()}`);
  }
  return report;
}
