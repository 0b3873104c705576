/**
 * The checks of `deno task doctor`. Each returns rows of the table
 * (`table.ts`); none throws (a check that cannot run is a red row saying why).
 * What each role checks:
 *
 * | check          | local | joi | mesh | openhab |
 * |----------------|-------|-----|------|---------|
 * | services       | x     | x   | x    | x (joi's ingest, openHAB) |
 * | ollama         | x     | x   |      |         |
 * | keys           | x     | x   | x    | x       |
 * | channel users  | x     | x   |      |         |
 * | units          |       | x   | x    | x       |
 * | overlay        |       | x   | x    | x       |
 * | time           | x     | x   | x    | x       |
 * | certificates   |       | x   | x    | x       |
 * | watches        | x     | x   | x    |         |
 * | disk, logs     | x     | x   | x    | x       |
 *
 * @module
 */
import { loadPolicyFile } from "../../services/common/policy/mod.ts";
import { LOG_FILES, type LogRole } from "../../services/common/log_retention.ts";
import { daysLeft, parseNebulaCert } from "../../services/common/watch/nebula_cert.ts";
import { probeOllama } from "../../services/joi/llm/ollama_probe.ts";
import { fetchError } from "../../services/joi/llm/health.ts";
import type { DoctorContext } from "./context.ts";
import { ROLES } from "../install/plan.ts";
import { green, red, type Row, yellow } from "./table.ts";

type Json = Record<string, unknown>;
const obj = (v: unknown): Json => (v !== null && typeof v === "object" ? v as Json : {});

/** `GET <base>/health`'s data, or why there is none. */
export async function health(ctx: DoctorContext, base: string): Promise<Json | string> {
  try {
    const res = await ctx.fetch(`${base}/health`, { signal: AbortSignal.timeout(3000) });
    const body = obj(await res.json());
    if (!res.ok || body.status !== "ok") return `${base}/health answered HTTP ${res.status}`;
    return obj(body.data);
  } catch (e) {
    return `${base}: ${fetchError(e)}`;
  }
}

// ---- services and their watches ----

/** joi's /health and the watches it reports. */
export function joiRows(ctx: DoctorContext, h: Json | string): Row[] {
  if (typeof h === "string") {
    return [
      red(
        "joi",
        `joi does not answer: ${h}`,
        ctx.role === "local"
          ? "start it: deno task start"
          : "systemctl status joi; journalctl -u joi -n 50",
      ),
    ];
  }
  const w = obj(h.watch);
  const rows: Row[] = [green("joi", `answers; ${obj(h.queue).queued ?? 0} message(s) queued`)];
  const link = obj(w.link);
  if (link.reachable === true) {
    rows.push(green("link (joi -> mesh)", `the mesh answers (last check ${link.last_ok})`));
  } else if (link.reachable === false) {
    rows.push(red(
      "link (joi -> mesh)",
      `the mesh does not answer since ${link.down_since ?? "?"} (${link.failures} checks): ` +
        `${link.last_error ?? ""}`.trim(),
      ctx.role === "local"
        ? "is the mesh running? see its lines in deno task start"
        : "on this VM: systemctl status nebula; on the mesh VM: systemctl status joi-mesh nebula",
    ));
  } else {
    rows.push(yellow("link (joi -> mesh)", String(link.note ?? "no check yet")));
  }
  const house = obj(w.house);
  if (house.last_heartbeat === null || house.last_heartbeat === undefined) {
    rows.push(
      ctx.role === "local"
        ? green("house heartbeat", "the local run has no openHAB relay (not watched)")
        : yellow(
          "house heartbeat",
          "no heartbeat from the openHAB relay yet",
          "on the openHAB VM: systemctl status joi-openhab-relay",
        ),
    );
  } else if (house.silent === true) {
    rows.push(red(
      "house heartbeat",
      `the house is silent since ${house.silent_since}`,
      "on the openHAB VM: systemctl status joi-openhab-relay nebula",
    ));
  } else if (house.openhab_reachable === false) {
    rows.push(red(
      "house heartbeat",
      `the relay reports openHAB not answering: ${house.openhab_error ?? "?"}`,
      "on the openHAB VM: systemctl status openhab",
    ));
  } else rows.push(green("house heartbeat", `last ${house.last_heartbeat}`));
  const model = obj(w.model);
  if (model.bad_since) {
    const row = model.told === true ? red : yellow;
    rows.push(row(
      "model watch",
      `${model.cause === "cpu" ? "on the CPU" : "Ollama unreachable"} since ${model.bad_since}`,
      model.cause === "cpu" ? "check the eGPU" : "systemctl status ollama",
    ));
  } else rows.push(green("model watch", "no episode"));
  const drift = obj(w.drift);
  if (drift.ok === false) {
    rows.push(red(
      "drift (daily validation)",
      `failed ${drift.last_run}: ${(drift.failed as string[] ?? []).join(", ")}`,
      "run joi-validate-config and apply each fix",
    ));
  } else if (drift.ok === true) {
    rows.push(green("drift (daily validation)", `passed ${drift.last_run}`));
  } else if (drift.error) {
    rows.push(red("drift (daily validation)", String(drift.error), "check joi-validate.timer"));
  } else {
    rows.push(
      ctx.role === "local"
        ? green("drift (daily validation)", "the local run has no daily validation")
        : yellow(
          "drift (daily validation)",
          "no report yet",
          "systemctl start joi-validate.service; systemctl list-timers joi-validate.timer",
        ),
    );
  }
  rows.push(...clockRows(ctx, obj(w.clock)));
  const certs = obj(obj(w.expiry).certs);
  for (const [node, c] of Object.entries(certs)) {
    if (node === "joi") continue; // this VM's own is read from the file
    rows.push(certRow(`certificate (${node})`, obj(c)));
  }
  return rows;
}

