/**
 * Reads infra.yml into {@link AiSwitchConfig} through the shared policy
 * loader: strict schema, the six ai-switch rules with their stable messages,
 * then `effectiveInfra` (in exclusive mode with no network policy targeting
 * ai-tools, the default domain's policy is added, and a note says so).
 *
 * @module
 */
import { effectiveInfra, loadPolicyFile, PolicyError } from "../../services/common/policy/mod.ts";
import { type AiSwitchConfig, AiSwitchError, configFromInfra } from "./config.ts";

/** The loaded configuration and the notes of what `effectiveInfra` added. */
export interface LoadedConfig {
  /** The resolved figures. */
  config: AiSwitchConfig;
  /** One line per implied change (e.g. the added default network policy). */
  notes: string[];
}

/**
 * Loads and checks `path`; throws {@link AiSwitchError} listing every issue
 * as `file:line:col: path: message`.
 */
export function loadConfig(path: string): LoadedConfig {
  try {
    const { infra, notes } = effectiveInfra(loadPolicyFile("infra", path));
    return { config: configFromInfra(infra), notes };
  } catch (e) {
    if (e instanceof PolicyError || e instanceof AiSwitchError) {
      throw new AiSwitchError(e instanceof AiSwitchError ? `${path}: ${e.message}` : e.message);
    }
    throw e;
  }
}
