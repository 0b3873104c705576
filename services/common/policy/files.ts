/**
 * The registry of policy files: for each name, its file, its schema and its
 * single-file rules.
 *
 * @module
 */
import type { z } from "zod";
import { type ChannelUsers, ChannelUsersSchema } from "./channel_users.ts";
import { type Groups, GroupsSchema } from "./groups.ts";
import { type Identities, identitiesRules, IdentitiesSchema } from "./identities.ts";
import { type Infra, infraRuleIssues, InfraSchema } from "./infra.ts";
import { type Llm, llmRules, LlmSchema } from "./llm.ts";
import { type Network, networkRules, NetworkSchema } from "./network.ts";
import { type Policy, policyRules, PolicySchema } from "./policy.ts";
import { type Recipients, recipientsRules, RecipientsSchema } from "./recipients.ts";
import type { RuleIssue } from "./source.ts";
import { type Tools, toolsRules, ToolsSchema } from "./tools.ts";

/** Every validated policy, keyed as in the code (`channelUsers`), not as the files. */
export interface Policies {
  /** `recipients.yaml` */
  recipients: Recipients;
  /** `channel_users.yaml` */
  channelUsers: ChannelUsers;
  /** `identities.yaml` */
  identities: Identities;
  /** `groups.yaml` */
  groups: Groups;
  /** `policy.yaml` */
  policy: Policy;
  /** `tools.yaml` */
  tools: Tools;
  /** `llm.yaml` */
  llm: Llm;
  /** `infra.yml` (as written; see `effectiveInfra` for what the switch acts on) */
  infra: Infra;
  /** `network.yaml` */
  network: Network;
}

/** The name of one policy file, as a key of {@link Policies}. */
export type PolicyName = keyof Policies;

/** File name of each policy inside a policy folder. */
export const policyFileNames: Readonly<Record<PolicyName, string>> = Object.freeze({
  recipients: "recipients.yaml",
  channelUsers: "channel_users.yaml",
  identities: "identities.yaml",
  groups: "groups.yaml",
  policy: "policy.yaml",
  tools: "tools.yaml",
  llm: "llm.yaml",
  infra: "infra.yml",
  network: "network.yaml",
});

/** Every policy name, in load order. */
export const policyNames: readonly PolicyName[] = Object.keys(policyFileNames) as PolicyName[];

/** The zod schema of each policy file. */
export const policySchemas: { readonly [N in PolicyName]: z.ZodType<Policies[N]> } = {
  recipients: RecipientsSchema,
  channelUsers: ChannelUsersSchema,
  identities: IdentitiesSchema,
  groups: GroupsSchema,
  policy: PolicySchema,
  tools: ToolsSchema,
  llm: LlmSchema,
  infra: InfraSchema,
  network: NetworkSchema,
};

/** The single-file rules of each policy file (run after its schema passes). */
export const policyRulesByName: {
  readonly [N in PolicyName]: (config: Policies[N]) => RuleIssue[];
} = {
  recipients: recipientsRules,
  channelUsers: () => [],
  identities: identitiesRules,
  groups: () => [],
  policy: policyRules,
  tools: toolsRules,
  llm: llmRules,
  infra: infraRuleIssues,
  network: networkRules,
};

/** True when `name` is a policy name. */
export function isPolicyName(name: string): name is PolicyName {
  return Object.hasOwn(policyFileNames, name);
}
