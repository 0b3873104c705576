/**
 * Policy files: strict zod schemas, the YAML loader with `file:line:col`
 * errors, and the cross-file checks.
 *
 * ```ts
 * import { loadPolicies, PolicyError } from "./services/common/policy/mod.ts";
 * try {
 *   const policies = loadPolicies("policies");
 *   policies.policy.rate_limits.outbound.owner_dm.per_hour; // 120
 * } catch (e) {
 *   if (e instanceof PolicyError) console.error(e.message); // one issue per line
 *   throw e;
 * }
 * ```
 *
 * @module
 */
export { formatIssue, type Issue, PolicyError } from "./errors.ts";
export { formatPath, type PathSegment } from "./path.ts";
export {
  isPolicyName,
  type Policies,
  policyFileNames,
  type PolicyName,
  policyNames,
  policySchemas,
} from "./files.ts";
export {
  checkPolicyText,
  checkYamlText,
  loadInfra,
  loadPolicies,
  loadPolicyFile,
  parsePolicySet,
  parsePolicyText,
  type ParseResult,
  readYamlText,
} from "./loader.ts";
export { crossCheck } from "./cross_checks.ts";
export {
  type Channel,
  channelOfGroup,
  channelOfRecipient,
  CRITICAL_GROUP,
  deriveChannels,
  FAMILY_GROUP,
  type HouseholdRoles,
  householdRoles,
  isPrivateChannel,
  parseChannel,
  privateChannels,
  type RecipientChannelKind,
  recipientOfChannel,
} from "./household.ts";
export { canonicalJson, identitiesHash } from "./identities_hash.ts";
export { own } from "./own.ts";
export { compilePattern, isTimeZone } from "./primitives.ts";
export {
  type Recipient,
  type RecipientGroup,
  type Recipients,
  RecipientsSchema,
} from "./recipients.ts";
export { type ChannelUsers, ChannelUsersSchema } from "./channel_users.ts";
export { type Identities, IdentitiesSchema, type Identity } from "./identities.ts";
export { type Groups, GroupsSchema } from "./groups.ts";
export { type Policy, PolicySchema } from "./policy.ts";
export { type Tool, type Tools, ToolsSchema } from "./tools.ts";
export { bannedFamilyOf, isLocalEndpoint, type Llm, LlmSchema } from "./llm.ts";
export { type Network, NetworkSchema } from "./network.ts";
export {
  AI_TOOLS,
  type EffectiveInfra,
  effectiveInfra,
  type Infra,
  INFRA_MESSAGES,
  infraRules,
  InfraSchema,
  type NetworkPolicy,
  targetsAiTools,
} from "./infra.ts";
