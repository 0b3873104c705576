/**
 * Check family: the installed systemd units. joi.service has `UMask=0027`;
 * every Deno command line of every installed joi unit (joi, each channel's
 * retrieve service, the mesh, the relay, validate) carries exactly the
 * `--allow-*` flags the permission manifest gives its program under the
 * production layout (addresses from network.yaml and llm.yaml, channels from
 * recipients.yaml): no extra host, path or binary, none missing, never `-A`
 * or an unscoped flag.
 *
 * @module
 */
import {
  type Layout,
  permissionFlags,
  type ProgramName,
  type ProgramSpec,
  programSpec,
  UNIT_NAMES,
} from "../../services/common/permissions/mod.ts";
import { retrieveUnitNames } from "../../services/common/units/mod.ts";
import { Findings } from "./finding.ts";

/** One `Key=value` of a unit file, with its section and line. */
export interface UnitEntry {
  /** Section name without brackets. */
  section: string;
  /** Key. */
  key: string;
  /** Value (continuations joined). */
  value: string;
  /** 1-based line of the key. */
  line: number;
}

/** Parses a unit file into its entries (comments dropped, `\` continuations joined). */
export function parseUnit(text: string): UnitEntry[] {
  const out: UnitEntry[] = [];
  let section = "";
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    let line = (lines[i] ?? "").trim();
    const start = i + 1;
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    if (line.startsWith("[") && line.endsWith("]")) {
      section = line.slice(1, -1);
      continue;
    }
    while (line.endsWith("\\") && i + 1 < lines.length) {
      line = line.slice(0, -1) + " " + (lines[++i] ?? "").trim();
    }
    const eq = line.indexOf("=");
    if (eq < 0) continue;
    out.push({
      section,
      key: line.slice(0, eq).trim(),
      value: line.slice(eq + 1).trim(),
      line: start,
    });
  }
  return out;
}

/** Splits an Exec command line as systemd does (double/single quotes, `\` escapes, `%%`). */
export function splitExec(value: string): string[] {
  const out: string[] = [];
  let cur = "";
  let has = false;
  let quote: string | null = null;
  for (let i = 0; i < value.length; i++) {
    const c = value.charAt(i);
    if (quote) {
      if (c === "\\" && i + 1 < value.length) cur += value[++i];
      else if (c === quote) quote = null;
      else cur += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      has = true;
    } else if (c === "\\" && i + 1 < value.length) {
      cur += value[++i];
      has = true;
    } else if (/\s/.test(c)) {
      if (has || cur !== "") out.push(cur);
      cur = "";
      has = false;
    } else cur += c;
  }
  if (has || cur !== "") out.push(cur);
  return out.map((a) => a.replaceAll("%%", "%"));
}

/** The permission flags before the entry module, as kind -> values. */
export function allowFlags(argv: string[], entry: string): {
  flags: Map<string, Set<string>>;
  unscoped: string[];
} {
  const flags = new Map<string, Set<string>>();
  const unscoped: string[] = [];
  for (const a of argv) {
    if (a === entry) break;
    if (a === "-A" || a === "--allow-all") {
      unscoped.push(a);
      continue;
    }
    const m = a.match(/^--allow-([a-z-]+)(?:=(.*))?$/);
    if (!m) continue;
    const [, kind = "", values] = m;
    if (values === undefined || values === "") {
      unscoped.push(a);
      continue;
    }
    const set = flags.get(kind) ?? new Set<string>();
    for (const v of values.split(",")) set.add(v);
    flags.set(kind, set);
  }
  return { flags, unscoped };
}

/** The units checked and the program each runs. */
function unitsOf(layout: Layout): { unit: string; program: ProgramName; required: boolean }[] {
  return [
    { unit: UNIT_NAMES.joi, program: "joi", required: true },
    // each runs joi-retrieve as a channel user: its flags matter as much as joi's
    ...Object.keys(layout.channels).sort().map((c) => ({
      unit: retrieveUnitNames(c).service,
      program: "retrieve" as const,
      required: true,
    })),
    { unit: UNIT_NAMES.mesh, program: "mesh", required: false },
    { unit: UNIT_NAMES.openhab_relay, program: "openhab_relay", required: false },
    { unit: "joi-validate.service", program: "validate", required: false },
  ];
}

