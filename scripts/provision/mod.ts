/**
 * Provision: users, reader groups, memberships, the knowledge and data trees,
 * the sudoers file and the audit rules of a household, computed from
 * `recipients.yaml` and applied idempotently. The generators are exported so
 * `validate` can compare the installed state with what provision would write.
 *
 * @module
 */
export * from "./system.ts";
export * from "./sudoers.ts";
export * from "./audit.ts";
export * from "./plan.ts";
export * from "./apply.ts";
export * from "./provision.ts";
