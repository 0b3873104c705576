/**
 * The production addresses (Nebula hosts, ports, Ollama, openHAB, signal-cli)
 * as `network.yaml` and `llm.yaml` state them: the input of
 * `productionLayout`, from which the units' Deno flags are derived.
 *
 * @module
 */
import type { Endpoint, ProductionAddresses } from "../../services/common/permissions.ts";
import type { Llm, Network } from "../../services/common/policy/mod.ts";

/** The host and port of an http(s) URL (default ports 80/443). */
export function endpointOf(url: string, what: string): Endpoint {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`${what}: ${JSON.stringify(url)} is not a URL`);
  }
  const port = u.port !== "" ? Number(u.port) : u.protocol === "https:" ? 443 : 80;
  return { host: u.hostname.replace(/^\[|\]$/g, ""), port };
}

/** The production addresses stated by `network.yaml` and `llm.yaml`. */
export function productionAddressesFrom(
  policies: { network: Network; llm: Llm },
): ProductionAddresses {
  const n = policies.network;
  return {
    hosts: { mesh: n.hosts.mesh, joi: n.hosts.joi, openhab: n.hosts.openhab },
    ports: {
      joiInbound: n.ports.joi_inbound,
      meshOutbound: n.ports.mesh_outbound,
      joiIngest: n.ports.joi_ingest,
    },
    llm: endpointOf(policies.llm.endpoint, "llm.yaml endpoint"),
    openhab: endpointOf(n.openhab.url, "network.yaml openhab.url"),
    signalSocket: n.signal_cli.socket,
    signalDataDir: n.signal_cli.data_dir,
  };
}
