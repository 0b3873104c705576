/**
 * `deno task devices`: the operator view of device states in joi's database
 * (flapping, suppressed, alerting with its confirmation count, acknowledged,
 * demoted). Read-only: it opens `<state-dir>/joi.db` without writing.
 *
 * @module
 */
import { parseCommandLine, runMain } from "../services/common/cli.ts";
import { DatabaseSync } from "node:sqlite";
import { type DeviceState, readDeviceStates } from "../services/joi/guard/flood.ts";

/** The flags of one device, as the table shows them. */
export function deviceFlags(d: DeviceState): string[] {
  const f: string[] = [];
  if (d.alerting) f.push(`ALERTING ${d.alertsSent}`);
  if (d.acknowledgedAt !== null) f.push("ACKNOWLEDGED");
  if (d.demoted) f.push("DEMOTED");
  if (d.flapping) f.push("FLAPPING");
  if (d.suppressed) f.push("SUPPRESSED");
  return f;
}

/** Formats the states as an aligned text table. */
export function formatDevices(devices: DeviceState[], now: number): string {
  const header = ["DEVICE", "TYPE", "STATE", "CHANGES/WINDOW", "SINCE", "FLAGS"];
  const rows = [header];
  for (const d of devices) {
    const since = d.stateAt === null ? "-" : `${Math.round((now - d.stateAt) / 60_000)} min`;
    rows.push([
      d.device,
      d.deviceType,
      d.state ?? "unknown",
      String(d.transitions.length),
      since,
      deviceFlags(d).join(",") || "-",
    ]);
  }
  const widths = header.map((_, i) => Math.max(...rows.map((r) => [...(r[i] ?? "")].length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i] ?? 0)).join("  ").trimEnd())
    .join("\n");
}

async function main(): Promise<number> {
  const { values } = parseCommandLine("devices", {
    args: Deno.args,
    options: {
      "state-dir": { type: "string" },
      json: { type: "boolean", default: false },
      only: { type: "string" },
    },
  });
  if (!values["state-dir"]) {
    console.error("devices: --state-dir is required (the manifest's devices entry passes it)");
    return 2;
  }
  const path = `${values["state-dir"]}/joi.db`;
  try {
    await Deno.stat(path);
  } catch {
    console.error(`devices: ${path} does not exist yet; start joi first (deno task start)`);
    return 1;
  }
  let db: DatabaseSync;
  try {
    db = new DatabaseSync(path, { readOnly: true });
  } catch (e) {
    console.error(`devices: cannot open ${path} read-only: ${(e as Error).message}`);
    return 1;
  }
  let devices = readDeviceStates(db);
  db.close();
  if (values.only) {
    const want = values.only.toUpperCase();
    devices = devices.filter((d) => deviceFlags(d).some((f) => f.startsWith(want)));
  }
  if (values.json) console.log(JSON.stringify(devices, null, 2));
  else console.log(devices.length ? formatDevices(devices, Date.now()) : "no devices reported yet");
  return 0;
}

if (import.meta.main) await runMain(() => main());
