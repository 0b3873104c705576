/**
 * What the system must look like, computed exactly as provision computes it
 * (`desiredState` of scripts/provision/plan.ts, with the retrieve command line
 * of `provisionLayout`): users, groups, exact memberships, the knowledge and
 * data trees, the sudoers file and the audit rules. Validation and provision
 * share this one derivation, so they cannot disagree about what "correct" is.
 *
 * @module
 */
import type { Recipients } from "../../services/common/policy/mod.ts";
import {
  retrieveFixedArgv,
  retrieveSpec,
  sudoersArgsPattern,
} from "../../services/joi/knowledge/retrieve_argv.ts";
import { type DesiredState, desiredState } from "../provision/plan.ts";
import { provisionLayout } from "../provision/provision.ts";
import { INSTALLED } from "./options.ts";

/** The sudoers argument pattern of the installed retrieve command line. */
export function installedArgsPattern(): string {
  const layout = provisionLayout({
    configDir: INSTALLED.configDir,
    stateDir: INSTALLED.stateDir,
    codeDir: INSTALLED.codeDir,
    retrieveBin: INSTALLED.retrieveBin,
  });
  return sudoersArgsPattern(retrieveFixedArgv(retrieveSpec(layout, "/")));
}

/** The desired state of a household, at the installed (unprefixed) paths. */
export function expectedState(recipients: Recipients): DesiredState {
  return desiredState({
    recipients,
    stateDir: INSTALLED.stateDir,
    configDir: INSTALLED.configDir,
    retrieveBin: INSTALLED.retrieveBin,
    argsPattern: installedArgsPattern(),
    sudoersPath: INSTALLED.sudoers,
    auditRulesPath: INSTALLED.auditRules,
    sudoLog: INSTALLED.sudoLog,
  });
}
