/**
 * `deno task memory verify`: walks the hash chain of every channel's memory
 * store and reports, per channel, either the records verified or the first
 * broken link (record id, what is wrong, expected vs found). Exit status 0
 * when every chain is intact, 1 when one is broken, 2 on a usage or
 * configuration error. Read-only; it needs memory.key, because the chain is
 * an HMAC chain (whoever can write the databases but lacks the key cannot
 * rebuild a consistent chain after deleting a record).
 *
 * ```
 * deno task memory verify [--json]
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { loadPolicies } from "../services/common/policy/mod.ts";
import { type ChannelVerifyReport, loadMemoryKey, verifyAll } from "../services/joi/memory/mod.ts";

const USAGE =
  "usage: deno task memory verify [--json]  (--config-dir, --state-dir, --secrets-dir come from the manifest)";

/** One human-readable line per channel. */
export function formatReport(r: ChannelVerifyReport): string {
  if (r.ok) {
    return r.exists
      ? `ok      ${r.channel}: ${r.records} records, chain intact (last #${r.lastId})`
      : `ok      ${r.channel}: no store yet`;
  }
  const b = r.broken!;
  return `BROKEN  ${r.channel} (${r.path}): record #${b.id}: ${b.reason}\n        expected ${b.expected}\n        found    ${b.found}`;
}

/** Runs the CLI; returns the exit status. */
export async function main(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        "config-dir": { type: "string" },
        "state-dir": { type: "string" },
        "secrets-dir": { type: "string" },
        json: { type: "boolean", default: false },
      },
    });
  } catch (e) {
    console.error(`memory: ${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (positionals.length !== 1 || positionals[0] !== "verify") {
    console.error(`memory: unknown command ${JSON.stringify(positionals.join(" "))}\n${USAGE}`);
    return 2;
  }
  if (!values["config-dir"] || !values["state-dir"] || !values["secrets-dir"]) {
    console.error(`memory: --config-dir, --state-dir and --secrets-dir are required\n${USAGE}`);
    return 2;
  }
  let chainKey: Uint8Array;
  try {
    chainKey = (await loadMemoryKey(values["secrets-dir"])).chainKey;
  } catch (e) {
    console.error(`memory: ${(e as Error).message}`);
    return 2;
  }
  let recipients;
  try {
    recipients = loadPolicies(values["config-dir"]).recipients;
  } catch (e) {
    console.error(`memory: policies refused:\n${(e as Error).message}`);
    return 2;
  }
  const reports = verifyAll(values["state-dir"], recipients, chainKey);
  if (values.json) console.log(JSON.stringify(reports));
  else for (const r of reports) console.log(formatReport(r));
  return reports.every((r) => r.ok) ? 0 : 1;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
