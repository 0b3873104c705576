/**
 * What the system must look like, computed exactly as provision computes it
 * (`desiredState` of scripts/provision/plan.ts, with production's retrieval:
 * joi.service and each channel's retrieve units rendered from the config
 * directory's policies, no sudoers file): users, groups, exact memberships,
 * the knowledge and data trees, the unit files and the audit rules. Validation
 * and provision share this one derivation, so they cannot disagree about what
 * "correct" is.
 *
 * @module
 */
import type { Recipients } from "../../services/common/policy/mod.ts";
import type { UnitFile } from "../../services/common/units/mod.ts";
import { type DesiredState, desiredState } from "../provision/plan.ts";
import { isHouseholdUnitName } from "../provision/provision.ts";
import { INSTALLED } from "./options.ts";

/**
 * The desired state of a household, at the installed (unprefixed) paths;
 * `units` are its household units (`householdUnitsOf` its policies).
 */
export function expectedState(recipients: Recipients, units: UnitFile[]): DesiredState {
  return desiredState({
    recipients,
    stateDir: INSTALLED.stateDir,
    configDir: INSTALLED.configDir,
    retrieveBin: INSTALLED.retrieveBin,
    auditRulesPath: INSTALLED.auditRules,
    retrieval: {
      kind: "units",
      unitsDir: INSTALLED.unitsDir,
      units,
      isManagedUnit: isHouseholdUnitName,
      sudoersPath: INSTALLED.sudoers,
    },
  });
}