function certRow(check: string, c: Json): Row {
  if (typeof c.error === "string") return red(check, c.error, "replace the certificate");
  const days = Number(c.days_left);
  const fix = "on the build host: deno task nebula ... --rotate; install the new bundle";
  if (days < 0) return red(check, `expired ${c.not_after}`, fix);
  if (days < 30) return yellow(check, `expires in ${days} days (${c.not_after})`, fix);
  return green(check, `valid ${days} more days`);
}

function clockRows(ctx: DoctorContext, clock: Json): Row[] {
  const rows: Row[] = [];
  const policy = policyOf(ctx);
  const alert = (policy?.security.clock_offset_alert_seconds ?? 30) * 1000;
  const tolerance = (policy?.security.timestamp_tolerance_minutes ?? 5) * 60_000;
  for (const peer of ["mesh", "openhab"]) {
    const s = obj(clock[peer]);
    if (typeof s.offset_ms !== "number") continue;
    const off = Math.abs(s.offset_ms);
    const text = `${peer}'s clock is ${s.offset_ms} ms from joi's (measured ${s.measured_at})`;
    const fix = "check time synchronisation on both VMs: chronyc tracking";
    rows.push(
      off > tolerance
        ? red(`clock (${peer})`, `${text}: signed requests are refused`, fix)
        : off > alert
        ? yellow(`clock (${peer})`, text, fix)
        : green(`clock (${peer})`, text),
    );
  }
  return rows;
}

