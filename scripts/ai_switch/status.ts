/**
 * `ai-switch status`: the current domain, whether the live ruleset really
 * grants access to it (and only it), and what runs on the GPU.
 *
 * @module
 */
import type { AiSwitchConfig } from "./config.ts";
import type { ComputeApp, Gpu } from "./gpu.ts";
import type { Nft } from "./nft.ts";
import { identifyPeer, matches, renderTable } from "./ruleset.ts";

/** The status report. */
export interface Status {
  /** `exclusive` or `open`. */
  policy: "exclusive" | "open";
  /** The domain in the state file (`null`: none). */
  current: string | null;
  /** Whether the live table is exactly the ruleset of {@link current}. */
  rulesMatch: boolean;
  /**
   * Who the live table lets in: a domain, `blocked` (nobody), `absent` (no
   * table: nothing enforced), or `unknown` (not a table ai-switch wrote).
   */
  liveAccess: string;
  /** GPU compute processes, or the error reading them. */
  gpu: { apps: ComputeApp[]; usedMiB: number } | { error: string };
}

/** Gathers the status. Read-only. */
export async function readStatus(
  config: AiSwitchConfig,
  deps: { nft: Nft; gpu: Gpu; readState: () => Promise<string | null> },
): Promise<Status> {
  const current = await deps.readState();
  const live = await deps.nft.list();
  const peer = identifyPeer(live, config.domains);
  const liveAccess = live === null
    ? "absent"
    : peer === undefined
    ? "unknown"
    : peer === null
    ? "blocked"
    : peer;
  let gpu: Status["gpu"];
  try {
    gpu = { apps: await deps.gpu.computeApps(), usedMiB: await deps.gpu.memoryUsed() };
  } catch (e) {
    gpu = { error: (e as Error).message };
  }
  return {
    policy: config.policy,
    current,
    rulesMatch: current !== null && matches(live, renderTable(current)),
    liveAccess,
    gpu,
  };
}

/** Human-readable lines of a status. */
export function formatStatus(s: Status): string[] {
  const lines = [
    `policy: ${s.policy}`,
    `current domain: ${s.current ?? "none (no state file)"}`,
    `live rules: ${s.rulesMatch ? "match" : "DO NOT MATCH"} (access granted to: ${s.liveAccess})`,
  ];
  if ("error" in s.gpu) lines.push(`gpu: unknown (${s.gpu.error})`);
  else {
    lines.push(`gpu: ${s.gpu.apps.length} compute process(es), ${s.gpu.usedMiB} MiB in use`);
    for (const a of s.gpu.apps) lines.push(`  pid ${a.pid}: ${a.usedMiB} MiB`);
  }
  return lines;
}
