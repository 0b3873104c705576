/**
 * Schema of `infra.yml` (anklume's infrastructure file) and the ai-switch
 * validation rules of ai-switch.md.
 *
 * In `exclusive` mode exactly one domain reaches the `ai-tools` domain at a
 * time. The six rules of the design are enforced with the stable messages in
 * {@link INFRA_MESSAGES}; {@link effectiveInfra} adds the default network
 * policy the way `anklume sync` does.
 *
 * @module
 */
import { z } from "zod";
import { absolutePath, dnsName, nonEmpty } from "./primitives.ts";
import type { Issue } from "./errors.ts";
import { attachSource, locateIn, type RuleIssue, sourceOf } from "./source.ts";

/** The domain whose access is switched. */
export const AI_TOOLS = "ai-tools";

/** The stable messages of the ai-switch rules (tests and tooling match on them). */
export const INFRA_MESSAGES = {
  /** Rule 1: the policy value is unknown. */
  badPolicy: (v: string) =>
    `ai_access_policy must be "exclusive" or "open", got ${JSON.stringify(v)}`,
  /** Rule 2: exclusive mode needs a default domain. */
  noDefault: `ai_access_policy is "exclusive" but ai_access_default is not set`,
  /** Rule 3: ai-tools cannot be its own client. */
  defaultIsAiTools: `ai_access_default cannot be "ai-tools"`,
  /** Rule 4: the default must name a domain. */
  unknownDefault: (d: string, known: readonly string[]) =>
    `ai_access_default ${JSON.stringify(d)} is not a known domain (known: ${known.join(", ")})`,
  /** Rule 5: exclusive mode needs the ai-tools domain. */
  noAiTools: `ai_access_policy is "exclusive" but there is no "ai-tools" domain`,
  /** Rule 6: exclusivity allows one policy towards ai-tools. */
  tooManyPolicies: (n: number) => `at most one network policy may target "ai-tools", found ${n}`,
  /** A network policy names a domain that does not exist. */
  unknownPolicyDomain: (d: string, known: readonly string[]) =>
    `unknown domain ${JSON.stringify(d)} (known: ${known.join(", ")}, or "host")`,
  /** Exclusive mode needs the switch's settings. */
  noAiSwitch: `ai_access_policy is "exclusive" but global.ai_switch is not set`,
  /** The gpu_machine must be an ai-tools machine. */
  unknownGpuMachine: (m: string, known: readonly string[]) =>
    `gpu_machine ${JSON.stringify(m)} is not a machine of the "ai-tools" domain (machines: ${
      known.join(", ") || "none"
    })`,
  /** Machine names are global in Incus. */
  duplicateMachine: (m: string, other: string) =>
    `machine name ${JSON.stringify(m)} is already used in domain ${JSON.stringify(other)}`,
} as const;

/** One machine (Incus instance) of a domain. */
export const MachineSchema = z.object({
  type: z.enum(["lxc", "vm"]),
  description: z.string().optional(),
  gpu: z.boolean().optional(),
  roles: z.array(
    z.string().regex(/^[a-z0-9_]+$/, {
      error: (iss) => `${JSON.stringify(iss.input)} is not a role name (lowercase, digits, "_")`,
    }),
  ).optional(),
}).strict();

/** One domain: a trust level and its machines. */
export const DomainSchema = z.object({
  description: z.string().optional(),
  trust_level: z.enum(["admin", "trusted", "semi-trusted", "untrusted", "disposable"]),
  machines: z.record(dnsName("machine"), MachineSchema),
}).strict();

/** One network policy: `from` may reach `to` (and back, when bidirectional). */
export const NetworkPolicySchema = z.object({
  description: z.string().optional(),
  from: nonEmpty,
  to: nonEmpty,
  bidirectional: z.boolean().optional(),
}).strict();

/** Settings of the ai-switch tool. */
export const AiSwitchSchema = z.object({
  state_file: absolutePath,
  log_file: absolutePath,
  gpu_services: z.array(
    z.string().regex(/^[A-Za-z0-9][A-Za-z0-9@._-]*$/, {
      error: (iss) => `${JSON.stringify(iss.input)} is not a service unit name`,
    }),
  ).min(1),
  service_manager: z.enum(["systemctl", "incus"]),
  gpu_machine: dnsName("machine"),
}).strict();

/** The whole `infra.yml`. */
export const InfraSchema = z.object({
  global: z.object({
    addressing: z.object({
      base_octet: z.int().min(0).max(255),
      zone_base: z.int().min(0).max(255),
    }).strict(),
    ai_access_policy: z.string().optional(),
    ai_access_default: z.string().optional(),
    ai_switch: AiSwitchSchema.optional(),
  }).strict(),
  domains: z.record(dnsName("domain"), DomainSchema),
  network_policies: z.array(NetworkPolicySchema).default([]),
}).strict();

/** A validated `infra.yml`. */
export type Infra = z.infer<typeof InfraSchema>;
/** One network policy. */
export type NetworkPolicy = z.infer<typeof NetworkPolicySchema>;

/**
 * True when the policy lets a domain reach ai-tools: `to: ai-tools`, or
 * `from: ai-tools` with `bidirectional: true` (which opens the way back too).
 */