/** The mesh's /health: Signal, its link to joi, signal-cli's age. */
export function meshRows(ctx: DoctorContext, h: Json | string): Row[] {
  if (typeof h === "string") {
    return [
      red(
        "mesh",
        `the mesh does not answer: ${h}`,
        ctx.role === "local"
          ? "start it: deno task start"
          : "systemctl status joi-mesh; journalctl -u joi-mesh -n 50",
      ),
    ];
  }
  const rows: Row[] = [];
  const signal = obj(h.signal);
  if (signal.state === "connected") {
    rows.push(green("signal", `connected (signal-cli ${signal.version ?? "?"})`));
  } else {
    rows.push(red(
      "signal",
      `signal-cli is ${signal.state}: ${signal.last_error ?? ""}`.trim(),
      "systemctl status signal-cli.socket signal-cli; journalctl -u signal-cli -n 50",
    ));
  }
  if (typeof signal.warning === "string") {
    rows.push(
      red("signal-cli age", signal.warning, "update signal-cli (README, Day-2 operations)"),
    );
  } else if (typeof signal.age_days === "number") {
    rows.push(green("signal-cli age", `${signal.age_days} days`));
  }
  const link = obj(h.link);
  if (link.alerted === true) {
    rows.push(red(
      "link (mesh -> joi)",
      `joi unreachable since ${link.down_since}: ${link.problem}`,
      "on the joi VM: systemctl status joi nebula",
    ));
  } else if (link.joi_answers === false) {
    rows.push(yellow("link (mesh -> joi)", `joi did not answer the last check: ${link.problem}`));
  } else if (link.joi_answers === true) {
    rows.push(
      green("link (mesh -> joi)", `joi answers; last check from joi ${link.last_check_from_joi}`),
    );
  } else {rows.push(
      yellow("link (mesh -> joi)", "no check yet (the first comes after one interval)"),
    );}
  if (Number(link.alerts_pending) > 0) {
    rows.push(red(
      "mesh alerts",
      `${link.alerts_pending} alert(s) could not be sent yet`,
      "check signal-cli (see the signal row)",
    ));
  }
  return rows;
}

// ---- the local machine ----

function policyOf(ctx: DoctorContext) {
  try {
    return loadPolicyFile("policy", `${configDirOf(ctx)}/policy.yaml`);
  } catch {
    return undefined;
  }
}

function configDirOf(ctx: DoctorContext): string {
  const p = ctx.paths;
  return ctx.role === "mesh"
    ? p.meshConfigDir
    : ctx.role === "openhab"
    ? p.relayConfigDir
    : p.joiConfigDir;
}

/** Ollama reachable, and joi's model pulled. */
export async function ollamaRows(ctx: DoctorContext): Promise<Row[]> {
  let model: string;
  try {
    model = loadPolicyFile("llm", `${ctx.paths.joiConfigDir}/llm.yaml`).primary_model;
  } catch (e) {
    return [red("ollama", `llm.yaml: ${(e as Error).message.split("\n")[0]}`, "fix llm.yaml")];
  }
  const origin = new URL(ctx.paths.llmUrl).origin;
  const p = await probeOllama(origin, model, { fetch: ctx.fetch });
  if (!p.reachable) {
    return [
      red(
        "ollama",
        `no Ollama at ${origin} (${p.error})`,
        ctx.role === "local"
          ? `install it (https://ollama.com/download), then: ollama pull ${model}`
          : "systemctl status ollama",
      ),
    ];
  }
  return [
    p.pulled
      ? green("ollama", `${origin} has ${model}`)
      : red("ollama", `${origin} does not have ${model}`, `ollama pull ${model}`),
  ];
}

/** The secret files: present, regular, 0600 (or 0400), owned by the service's user. */
export function keyRows(ctx: DoctorContext): Row[] {
  const want: Record<string, { dir: string; files: string[]; owner: string | null }> = {
    joi: {
      dir: ctx.paths.keysDirs.joi,
      files: ctx.paths.mode === "local"
        ? ["mesh_to_joi.key", "joi_to_mesh.key", "memory.key"]
        : ["mesh_to_joi.key", "joi_to_mesh.key", "openhab_to_joi.key", "memory.key"],
      owner: ctx.paths.mode === "local" ? null : "joi",
    },
    mesh: {
      dir: ctx.paths.keysDirs.mesh,
      files: ["mesh_to_joi.key", "joi_to_mesh.key"],
      owner: "joi-mesh",
    },
    openhab: {
      dir: ctx.paths.keysDirs.openhab,
      files: ["openhab_token", "openhab_to_joi.key"],
      owner: "joi-relay",
    },
  };
  const w = want[ctx.role === "local" ? "joi" : ctx.role]!;
  const users = passwd(ctx);
  const problems: string[] = [];
  const fixes: string[] = [];
  for (const f of w.files) {
    const path = `${w.dir}/${f}`;
    let st: Deno.FileInfo;
    try {
      st = Deno.lstatSync(path);
    } catch {
      problems.push(`${f} missing`);
      fixes.push(
        ctx.role === "local"
          ? "deno task start creates the local keys"
          : `install the bundle's ${f} (README, Install each VM)`,
      );
      continue;
    }
    const mode = (st.mode ?? 0) & 0o777;
    if (!st.isFile) problems.push(`${f} is not a regular file`);
    if (mode & 0o077) {
      problems.push(`${f} has mode 0${mode.toString(8)}`);
      fixes.push(`chmod 0600 ${path} (and rotate it: others could read it)`);
    }
    const owner = w.owner === null ? null : users.get(w.owner);
    if (owner !== undefined && owner !== null && st.uid !== owner) {
      problems.push(`${f} is not owned by ${w.owner}`);
      fixes.push(`chown ${w.owner} ${path}`);
    }
  }
  return [
    problems.length === 0
      ? green("keys", `${w.files.length} present, mode 0600, in ${w.dir}`)
      : red("keys", problems.join("; "), [...new Set(fixes)].join("; ")),
  ];
}

