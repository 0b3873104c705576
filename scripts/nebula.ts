/**
 * `deno task nebula --underlay mesh=IP,joi=IP,openhab=IP [--out DIR]`:
 * creates (once) the Nebula CA and (re)signs the three node certificates with
 * the groups `gateway`, `ai`, `openhab` and short lifetimes, then writes each
 * node's config (`<node>.yml`, with the architecture's firewall) and the
 * nftables guard (`guard.nft`). Overlay addresses, ports and the interface come
 * from `network.yaml`. Copy `ca.crt`, `<node>.crt`, `<node>.key` and
 * `<node>.yml` to each VM's `/etc/nebula/`, and move `ca.key` offline.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { loadPolicyFile } from "../services/common/policy/mod.ts";
import { createCa, signNodes } from "./nebula/certs.ts";
import {
  nebulaPlanOf,
  type NodeName,
  NODES,
  renderGuard,
  renderNodeConfig,
} from "./nebula/config.ts";

const USAGE = `usage: deno task nebula --underlay mesh=IP,joi=IP,openhab=IP [--out DIR]
       [--config-dir DIR] [--ca-name NAME] [--ca-duration 8760h] [--node-duration 2160h]
       [--rotate] [--pki-dir /etc/nebula] [--port 4242]`;

/** Parses `mesh=IP,joi=IP,openhab=IP`. */
export function parseUnderlay(text: string): Record<NodeName, string> {
  const out: Partial<Record<NodeName, string>> = {};
  for (const part of text.split(",")) {
    const [name = "", ip] = part.split("=");
    if (!Object.hasOwn(NODES, name)) {
      throw new Error(`--underlay: unknown node "${name}" (mesh, joi, openhab)`);
    }
    if (ip === undefined || !/^\d{1,3}(\.\d{1,3}){3}$/.test(ip)) {
      throw new Error(`--underlay: ${name}=${ip ?? ""} is not an IPv4 address`);
    }
    out[name as NodeName] = ip;
  }
  for (const n of Object.keys(NODES)) {
    if (!out[n as NodeName]) throw new Error(`--underlay: missing ${n}=IP`);
  }
  return out as Record<NodeName, string>;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      underlay: { type: "string" },
      out: { type: "string", default: "./var/nebula" },
      "config-dir": { type: "string", default: "./policies" },
      "ca-name": { type: "string", default: "joi homelab" },
      "ca-duration": { type: "string", default: "8760h" },
      "node-duration": { type: "string", default: "2160h" },
      "pki-dir": { type: "string", default: "/etc/nebula" },
      "nebula-cert": { type: "string", default: "/usr/bin/nebula-cert" },
      port: { type: "string", default: "4242" },
      rotate: { type: "boolean", default: false },
    },
  });
  if (!values.underlay) {
    console.error(USAGE);
    return 2;
  }
  const underlay = parseUnderlay(values.underlay);
  const network = loadPolicyFile("network", `${values["config-dir"]}/network.yaml`);
  const [, prefix] = network.nebula.cidr.split("/");
  const out = values.out;
  const o = { nebulaCert: values["nebula-cert"], outDir: out };
  try {
    await Deno.lstat(o.nebulaCert);
  } catch {
    console.error(
      `nebula: ${o.nebulaCert} not found: the build host needs Debian's nebula package ` +
        "(apt-get install nebula): nebula-cert signs the certificates, and its nebula binary " +
        "goes to the VMs in their bundles",
    );
    return 1;
  }
  if (await createCa({ ...o, name: values["ca-name"], duration: values["ca-duration"] })) {
    console.log(
      `created ${out}/ca.crt and ${out}/ca.key (0600): move ca.key offline after signing`,
    );
  }
  const overlay = network.hosts as Record<NodeName, string>;
  const signed = await signNodes({
    ...o,
    overlay,
    prefix: Number(prefix),
    duration: values["node-duration"],
    force: values.rotate,
  });
  for (const n of signed) console.log(`signed ${out}/${n}.crt (group ${NODES[n].group})`);
  const plan = nebulaPlanOf(network, {
    underlay,
    port: Number(values.port),
    pkiDir: values["pki-dir"],
  });
  for (const node of Object.keys(NODES) as NodeName[]) {
    await Deno.writeTextFile(`${out}/${node}.yml`, renderNodeConfig(node, plan), { mode: 0o600 });
  }
  await Deno.writeTextFile(`${out}/guard.nft`, renderGuard(plan), { mode: 0o644 });
  console.log(`wrote ${out}/{mesh,joi,openhab}.yml and ${out}/guard.nft`);
  return 0;
}

if (import.meta.main) {
  try {
    Deno.exit(await main());
  } catch (e) {
    console.error(`nebula: ${(e as Error).message}`);
    Deno.exit(1);
  }
}
