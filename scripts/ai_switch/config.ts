/**
 * The figures ai-switch works from, taken from `infra.yml`: which domains
 * exist, which one is the AI-tools domain, where the state and log live, which
 * GPU services to stop and how.
 *
 * @module
 */

import { AI_TOOLS, type Infra } from "../../services/common/policy/mod.ts";

/** The domain whose bridge hosts the shared AI services. */
export const AI_TOOLS_DOMAIN = AI_TOOLS;

/** Linux limits interface names to 15 bytes (IFNAMSIZ - 1). */
const IFNAME_MAX = 15;

/** A DNS-safe label: lowercase letters, digits, inner hyphens, 1..63 chars. */
const DNS_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** How the GPU services are driven. */
export type ServiceManagerKind = "systemctl" | "incus";

/** Everything a switch needs to know, resolved and checked. */
export interface AiSwitchConfig {
  /** `exclusive` (one domain at a time) or `open` (switch refuses). */
  policy: "exclusive" | "open";
  /** The domain with access after boot. */
  defaultDomain: string | null;
  /** Every domain of infra.yml except ai-tools, sorted. */
  domains: string[];
  /** The state file (one line: the current domain). */
  stateFile: string;
  /** The append-only switch log. */
  logFile: string;
  /** GPU services stopped during a switch, in order. */
  gpuServices: string[];
  /** `systemctl` on the host, or `incus exec` into {@link gpuMachine}. */
  serviceManager: ServiceManagerKind;
  /** The instance holding the GPU (for `incus exec`). */
  gpuMachine: string;
}

/** Defaults of ai-switch.md, used when infra.yml leaves them out. */
export const DEFAULTS = {
  stateFile: "/opt/anklume/ai-access-current",
  logFile: "/var/log/anklume/ai-switch.log",
  gpuServices: ["ollama", "speaches"],
  serviceManager: "systemctl" as ServiceManagerKind,
  gpuMachine: "gpu-server",
} as const;

/** A configuration or usage problem, with a message saying what to fix. */
export class AiSwitchError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "AiSwitchError";
  }
}

/** The bridge of a domain (`net-<domain>`), checked against the kernel's limit. */
export function bridgeName(domain: string): string {
  const name = `net-${domain}`;
  if (!DNS_LABEL.test(domain)) {
    throw new AiSwitchError(
      `domain ${JSON.stringify(domain)} is not a DNS-safe name ` +
        `(lowercase letters, digits and inner hyphens): rename it in infra.yml`,
    );
  }
  if (new TextEncoder().encode(name).length > IFNAME_MAX) {
    throw new AiSwitchError(
      `bridge ${JSON.stringify(name)} is longer than ${IFNAME_MAX} characters ` +
        `(Linux interface limit): use a domain name of at most ${IFNAME_MAX - 4} characters`,
    );
  }
  return name;
}

/**
 * Resolves the ai-switch figures from a validated (and made effective)
 * infra.yml; the schema and rules of `services/common/policy/infra.ts` have
 * already checked names, the policy value and the service manager. What is
 * left here is the kernel's limit on bridge names.
 */
export function configFromInfra(infra: Infra): AiSwitchConfig {
  const g = infra.global;
  const policy = g.ai_access_policy ?? "open";
  if (policy !== "exclusive" && policy !== "open") {
    throw new AiSwitchError(
      `global.ai_access_policy is ${JSON.stringify(policy)}: use "exclusive" or "open"`,
    );
  }
  const names = Object.keys(infra.domains);
  for (const d of names) bridgeName(d);
  const sw = g.ai_switch;
  return {
    policy,
    defaultDomain: g.ai_access_default ?? null,
    domains: names.filter((d) => d !== AI_TOOLS_DOMAIN).sort(),
    stateFile: sw?.state_file ?? DEFAULTS.stateFile,
    logFile: sw?.log_file ?? DEFAULTS.logFile,
    gpuServices: [...(sw?.gpu_services ?? DEFAULTS.gpuServices)],
    serviceManager: sw?.service_manager ?? DEFAULTS.serviceManager,
    gpuMachine: sw?.gpu_machine ?? DEFAULTS.gpuMachine,
  };
}

/**
 * Checks that `domain` may be given access: switching is enabled, the domain
 * exists, and it is not ai-tools itself. Returns the domain.
 */
export function checkTarget(config: AiSwitchConfig, domain: string): string {
  if (config.policy === "open") {
    throw new AiSwitchError(
      `ai_access_policy is "open" in infra.yml: every domain already reaches ai-tools, ` +
        `so there is nothing to switch. Set global.ai_access_policy: exclusive to use ai-switch`,
    );
  }
  if (domain === AI_TOOLS_DOMAIN) {
    throw new AiSwitchError(
      `cannot give access to "ai-tools": it is the AI-tools domain itself. ` +
        `Choose one of: ${config.domains.join(", ")}`,
    );
  }
  if (!config.domains.includes(domain)) {
    throw new AiSwitchError(
      `Domain not found: ${JSON.stringify(domain)} is not a domain of infra.yml. ` +
        `Choose one of: ${config.domains.join(", ")}`,
    );
  }
  return domain;
}