function passwd(ctx: DoctorContext): Map<string, number> {
  const out = new Map<string, number>();
  try {
    for (const line of Deno.readTextFileSync(ctx.passwdFile).split("\n")) {
      const [name, , uid] = line.split(":");
      if (name && uid !== undefined && /^\d+$/.test(uid)) out.set(name, Number(uid));
    }
  } catch { /* no passwd: nothing to compare */ }
  return out;
}

/** The channel users of channel_users.yaml exist (knowledge is read as them). */
export function channelUserRows(ctx: DoctorContext): Row[] {
  let allowed: string[];
  try {
    allowed = Object.values(
      loadPolicyFile("channelUsers", `${ctx.paths.joiConfigDir}/channel_users.yaml`)
        .allowed_channel_users,
    );
  } catch (e) {
    return [red("channel users", (e as Error).message.split("\n")[0]!, "fix channel_users.yaml")];
  }
  const users = passwd(ctx);
  const missing = allowed.filter((u) => !users.has(u));
  if (missing.length === 0) return [green("channel users", `${allowed.length} present`)];
  const detail = `${missing.length} of ${allowed.length} missing: ${missing.join(", ")}`;
  return ctx.role === "local"
    ? [
      yellow("channel users", `${detail} (knowledge retrieval is off)`, "sudo deno task provision"),
    ]
    : [red("channel users", detail, "deno task provision (README, Install each VM)")];
}

/** Every unit of the role is active. */
export async function unitRows(ctx: DoctorContext): Promise<Row[]> {
  if (ctx.role === "local") return [];
  const units = ROLES[ctx.role].enable; // what the guide enabled on this VM
  const r = await ctx.run("/usr/bin/systemctl", ["is-active", ...units]);
  const states = r.stdout.trim().split("\n");
  const down = units.filter((_, i) => states[i] !== "active");
  if (r.code === 127) return [red("units", `systemctl could not run: ${r.stderr}`, "run as root")];
  return [
    down.length === 0 ? green("units", `${units.join(", ")} active`) : red(
      "units",
      down.map((u) => `${u} ${states[units.indexOf(u)] ?? "unknown"}`).join(", "),
      `systemctl status ${down.join(" ")}; journalctl -u ${down[0]} -n 50`,
    ),
  ];
}

function ownCert(ctx: DoctorContext) {
  if (!ctx.paths.nebulaDir || ctx.role === "local") return undefined;
  const path = `${ctx.paths.nebulaDir}/${ctx.role}.crt`;
  try {
    return { path, cert: parseNebulaCert(Deno.readTextFileSync(path)) };
  } catch (e) {
    return { path, error: (e as Error).message };
  }
}