export function targetsAiTools(p: NetworkPolicy): boolean {
  return p.to === AI_TOOLS || (p.from === AI_TOOLS && p.bidirectional === true);
}

/**
 * The ai-switch rules of ai-switch.md and the reference checks, positioned in
 * `infra.yml` when the config was loaded from a file (else at line 0 of
 * `infra.yml`). An empty list means the infra is valid.
 */
export function infraRules(infra: Infra): Issue[] {
  return infraRuleIssues(infra).map((issue) => locateIn(infra, "infra.yml", issue));
}

/** The rules of {@link infraRules}, on paths (positioned by the loader). */
export function infraRuleIssues(infra: Infra): RuleIssue[] {
  const issues: RuleIssue[] = [];
  const g = infra.global;
  const domains = Object.keys(infra.domains).sort();
  const policy = g.ai_access_policy ?? "open";
  if (policy !== "exclusive" && policy !== "open") {
    issues.push({
      path: ["global", "ai_access_policy"],
      message: INFRA_MESSAGES.badPolicy(policy),
    });
  }
  const exclusive = policy === "exclusive";
  if (exclusive && g.ai_access_default === undefined) {
    issues.push({
      path: ["global", "ai_access_default"],
      at: "missing",
      message: INFRA_MESSAGES.noDefault,
    });
  }
  if (g.ai_access_default !== undefined) {
    if (g.ai_access_default === AI_TOOLS) {
      issues.push({
        path: ["global", "ai_access_default"],
        message: INFRA_MESSAGES.defaultIsAiTools,
      });
    } else if (!Object.hasOwn(infra.domains, g.ai_access_default)) {
      issues.push({
        path: ["global", "ai_access_default"],
        message: INFRA_MESSAGES.unknownDefault(g.ai_access_default, domains),
      });
    }
  }
  if (exclusive && !Object.hasOwn(infra.domains, AI_TOOLS)) {
    issues.push({ path: ["domains"], at: "key", message: INFRA_MESSAGES.noAiTools });
  }
  const targeting = infra.network_policies
    .map((p, i) => ({ p, i }))
    .filter(({ p }) => targetsAiTools(p));
  if (exclusive && targeting.length > 1) {
    issues.push({
      path: ["network_policies", targeting[1]!.i],
      message: INFRA_MESSAGES.tooManyPolicies(targeting.length),
    });
  }
  infra.network_policies.forEach((p, i) => {
    for (const side of ["from", "to"] as const) {
      if (p[side] !== "host" && !Object.hasOwn(infra.domains, p[side])) {
        issues.push({
          path: ["network_policies", i, side],
          message: INFRA_MESSAGES.unknownPolicyDomain(p[side], domains),
        });
      }
    }
  });
  if (exclusive && g.ai_switch === undefined) {
    issues.push({
      path: ["global", "ai_switch"],
      at: "missing",
      message: INFRA_MESSAGES.noAiSwitch,
    });
  }
  const aiTools = infra.domains[AI_TOOLS];
  if (
    g.ai_switch !== undefined && aiTools !== undefined &&
    !Object.hasOwn(aiTools.machines, g.ai_switch.gpu_machine)
  ) {
    issues.push({
      path: ["global", "ai_switch", "gpu_machine"],
      message: INFRA_MESSAGES.unknownGpuMachine(
        g.ai_switch.gpu_machine,
        Object.keys(aiTools.machines),
      ),
    });
  }
  const machines = new Map<string, string>();
  for (const [domain, d] of Object.entries(infra.domains)) {
    for (const m of Object.keys(d.machines)) {
      const other = machines.get(m);
      if (other !== undefined) {
        issues.push({
          path: ["domains", domain, "machines", m],
          at: "key",
          message: INFRA_MESSAGES.duplicateMachine(m, other),
        });
      } else machines.set(m, domain);
    }
  }
  return issues;
}

/** The infra the switch acts on, and what was added to get it. */
export interface EffectiveInfra {
  /** A copy of the input with any implied network policy appended. */
  infra: Infra;
  /** One line per change, for the operator. */
  notes: string[];
}

/**
 * Applies what `anklume sync` implies: in exclusive mode with no network
 * policy targeting ai-tools, a bidirectional policy from `ai_access_default`
 * to ai-tools is added, and `notes` says so. The input is not modified.
 */
export function effectiveInfra(infra: Infra): EffectiveInfra {
  const copy: Infra = structuredClone(infra);
  const notes: string[] = [];
  const d = copy.global.ai_access_default;
  if (
    copy.global.ai_access_policy === "exclusive" && d !== undefined &&
    !copy.network_policies.some(targetsAiTools)
  ) {
    copy.network_policies.push({
      description: `${d} reaches the AI tools (added: ai_access_policy is exclusive)`,
      from: d,
      to: AI_TOOLS,
      bidirectional: true,
    });
    notes.push(
      `added network policy ${d} <-> ${AI_TOOLS}: ai_access_policy is "exclusive" and no ` +
        `network policy targets "${AI_TOOLS}", so ai_access_default "${d}" gets the access`,
    );
  }
  const src = sourceOf(infra);
  if (src) attachSource(copy, src);
  return { infra: copy, notes };
}
