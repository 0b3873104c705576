/**
 * What the system must look like, computed exactly as provision computes it
 * (`desiredState` of scripts/provision/plan.ts): users, groups, exact
 * memberships, the knowledge and data trees, the sudoers file and the audit
 * rules. Validation and provision share this one derivation, so they cannot
 * disagree about what "correct" is.
 *
 * @module
 */
import { type ProductionAddresses, productionLayout } from "../../services/common/permissions.ts";
import type { Recipients } from "../../services/common/policy/mod.ts";
import {
  retrieveFixedArgv,
  retrieveSpec,
  sudoersArgsPattern,
} from "../../services/joi/knowledge/retrieve_argv.ts";
import { type DesiredState, desiredState } from "../provision/plan.ts";
import { INSTALLED } from "./options.ts";

/** Addresses do not enter the retrieve command line; this stands in when none are loaded. */
const NO_ADDRESSES: ProductionAddresses = {
  hosts: { mesh: "0.0.0.0", joi: "0.0.0.0", openhab: "0.0.0.0" },
  ports: { joiInbound: 1, meshOutbound: 2, joiIngest: 3 },
  llm: { host: "0.0.0.0", port: 4 },
  openhab: { host: "0.0.0.0", port: 5 },
  signalSocket: "/nonexistent",
  signalDataDir: "/nonexistent",
};

/** The sudoers argument pattern of the installed retrieve command line. */
export function installedArgsPattern(): string {
  const layout = productionLayout(NO_ADDRESSES);
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