const CHECKED_PROGRAMS: ProgramName[] = [
  "joi",
  "mesh",
  "openhab_relay",
  "validate",
  "retrieve",
];

/** Checks the installed units in `unitsDir` against the manifest under `layout`. */
export function checkUnits(unitsDir: string, layout: Layout): Findings {
  const f = new Findings();
  const entries = new Map<string, { program: ProgramName; spec: ProgramSpec }>(
    CHECKED_PROGRAMS.map((p) => {
      const spec = programSpec(p, layout);
      return [`${layout.codeDir}/${spec.entry}`, { program: p, spec }];
    }),
  );
  for (const { unit, program, required } of unitsOf(layout)) {
    const path = `${unitsDir}/${unit}`;
    let text: string;
    try {
      text = Deno.readTextFileSync(path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        if (required) {
          f.error("unit_missing", `${path} does not exist`, path, "install it from systemd/");
        }
        continue;
      }
      f.error("unreadable", `cannot read ${path}: ${e}`, path, "run as root");
      continue;
    }
    const parsed = parseUnit(text);
    const service = parsed.filter((e) => e.section === "Service");
    if (program === "joi") {
      const umask = service.filter((e) => e.key === "UMask").at(-1);
      if (umask?.value !== "0027") {
        f.error(
          "umask_missing",
          umask === undefined
            ? `${unit} has no UMask=0027 (new knowledge files would be world-readable)`
            : `${unit} has UMask=${umask.value}, expected 0027`,
          umask ? `${path}:${umask.line}` : path,
          `set UMask=0027 in the [Service] section of ${path}`,
        );
      }
    }
    let sawMain = false;
    for (const e of service) {
      if (!e.key.startsWith("Exec")) continue;
      const argv = splitExec(e.value.replace(/^[-+@:!]+/, ""));
      const entryTok = argv.find((a) => entries.has(a));
      if (entryTok === undefined) continue;
      const { program: p, spec } = entries.get(entryTok)!;
      if (e.key === "ExecStart" && p === program) sawMain = true;
      const where = `${path}:${e.line}`;
      const { flags, unscoped } = allowFlags(argv, entryTok);
      for (const u of unscoped) {
        f.critical(
          "unit_flag_unscoped",
          `${unit} ${e.key} runs ${p} with ${u}: every resource of that kind is open`,
          where,
          "regenerate the unit with `deno task sync` and reinstall it",
        );
      }
      const want = new Map<string, Set<string>>();
      for (const flag of permissionFlags(spec.permissions)) {
        const [, kind = "", values = ""] = flag.match(/^--allow-([a-z-]+)=(.*)$/)!;
        want.set(kind, new Set(values.split(",")));
      }
      for (const kind of new Set([...flags.keys(), ...want.keys()])) {
        const have = flags.get(kind) ?? new Set<string>();
        const exp = want.get(kind) ?? new Set<string>();
        for (const v of [...have].filter((v) => !exp.has(v)).sort()) {
          f.error(
            "unit_flag_extra",
            `${unit} ${e.key} grants ${p} --allow-${kind}=${v}, which the permission manifest ` +
              `does not`,
            where,
            "regenerate the unit with `deno task sync` and reinstall it",
          );
        }
        for (const v of [...exp].filter((v) => !have.has(v)).sort()) {
          f.error(
            "unit_flag_missing",
            `${unit} ${e.key} lacks --allow-${kind}=${v}, which the permission manifest gives ${p}`,
            where,
            "regenerate the unit with `deno task sync` and reinstall it",
          );
        }
      }
    }
    if (!sawMain) {
      f.error(
        "unit_exec_unrecognised",
        `${unit} has no ExecStart running ${layout.codeDir}/${programSpec(program, layout).entry}`,
        path,
        "regenerate the unit with `deno task sync` and reinstall it",
      );
    }
  }
  return f;
}
