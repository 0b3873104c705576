/**
 * `deno task doctor`, for real and with faults injected.
 *
 * - The local run: joi and the mesh as processes with their manifest flags
 *   (the terminal in place of Signal) and the Ollama stand-in; the doctor as a
 *   process with its own manifest flags. Healthy: exit 0, no red. Then one
 *   fault at a time (model not pulled, no Ollama, a key readable by others, a
 *   key missing, the mesh stopped, joi stopped): exit 1, the red row and its
 *   fix.
 * - The production roles (joi, mesh, openHAB VM) with the system around them
 *   injected (systemctl, df, logrotate, timedatectl, the interfaces, the
 *   services' /health) and real certificates from nebula-cert.
 */
import assert from "node:assert/strict";
import { prepareVar } from "../../../main.ts";
import {
  denoRunArgs,
  type Layout,
  localLayout,
  type ProgramName,
  programSpec,
} from "../../../services/common/permissions/mod.ts";
import { renderJournald, renderLogrotate } from "../../../services/common/log_retention.ts";
import type { DoctorContext, DoctorPaths, Role } from "../../../scripts/doctor/context.ts";
import { diagnose } from "../../../scripts/doctor/cli.ts";
import type { Row } from "../../../scripts/doctor/table.ts";
import { LlmTestServer } from "../../peers/llm_server.ts";
import { hasExecutable, ignoreUnless } from "../../_helpers/requires.ts";
import { makeCerts, NEBULA_CERT } from "../../_helpers/nebula_certs.ts";
import { freeBasePort } from "../../_helpers/local_stack.ts";

const ROOT = new URL("../../../", import.meta.url).pathname;

async function until(what: string, pred: () => Promise<boolean>, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function healthOf(port: number): Promise<Record<string, unknown> | undefined> {
  try {
    const r = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(1000) });
    const j = await r.json();
    return r.ok ? j.data : undefined;
  } catch {
    return undefined;
  }
}

function spawn(name: ProgramName, layout: Layout): Deno.ChildProcess {
  const spec = programSpec(name, layout);
  return new Deno.Command("deno", {
    args: denoRunArgs(spec),
    cwd: ROOT,
    env: spec.env,
    stdin: "piped",
    stdout: "null",
    stderr: "null",
  }).spawn();
}

