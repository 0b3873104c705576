/**
 * The production addresses, from the validated policy files: Nebula hosts and
 * ports (`network.yaml`), Ollama (`llm.yaml`), the web search proxy and its
 * domains (`tools.yaml`, when enabled).
 *
 * @module
 */
import type { ProductionAddresses, WebSearchAccess } from "../permissions/mod.ts";
import type { Llm } from "../policy/llm.ts";
import type { Network } from "../policy/network.ts";
import type { Tools } from "../policy/tools.ts";

/** An `http://host:port/...` URL as the endpoint a program dials (port defaulted by scheme). */
export function endpointOf(url: string): { host: string; port: number } {
  const u = new URL(url);
  const port = u.port ? Number(u.port) : u.protocol === "https:" ? 443 : 80;
  return { host: u.hostname.replace(/^\[|\]$/g, ""), port };
}

/**
 * What joi must be allowed to dial for web search, or undefined when
 * tools.yaml does not enable it: the proxy and each allowed domain on 443.
 */
export function webSearchAccess(tools: Tools): WebSearchAccess | undefined {
  const t = Object.hasOwn(tools.tools, "web_search") ? tools.tools.web_search : undefined;
  if (!t?.enabled || t.transport !== "http_proxy") return undefined;
  return {
    proxy: endpointOf(t.endpoint),
    hosts: (t.policy.allowed_domains ?? []).map((d) => `${d}:443`),
  };
}

/** The production addresses, from validated `network.yaml`, `llm.yaml` (and `tools.yaml`). */
export function productionAddressesFrom(
  network: Network,
  llm: Pick<Llm, "endpoint">,
  tools?: Tools,
  meshVoice?: ProductionAddresses["meshVoice"],
): ProductionAddresses {
  const webSearch = tools ? webSearchAccess(tools) : undefined;
  return {
    ...(webSearch ? { webSearch } : {}),
    ...(meshVoice ? { meshVoice } : {}),
    underlay: { cidr: network.nebula.underlay_cidr, port: network.nebula.port },
    nebulaInterface: network.nebula.interface,
    hosts: network.hosts,
    ports: {
      joiInbound: network.ports.joi_inbound,
      meshOutbound: network.ports.mesh_outbound,
      joiIngest: network.ports.joi_ingest,
    },
    llm: endpointOf(llm.endpoint),
    openhab: endpointOf(network.openhab.url),
    signalSocket: network.signal_cli.socket,
    signalDataDir: network.signal_cli.data_dir,
  };
}