/** This VM's overlay address (from its certificate) is up on an interface. */
export function overlayRows(ctx: DoctorContext): Row[] {
  const own = ownCert(ctx);
  if (!own) return [];
  if (!own.cert) {
    return [red("overlay", `cannot tell: ${own.error}`, "install this VM's certificate")];
  }
  const want = own.cert.ips[0]?.split("/")[0];
  if (!want) return [red("overlay", `${own.path} carries no address`, "re-sign it with -ip")];
  return [
    ctx.addresses().includes(want) ? green("overlay", `${want} is up`) : red(
      "overlay",
      `${want} is not on any interface: Nebula is down`,
      "systemctl start nebula; journalctl -u nebula -n 50",
    ),
  ];
}

/** This VM's certificate and the CA's: days left. */
export function certRows(ctx: DoctorContext): Row[] {
  if (!ctx.paths.nebulaDir || ctx.role === "local") return [];
  const rows: Row[] = [];
  for (const name of [`${ctx.role}.crt`, "ca.crt"]) {
    const path = `${ctx.paths.nebulaDir}/${name}`;
    try {
      const c = parseNebulaCert(Deno.readTextFileSync(path));
      const days = daysLeft(c, ctx.now);
      rows.push(certRow(`certificate (${name})`, {
        days_left: days,
        not_after: new Date(c.notAfter).toISOString(),
      }));
    } catch (e) {
      rows.push(red(`certificate (${name})`, (e as Error).message, `install ${path}`));
    }
  }
  return rows;
}

/** NTP synchronisation of this VM (production). */
export async function timeRows(ctx: DoctorContext): Promise<Row[]> {
  if (ctx.role === "local") return [];
  const r = await ctx.run("/usr/bin/timedatectl", ["show", "-p", "NTPSynchronized", "--value"]);
  const v = r.stdout.trim();
  return [
    v === "yes" ? green("time", "NTP synchronised") : yellow(
      "time",
      r.code === 0 ? "the clock is not NTP synchronised" : `timedatectl: ${r.stderr.trim()}`,
      "apt install chrony; point it at the gateway (README: time synchronisation)",
    ),
  ];
}

async function sizeOf(path: string, budget = { entries: 20_000 }): Promise<number> {
  let total = 0;
  const walk = async (p: string) => {
    let entries;
    try {
      entries = Deno.readDir(p);
    } catch {
      return;
    }
    try {
      for await (const e of entries) {
        if (--budget.entries < 0) return;
        const child = `${p}/${e.name}`;
        try {
          const st = await Deno.lstat(child);
          if (st.isDirectory) await walk(child);
          else total += st.size;
        } catch { /* gone or unreadable */ }
      }
    } catch { /* unreadable */ }
  };
  await walk(path);
  return total;
}

/** `dir`, or its nearest parent that exists (df needs one). */
function existing(dir: string): string {
  let d = dir;
  for (let i = 0; i < 64; i++) {
    try {
      Deno.statSync(d);
      return d;
    } catch {
      const up = d.replace(/\/[^/]+\/?$/, "");
      if (up === d || up === "") return d.startsWith("/") ? "/" : ".";
      d = up;
    }
  }
  return d;
}

const mb = (n: number) => `${(n / 1048576).toFixed(n < 10 * 1048576 ? 1 : 0)} MB`;

/** Space left where state and logs live, and their sizes. */
export async function diskRows(ctx: DoctorContext): Promise<Row[]> {
  const p = ctx.paths;
  const state = ctx.role === "mesh"
    ? p.meshStateDir
    : ctx.role === "openhab"
    ? p.relayStateDir
    : p.joiStateDir;
  const rows: Row[] = [];
  for (const [what, dir] of [["state", state], ["logs", p.logDir]] as const) {
    const size = await sizeOf(dir);
    const r = await ctx.run("/usr/bin/df", ["-P", "-k", existing(dir)]);
    const cols = r.stdout.trim().split("\n")[1]?.split(/\s+/) ?? [];
    const used = Number(cols[4]?.replace("%", ""));
    const avail = Number(cols[3]) * 1024;
    if (r.code !== 0 || !Number.isFinite(used)) {
      rows.push(
        yellow(`disk (${what})`, `${dir}: ${mb(size)}; df: ${r.stderr.trim() || "no answer"}`),
      );
      continue;
    }
    const detail = `${dir}: ${mb(size)}; its disk ${used}% used, ${mb(avail)} free`;
    const fix = "free space on this VM (journalctl --vacuum-size=500M; old state)";
    rows.push(
      used >= 95
        ? red(`disk (${what})`, detail, fix)
        : used >= 85
        ? yellow(`disk (${what})`, detail, fix)
        : green(`disk (${what})`, detail),
    );
  }
  return rows;
}

