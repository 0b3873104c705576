/**
 * `deno task doctor` (the local run) and `joi-doctor --role joi|mesh|openhab`
 * (a production VM): one table of every check (`checks.ts`), green, yellow or
 * red with the fix of each red; exit status 1 when any row is red, 2 on bad
 * usage. Paths and addresses come from its manifest entry's arguments, so it
 * looks exactly where the services do.
 *
 * @module
 */
import { parseCommandLine, UsageError } from "../../services/common/cli.ts";
import {
  certRows,
  channelUserRows,
  diskRows,
  health,
  joiRows,
  keyRows,
  logRows,
  meshRows,
  ollamaRows,
  openhabRows,
  overlayRows,
  timeRows,
  unitRows,
} from "./checks.ts";
import { type DoctorContext, type DoctorPaths, type Role, runTool } from "./context.ts";
import { exitCode, renderTable, type Row } from "./table.ts";

const USAGE = "usage: deno task doctor [--role=local|joi|mesh|openhab] [--json]";

/** Parses the manifest's arguments plus `--role` and `--json`. */
export function parseDoctorArgs(args: string[]): { role: Role; json: boolean; paths: DoctorPaths } {
  const strings = [
    "mode",
    "role",
    "joi-config-dir",
    "mesh-config-dir",
    "relay-config-dir",
    "joi-state-dir",
    "mesh-state-dir",
    "relay-state-dir",
    "log-dir",
    "joi-keys",
    "mesh-keys",
    "relay-keys",
    "joi-url",
    "mesh-url",
    "ingest-url",
    "llm-url",
    "openhab-url",
    "nebula-dir",
    "drift-report",
  ];
  const options: Record<string, { type: "string" | "boolean" }> = {
    json: { type: "boolean" },
    help: { type: "boolean" },
  };
  for (const k of strings) options[k] = { type: "string" };
  const { values } = parseCommandLine("doctor", { args, options });
  const v = values as Record<string, string | boolean | undefined>;
  if (v.help) throw new UsageError(USAGE);
  const need = (k: string): string => {
    const x = v[k];
    if (typeof x !== "string" || x === "") {
      throw new UsageError(`doctor: --${k} is required (the manifest's doctor entry gives it)`);
    }
    return x;
  };
  const url = (k: string): string => {
    const x = need(k);
    let u: URL | undefined;
    try {
      u = new URL(x);
    } catch {
      u = undefined;
    }
    if (!u || (u.protocol !== "http:" && u.protocol !== "https:")) {
      throw new UsageError(`doctor: --${k} must be an http(s) URL, got ${JSON.stringify(x)}`);
    }
    return x;
  };
  const mode = need("mode");
  if (mode !== "local" && mode !== "production") {
    throw new UsageError(`doctor: --mode must be local or production, got ${mode}`);
  }
  const role = (v.role as string | undefined) ?? (mode === "local" ? "local" : "");
  if (!["local", "joi", "mesh", "openhab"].includes(role)) {
    throw new UsageError(
      `doctor: on a production VM say which one: --role=joi, --role=mesh or --role=openhab`,
    );
  }
  return {
    role: role as Role,
    json: v.json === true,
    paths: {
      mode,
      joiConfigDir: need("joi-config-dir"),
      meshConfigDir: need("mesh-config-dir"),
      relayConfigDir: need("relay-config-dir"),
      joiStateDir: need("joi-state-dir"),
      meshStateDir: need("mesh-state-dir"),
      relayStateDir: need("relay-state-dir"),
      logDir: need("log-dir"),
      keysDirs: { joi: need("joi-keys"), mesh: need("mesh-keys"), openhab: need("relay-keys") },
      joiUrl: url("joi-url"),
      meshUrl: url("mesh-url"),
      ingestUrl: url("ingest-url"),
      llmUrl: url("llm-url"),
      openhabUrl: url("openhab-url"),
      nebulaDir: typeof v["nebula-dir"] === "string" ? v["nebula-dir"] : undefined,
      driftReport: need("drift-report"),
    },
  };
}

/** Every row of `ctx.role`, in table order. */
export async function diagnose(ctx: DoctorContext): Promise<Row[]> {
  const rows: Row[] = [];
  const r = ctx.role;
  if (r === "local" || r === "joi") rows.push(...joiRows(ctx, await health(ctx, ctx.paths.joiUrl)));
  if (r === "local" || r === "mesh") {
    rows.push(...meshRows(ctx, await health(ctx, ctx.paths.meshUrl)));
  }
  if (r === "openhab") rows.push(...await openhabRows(ctx));
  if (r === "local" || r === "joi") rows.push(...await ollamaRows(ctx));
  rows.push(...keyRows(ctx));
  if (r === "local" || r === "joi") rows.push(...channelUserRows(ctx));
  rows.push(...await unitRows(ctx));
  rows.push(...overlayRows(ctx));
  rows.push(...await timeRows(ctx));
  rows.push(...certRows(ctx));
  rows.push(...await diskRows(ctx));
  rows.push(...await logRows(ctx));
  return rows;
}

/** Runs the doctor on `args`; returns the exit status. */
export async function main(
  args: string[],
  out: (line: string) => void = console.log,
): Promise<number> {
  const { role, json, paths } = parseDoctorArgs(args);
  const ctx: DoctorContext = {
    role,
    paths,
    now: Date.now(),
    fetch,
    run: runTool,
    addresses: () => {
      try {
        return Deno.networkInterfaces().map((i) => i.address);
      } catch {
        return [];
      }
    },
    passwdFile: "/etc/passwd",
    etcDir: "/etc",
  };
  const rows = await diagnose(ctx);
  if (json) {
    out(JSON.stringify({ role, rows, red: rows.filter((x) => x.status === "red").length }));
  } else {
    const where = role === "local" ? "the local run" : `the ${role} VM`;
    out(
      `joi doctor: ${where}, ${new Date(ctx.now).toISOString().slice(0, 16).replace("T", " ")} UTC`,
    );
    out("");
    const colour = Deno.stdout.isTerminal() && Deno.env.get("NO_COLOR") === undefined;
    for (const line of renderTable(rows, colour)) out(line);
  }
  return exitCode(rows);
}