/** Runs the doctor as the manifest starts it; its table and its rows. */
async function doctor(layout: Layout): Promise<{ code: number; table: string; rows: Row[] }> {
  const args = denoRunArgs(programSpec("doctor", layout));
  const run = async (extra: string[]) => {
    const out = await new Deno.Command("deno", {
      args: [...args, ...extra],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    return {
      code: out.code,
      text: new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr),
    };
  };
  const [table, json] = await Promise.all([run([]), run(["--json"])]);
  assert.equal(table.code, json.code, table.text);
  const parsed = JSON.parse(json.text.trim().split("\n").at(-1)!);
  return { code: table.code, table: table.text, rows: parsed.rows };
}

const rowOf = (rows: Row[], check: string) => rows.find((r) => r.check === check);

Deno.test("doctor (local run, real processes): healthy exits 0; each fault is a red row with its fix", async () => {
  const varDir = await Deno.makeTempDir({ prefix: "joi-doctor-" });
  const llm = await LlmTestServer.start();
  const policies = `${varDir}/policies`;
  await Deno.mkdir(policies);
  for (const e of Deno.readDirSync(`${ROOT}policies`)) {
    if (e.isFile) await Deno.copyFile(`${ROOT}policies/${e.name}`, `${policies}/${e.name}`);
  }
  const policy = await Deno.readTextFile(`${policies}/policy.yaml`);
  await Deno.writeTextFile(
    `${policies}/policy.yaml`,
    policy
      .replace("check_interval_seconds: 30", "check_interval_seconds: 1")
      .replace("lighthouse_ping_timeout_ms: 5000", "lighthouse_ping_timeout_ms: 500")
      .replace("alert_after_failures: 3", "alert_after_failures: 2"),
  );
  const base = freeBasePort();
  const layout: Layout = {
    ...localLayout({ basePort: base, varDir }),
    joiConfigDir: policies,
    meshConfigDir: policies,
    relayConfigDir: policies,
    llm: { host: "127.0.0.1", port: Number(new URL(llm.baseUrl).port) },
  };
  await prepareVar(layout);
  const joi = spawn("joi", layout);
  const mesh = spawn("mesh", layout);
  const children = [joi, mesh];
  try {
    await until("joi and the mesh", async () => {
      const h = await healthOf(base);
      return (await healthOf(base + 1)) !== undefined &&
        (h?.watch as { link?: { reachable?: boolean } })?.link?.reachable === true;
    });

    // healthy
    let d = await doctor(layout);
    assert.equal(d.code, 0, d.table);
    assert.deepEqual(d.rows.filter((r) => r.status === "red"), [], d.table);
    for (const check of ["joi", "link (joi -> mesh)", "signal", "ollama", "keys", "disk (state)"]) {
      assert.equal(rowOf(d.rows, check)?.status, "green", `${check}:\n${d.table}`);
    }
    assert.match(d.table, /^joi doctor: the local run, /);
    assert.match(
      d.table,
      /^ollama +GREEN +http:\/\/127\.0\.0\.1:\d+ has llama3\.1:8b-instruct-q4_K_M$/m,
    );
    assert.match(d.table, /^\d+ green, \d+ yellow, 0 red$/m);

    // the model is not pulled
    llm.tags = ["phi3:mini"];
    d = await doctor(layout);
    assert.equal(d.code, 1);
    assert.deepEqual(rowOf(d.rows, "ollama"), {
      check: "ollama",
      status: "red",
      detail: `${new URL(llm.baseUrl).origin} does not have llama3.1:8b-instruct-q4_K_M`,
      fix: "ollama pull llama3.1:8b-instruct-q4_K_M",
    });
    llm.tags = ["llama3.1:8b-instruct-q4_K_M"];

    // no Ollama
    llm.mode = "down";
    d = await doctor(layout);
    assert.equal(d.code, 1);
    assert.equal(rowOf(d.rows, "ollama")?.status, "red");
    assert.match(
      rowOf(d.rows, "ollama")!.fix!,
      /^install it \(https:\/\/ollama\.com\/download\), then: ollama pull /,
    );
    llm.mode = "answer";

    // a key readable by others, then a key missing
    const secrets = layout.secretsDir("joi");
    await Deno.chmod(`${secrets}/memory.key`, 0o644);
    d = await doctor(layout);
    assert.equal(d.code, 1);
    assert.equal(rowOf(d.rows, "keys")?.detail, "memory.key has mode 0644");
    assert.match(rowOf(d.rows, "keys")!.fix!, /^chmod 0600 .*memory\.key \(and rotate it/);
    await Deno.chmod(`${secrets}/memory.key`, 0o600);
    await Deno.rename(`${secrets}/joi_to_mesh.key`, `${secrets}/joi_to_mesh.key.away`);
    d = await doctor(layout);
    assert.equal(d.code, 1);
    assert.equal(rowOf(d.rows, "keys")?.detail, "joi_to_mesh.key missing");
    await Deno.rename(`${secrets}/joi_to_mesh.key.away`, `${secrets}/joi_to_mesh.key`);
    d = await doctor(layout);
    assert.equal(d.code, 0, d.table);

    // the mesh stops: the mesh row, and joi's link watch after its failed checks
    mesh.kill("SIGKILL");
    await mesh.status;
    await until("joi to see the mesh gone", async () => {
      const h = await healthOf(base);
      return (h?.watch as { link?: { failures?: number } })?.link?.failures! >= 2;
    });
    d = await doctor(layout);
    assert.equal(d.code, 1);
    assert.equal(rowOf(d.rows, "mesh")?.status, "red");
    assert.match(rowOf(d.rows, "mesh")!.detail, /connection refused/);
    assert.equal(rowOf(d.rows, "link (joi -> mesh)")?.status, "red", d.table);

    // joi stops
    joi.kill("SIGTERM");
    await joi.status;
    d = await doctor(layout);
    assert.equal(d.code, 1);
    assert.equal(rowOf(d.rows, "joi")?.status, "red");
    assert.equal(rowOf(d.rows, "joi")?.fix, "start it: deno task start");
  } finally {
    for (const c of children) {
      try {
        c.kill("SIGKILL");
      } catch { /* gone */ }
      await c.status;
    }
    await llm.close();
    await Deno.remove(varDir, { recursive: true });
  }
});

// ---- production roles, with the system injected ----

const certs = (dir: string, node: string, hours: number) =>
  makeCerts(dir, { node, duration: `${hours}h` });

interface System {
  ctx: DoctorContext;
  health: Record<string, Record<string, unknown> | null>;
  active: Record<string, string>;
  dfUsed: number;
  addresses: string[];
  logrotate: { code: number; out: string };
  dir: string;
}

async function system(role: Exclude<Role, "local">): Promise<System> {
  const dir = await Deno.makeTempDir({ prefix: `joi-doctor-${role}-` });
  for (
    const d of ["etc/logrotate.d", "etc/systemd/journald.conf.d", "nebula", "keys", "state", "log"]
  ) {
    await Deno.mkdir(`${dir}/${d}`, { recursive: true });
  }
  await Deno.writeTextFile(`${dir}/etc/logrotate.d/joi`, renderLogrotate("joi")!);
  await Deno.writeTextFile(`${dir}/etc/systemd/journald.conf.d/joi.conf`, renderJournald());
  await certs(`${dir}/nebula`, role, 2000);
  const keys = {
    joi: ["mesh_to_joi.key", "joi_to_mesh.key", "openhab_to_joi.key", "memory.key"],
    mesh: ["mesh_to_joi.key", "joi_to_mesh.key"],
    openhab: ["openhab_token", "openhab_to_joi.key"],
  }[role];
  for (const k of keys) await Deno.writeTextFile(`${dir}/keys/${k}`, "x", { mode: 0o600 });
  const user = { joi: "joi", mesh: "joi-mesh", openhab: "joi-relay" }[role];
  const channelUsers = role === "joi"
    ? ["joi-owner-private", "joi-owner-public", "joi-partner-private", "joi-partner-public"]
      .concat(["joi-family", "joi-critical"])
    : [];
  await Deno.writeTextFile(
    `${dir}/passwd`,
    [user, ...channelUsers].map((u, i) => `${u}:x:${i ? 2000 + i : Deno.uid()}:0::/:/bin/false\n`)
      .join(""),
  );
  const now = Date.now();
  const sys: System = {
    dir,
    health: {
      "http://10.42.0.10:8443": {
        service: "joi",
        queue: { queued: 0 },
        watch: {
          link: { reachable: true, last_ok: new Date(now).toISOString() },
          house: {
            last_heartbeat: new Date(now).toISOString(),
            silent: false,
            openhab_reachable: true,
          },
          model: { bad_since: null },
          drift: { ok: true, last_run: new Date(now).toISOString(), failed: [] },
          clock: {
            mesh: { offset_ms: 120, measured_at: new Date(now).toISOString() },
            openhab: { offset_ms: -80, measured_at: new Date(now).toISOString() },
          },
          expiry: { certs: { mesh: { days_left: 60, not_after: "2027-01-01T00:00:00.000Z" } } },
        },
      },
      "http://10.42.0.1:8444": {
        signal: { state: "connected", version: "0.13.4", age_days: 20, warning: null },
        link: {
          joi_answers: true,
          last_check_from_joi: new Date(now).toISOString(),
          alerted: false,
          alerts_pending: 0,
        },
      },
      "http://10.42.0.10:8445": { service: "joi-ingest" },
      "http://127.0.0.1:8080": {},
    },
    active: {},
    dfUsed: 40,
    addresses: ["127.0.0.1", { joi: "10.42.0.10", mesh: "10.42.0.1", openhab: "10.42.0.20" }[role]],
    logrotate: { code: 0, out: "reading config file /etc/logrotate.d/joi\n" },
    ctx: undefined as unknown as DoctorContext,
  };
  const paths: DoctorPaths = {
    mode: "production",
    joiConfigDir: `${ROOT}policies`,
    meshConfigDir: `${ROOT}policies`,
    relayConfigDir: `${ROOT}policies`,
    joiStateDir: `${dir}/state`,
    meshStateDir: `${dir}/state`,
    relayStateDir: `${dir}/state`,
    logDir: `${dir}/log`,
    keysDirs: { joi: `${dir}/keys`, mesh: `${dir}/keys`, openhab: `${dir}/keys` },
    joiUrl: "http://10.42.0.10:8443",
    meshUrl: "http://10.42.0.1:8444",
    ingestUrl: "http://10.42.0.10:8445",
    llmUrl: "http://127.0.0.1:11434",
    openhabUrl: "http://127.0.0.1:8080",
    nebulaDir: `${dir}/nebula`,
    driftReport: `${dir}/report.json`,
  };
  const json = (data: unknown, status = 200) =>
    new Response(JSON.stringify({ status: status < 300 ? "ok" : "error", data }), { status });
  sys.ctx = {
    role,
    paths,
    now,
    passwdFile: `${dir}/passwd`,
    etcDir: `${dir}/etc`,
    addresses: () => sys.addresses,
    fetch: ((input: string | URL) => {
      const u = new URL(String(input));
      if (u.pathname === "/api/tags") {
        const models = [{ name: "llama3.1:8b-instruct-q4_K_M" }];
        return Promise.resolve(new Response(JSON.stringify({ models })));
      }
      if (u.pathname === "/rest/") {
        const h = sys.health[u.origin];
        return h ? Promise.resolve(new Response("{}")) : Promise.reject(
          new TypeError("fetch failed", { cause: new Error("Connection refused") }),
        );
      }
      const h = sys.health[u.origin];
      return h ? Promise.resolve(json(h)) : Promise.reject(
        new TypeError("fetch failed", {
          cause: new Error("tcp connect error: Connection refused"),
        }),
      );
    }) as typeof fetch,
    run: (bin, args) => {
      if (bin === "/usr/bin/systemctl") {
        const units = args.slice(1);
        return Promise.resolve({
          code: 0,
          stdout: units.map((u) => sys.active[u] ?? "active").join("\n") + "\n",
          stderr: "",
        });
      }
      if (bin === "/usr/bin/df") {
        return Promise.resolve({
          code: 0,
          stdout:
            `Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/vda1 16000000 1 ${
              Math.round(16000000 * (1 - sys.dfUsed / 100))
            } ${sys.dfUsed}% /\n`,
          stderr: "",
        });
      }
      if (bin === "/usr/sbin/logrotate") {
        return Promise.resolve({ code: sys.logrotate.code, stdout: "", stderr: sys.logrotate.out });
      }
      if (bin === "/usr/bin/timedatectl") {
        return Promise.resolve({ code: 0, stdout: "yes\n", stderr: "" });
      }
      return Promise.resolve({ code: 127, stdout: "", stderr: `${bin}: not expected` });
    },
  };
  return sys;
}

const reds = (rows: Row[]) => rows.filter((r) => r.status === "red").map((r) => r.check);

Deno.test({
  name: "doctor (joi VM, injected system): healthy is all green; each fault turns its row",
  ignore: ignoreUnless([hasExecutable(NEBULA_CERT), "nebula-cert (Debian package nebula)"]),
  async fn() {
    const s = await system("joi");
    try {
      let rows = await diagnose(s.ctx);
      assert.deepEqual(
        rows.filter((r) => r.status !== "green").map((r) => `${r.check}: ${r.detail}`),
        [],
      );
      assert.deepEqual(
        rows.map((r) => r.check),
        [
          "joi",
          "link (joi -> mesh)",
          "house heartbeat",
          "model watch",
          "drift (daily validation)",
          "clock (mesh)",
          "clock (openhab)",
          "certificate (mesh)",
          "ollama",
          "keys",
          "channel users",
          "units",
          "overlay",
          "time",
          "certificate (joi.crt)",
          "certificate (ca.crt)",
          "disk (state)",
          "disk (logs)",
          "security logs",
          "log rotation",
          "journal",
        ].filter((c) => c !== "channel users" || rows.some((r) => r.check === c)),
      );

      // each fault on its own
      const joiHealth = s.health["http://10.42.0.10:8443"]!;
      const watch = joiHealth.watch as Record<string, Record<string, unknown>>;
      watch.house = {
        last_heartbeat: "2026-01-01T10:00:00.000Z",
        silent: true,
        silent_since: "2026-01-01T10:00:00.000Z",
      };
      watch.drift = { ok: false, last_run: "2026-01-01T03:00:00.000Z", failed: ["unit_drift"] };
      watch.clock = {
        openhab: { offset_ms: 400_000, measured_at: "x" },
        mesh: { offset_ms: 45_000, measured_at: "x" },
      };
      s.active["joi.service"] = "failed";
      s.addresses = ["127.0.0.1"];
      s.dfUsed = 97;
      s.logrotate = { code: 1, out: "error: /etc/logrotate.d/joi:3 unknown option 'foo'\n" };
      await Deno.remove(`${s.dir}/etc/systemd/journald.conf.d/joi.conf`);
      await Deno.chmod(`${s.dir}/keys/memory.key`, 0o640);
      await certs(`${s.dir}/nebula`, "joi", 100); // 4 days left
      rows = await diagnose(s.ctx);
      assert.deepEqual(reds(rows), [
        "house heartbeat",
        "drift (daily validation)",
        "clock (openhab)",
        "keys",
        "units",
        "overlay",
        "disk (state)",
        "disk (logs)",
        "log rotation",
        "journal",
      ]);
      const by = (c: string) => rowOf(rows, c)!;
      assert.equal(by("clock (mesh)").status, "yellow");
      assert.equal(by("certificate (joi.crt)").status, "yellow");
      assert.match(by("certificate (joi.crt)").detail, /^expires in 4 days/);
      assert.match(by("house heartbeat").fix!, /systemctl status joi-openhab-relay nebula/);
      assert.match(by("units").detail, /^joi\.service failed$/);
      assert.match(by("overlay").detail, /^10\.42\.0\.10 is not on any interface/);
      assert.match(by("drift (daily validation)").detail, /unit_drift/);
      // an expired certificate is red
      await certs(`${s.dir}/nebula`, "joi", 1);
      s.ctx.now = Date.now() + 2 * 3_600_000;
      rows = await diagnose(s.ctx);
      assert.equal(rowOf(rows, "certificate (joi.crt)")?.status, "red");
      assert.match(rowOf(rows, "certificate (joi.crt)")!.fix!, /deno task nebula \.\.\. --rotate/);
    } finally {
      await Deno.remove(s.dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "doctor (mesh and openHAB VMs, injected system): Signal, the link, openHAB and joi's ingest",
  ignore: ignoreUnless([hasExecutable(NEBULA_CERT), "nebula-cert (Debian package nebula)"]),
  async fn() {
    const m = await system("mesh");
    const o = await system("openhab");
    try {
      assert.deepEqual(reds(await diagnose(m.ctx)), []);
      m.health["http://10.42.0.1:8444"] = {
        signal: {
          state: "disconnected",
          last_error: "connect ENOENT /run/signal-cli/socket",
          warning: "signal-cli 0.13.1 is 80 days old",
        },
        link: {
          joi_answers: false,
          alerted: true,
          down_since: "2026-01-01T10:00:00.000Z",
          problem: "joi does not answer",
          alerts_pending: 2,
        },
      };
      assert.deepEqual(reds(await diagnose(m.ctx)), [
        "signal",
        "signal-cli age",
        "link (mesh -> joi)",
        "mesh alerts",
      ]);
      assert.deepEqual(reds(await diagnose(o.ctx)), []);
      delete o.health["http://127.0.0.1:8080"];
      delete o.health["http://10.42.0.10:8445"];
      const rows = await diagnose(o.ctx);
      assert.deepEqual(reds(rows), ["openhab", "link (relay -> joi)"]);
      assert.match(rowOf(rows, "link (relay -> joi)")!.detail, /connection refused/);
    } finally {
      await Deno.remove(m.dir, { recursive: true });
      await Deno.remove(o.dir, { recursive: true });
    }
  },
});