/** Log retention in place (production), and the never-deleted security logs' size. */
export async function logRows(ctx: DoctorContext): Promise<Row[]> {
  const rows: Row[] = [];
  const role: LogRole = ctx.role === "local" ? "joi" : ctx.role;
  let security = 0;
  const names = [
    ...LOG_FILES[role].security,
    ...(ctx.role === "local" ? LOG_FILES.mesh.security : []),
  ];
  try {
    for (const e of Deno.readDirSync(ctx.paths.logDir)) {
      if (names.some((n) => e.name.startsWith(n))) {
        security += Deno.lstatSync(`${ctx.paths.logDir}/${e.name}`).size;
      }
    }
  } catch { /* no log folder yet */ }
  rows.push(
    security > 1024 * 1048576
      ? yellow(
        "security logs",
        `${mb(security)} (never deleted automatically)`,
        `archive them, then delete the old ones yourself: ` +
          `find ${ctx.paths.logDir} -name '*security.log-*' -mtime +365 -delete`,
      )
      : green("security logs", `${mb(security)} (rotated, kept until you delete them)`),
  );
  if (ctx.role === "local") return rows;
  const install = `deno task install --role ${role} (it writes the file)`;
  if (LOG_FILES[role].app.length > 0) {
    const conf = `${ctx.etcDir}/logrotate.d/joi`;
    const r = await ctx.run("/usr/sbin/logrotate", ["-d", conf]);
    const text = r.stdout + r.stderr;
    const problem = text.split("\n").find((l) => l.startsWith("error"));
    rows.push(
      r.code === 0 && problem === undefined
        ? green("log rotation", `${conf}: 90 days, security logs kept`)
        : red("log rotation", `${conf}: ${problem ?? `logrotate exit ${r.code}`}`, install),
    );
  }
  const journald = `${ctx.etcDir}/systemd/journald.conf.d/joi.conf`;
  let text: string | undefined;
  try {
    text = Deno.readTextFileSync(journald);
  } catch { /* absent */ }
  rows.push(
    text === undefined
      ? red("journal", `no ${journald}: the journal is unbounded`, install)
      : /^MaxRetentionSec=/m.test(text)
      ? green("journal", `bounded by ${journald}`)
      : red("journal", `${journald} sets no retention`, install),
  );
  return rows;
}

/** The openHAB VM: openHAB answers locally, joi's ingest answers over the overlay. */
export async function openhabRows(ctx: DoctorContext): Promise<Row[]> {
  const rows: Row[] = [];
  try {
    const res = await ctx.fetch(`${ctx.paths.openhabUrl}/rest/`, {
      signal: AbortSignal.timeout(3000),
    });
    await res.body?.cancel();
    rows.push(
      res.ok ? green("openhab", `answers at ${ctx.paths.openhabUrl}`) : red(
        "openhab",
        `${ctx.paths.openhabUrl}/rest/ answered HTTP ${res.status}`,
        "systemctl status openhab",
      ),
    );
  } catch (e) {
    rows.push(
      red(
        "openhab",
        `no answer at ${ctx.paths.openhabUrl}: ${(e as Error).message.slice(0, 100)}`,
        "systemctl status openhab",
      ),
    );
  }
  const h = await health(ctx, ctx.paths.ingestUrl);
  rows.push(
    typeof h === "string"
      ? red(
        "link (relay -> joi)",
        `joi's ingest does not answer: ${h}`,
        "systemctl status nebula; on the joi VM: systemctl status joi nebula",
      )
      : green("link (relay -> joi)", `joi's ingest answers at ${ctx.paths.ingestUrl}`),
  );
  return rows;
}
