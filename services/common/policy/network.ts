/**
 * Schema of `network.yaml`: where each program listens and whom it may reach
 * over Nebula. The permission manifest derives every `--allow-net` from it.
 *
 * @module
 */
import { z } from "zod";
import { flagSafePath, httpUrl, inCidr, ipv4, ipv4Cidr, port } from "./primitives.ts";
import type { RuleIssue } from "./source.ts";

/** The whole `network.yaml`. */
export const NetworkSchema = z.object({
  nebula: z.object({
    cidr: ipv4Cidr,
    interface: z.string().regex(/^[A-Za-z0-9_.-]{1,15}$/, {
      error: (iss) => `${JSON.stringify(iss.input)} is not a network interface name`,
    }),
    /** The isolated bridge (vmbr1) Nebula's UDP runs over: the unit's only IP allow list. */
    underlay_cidr: ipv4Cidr,
    /** Nebula's UDP port. */
    port,
  }).strict(),
  hosts: z.object({ mesh: ipv4, joi: ipv4, openhab: ipv4 }).strict(),
  ports: z.object({
    joi_inbound: port,
    mesh_outbound: port,
    joi_ingest: port,
    proxy: port,
  }).strict(),
  openhab: z.object({ url: httpUrl }).strict(),
  signal_cli: z.object({ socket: flagSafePath, data_dir: flagSafePath }).strict(),
}).strict();

/** A validated `network.yaml`. */
export type Network = z.infer<typeof NetworkSchema>;

/**
 * Single-file rules: every host lies in the Nebula network (its source
 * address is only an identity there), and ports are distinct (the local run
 * puts every program on 127.0.0.1).
 */
export function networkRules(n: Network): RuleIssue[] {
  const issues: RuleIssue[] = [];
  for (const [name, ip] of Object.entries(n.hosts)) {
    if (!inCidr(ip, n.nebula.cidr)) {
      issues.push({
        path: ["hosts", name],
        message: `${ip} is outside the Nebula network ${n.nebula.cidr}`,
      });
    }
  }
  // split always yields at least one element
  const overlayBase = n.nebula.cidr.split("/")[0]!;
  const underlayBase = n.nebula.underlay_cidr.split("/")[0]!;
  if (inCidr(overlayBase, n.nebula.underlay_cidr) || inCidr(underlayBase, n.nebula.cidr)) {
    issues.push({
      path: ["nebula", "underlay_cidr"],
      message:
        `the underlay ${n.nebula.underlay_cidr} overlaps the Nebula network ${n.nebula.cidr}`,
    });
  }
  const seen = new Map<number, string>();
  for (const [name, p] of Object.entries(n.ports)) {
    const prior = seen.get(p);
    if (prior !== undefined) {
      issues.push({
        path: ["ports", name],
        message: `port ${p} is already used by ports.${prior}`,
      });
    } else seen.set(p, name);
  }
  return issues;
}
