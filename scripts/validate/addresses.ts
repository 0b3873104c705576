/**
 * The production addresses (Nebula hosts, ports, Ollama, openHAB, signal-cli)
 * as `network.yaml` and `llm.yaml` state them: the input of
 * `productionLayout`, from which the units' Deno flags are derived. One
 * derivation for the units renderer and the validator
 * (`productionAddressesFrom` of services/common/units/mod.ts).
 *
 * @module
 */
import type { ProductionAddresses } from "../../services/common/permissions/mod.ts";
import type { Llm, Network, Tools } from "../../services/common/policy/mod.ts";
import { productionAddressesFrom as fromPolicies } from "../../services/common/units/mod.ts";

/** The production addresses stated by `network.yaml` and `llm.yaml`. */
export function productionAddressesFrom(
  policies: { network: Network; llm: Llm; tools?: Tools },
): ProductionAddresses {
  return fromPolicies(policies.network, policies.llm, policies.tools);
}
