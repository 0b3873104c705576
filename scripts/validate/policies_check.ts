/**
 * Check family: every policy file passes its schema, its own rules and the
 * cross-file checks; the model policy holds; channel_users.yaml matches
 * recipients.yaml. Each loader issue becomes one finding positioned at
 * `file:line:col`, with a code saying which rule it broke.
 *
 * Files that load on their own are returned even when the whole set does
 * not, so the system checks can still run on what is readable.
 *
 * @module
 */
import {
  type Issue,
  loadPolicies,
  loadPolicyFile,
  type Policies,
  PolicyError,
  policyFileNames,
  type PolicyName,
  policyNames,
} from "../../services/common/policy/mod.ts";
import { Findings } from "./finding.ts";

/** Result of the policy family. */
export interface PolicyCheck {
  /** The findings. */
  findings: Findings;
  /** Every file that loaded on its own (all of them when the set is valid). */
  policies: Partial<Policies>;
  /** True when the whole set, with cross-file checks, loaded. */
  complete: boolean;
}

const base = (file: string) => file.split("/").pop() ?? file;

/** The stable code of one loader issue. */
export function codeOfIssue(issue: Issue): string {
  const file = base(issue.file);
  if (issue.message.startsWith("cannot read the file")) return "policy_file_unreadable";
  if (issue.message.startsWith("YAML:") || issue.message.startsWith("duplicate key")) {
    return "policy_yaml_malformed";
  }
  if (file === policyFileNames.llm) {
    if (/^(primary_model|fallback_models)/.test(issue.path)) return "banned_model";
    if (issue.path.startsWith("endpoint")) return "llm_endpoint_not_local";
    if (issue.path.startsWith("banned_families")) return "banned_families_incomplete";
  }
  if (file === policyFileNames.channelUsers && issue.path.startsWith("allowed_channel_users")) {
    return "channel_users_mismatch";
  }
  return "policy_invalid";
}

function fixOf(code: string, file: string): string {
  switch (code) {
    case "policy_yaml_malformed":
      return `correct the YAML syntax of ${file} at the position shown`;
    case "banned_model":
      return `choose a model outside the banned families in ${file}`;
    case "channel_users_mismatch":
      return `make ${file} list exactly the channels recipients.yaml implies`;
    case "policy_file_unreadable":
      return `restore ${file} (root-owned, readable by joi)`;
    default:
      return `edit ${file} as the message says, then re-run joi-validate-config`;
  }
}

/** Adds the findings of a {@link PolicyError} (or any error) to `f`. */
export function addPolicyError(f: Findings, e: unknown, fallbackFile: string): void {
  if (e instanceof PolicyError) {
    for (const issue of e.issues) {
      const code = codeOfIssue(issue);
      const severity = code === "banned_model" ? "CRITICAL" : "ERROR";
      f.add(
        severity,
        code,
        `${issue.path}: ${issue.message}`,
        `${issue.file}:${issue.line}:${issue.col}`,
        fixOf(code, issue.file),
      );
    }
    return;
  }
  f.error(
    "policy_invalid",
    e instanceof Error ? e.message : String(e),
    fallbackFile,
    "fix the file, then re-run joi-validate-config",
  );
}

/** Loads and checks every policy file of `configDir`. */
export function checkPolicies(configDir: string): PolicyCheck {
  const findings = new Findings();
  try {
    return { findings, policies: loadPolicies(configDir), complete: true };
  } catch (e) {
    addPolicyError(findings, e, configDir);
  }
  const policies: Partial<Policies> = {};
  for (const name of policyNames) {
    try {
      // deno-lint-ignore no-explicit-any
      (policies as any)[name] = loadPolicyFile(
        name as PolicyName,
        `${configDir}/${policyFileNames[name]}`,
      );
    } catch { /* already reported by loadPolicies */ }
  }
  return { findings, policies, complete: false };
}
