/**
 * The sandbox test: every program of the permission manifest is started with
 * its real command line (`deno run <manifest flags> <entry> <args>`) plus a
 * `--preload` probe that runs inside that very process before the entry. The
 * probe checks that each permission the manifest states is granted, and that
 * a forbidden read, write, connection, spawn, environment read and FFI load
 * are refused by Deno with `NotCapable`. It then exits, so the program itself
 * never runs.
 */
import assert from "node:assert/strict";
import {
  denoRunArgs,
  localLayout,
  type Permissions,
  type ProgramName,
  PROGRAMS,
  programSpec,
} from "../services/common/permissions/mod.ts";
import { exists } from "../services/common/fs.ts";

const ROOT = new URL("../", import.meta.url).pathname;

/** One check the probe performs. */
type Check =
  | { kind: "granted"; perm: Deno.PermissionDescriptor }
  | { kind: "refused"; action: "read" | "write" | "net" | "run" | "env" | "ffi"; target: string };

/** The probe module: runs `checks` and prints one JSON line of failures. */
function probeSource(checks: Check[]): string {
  return `
const checks = ${JSON.stringify(checks)};
const failures = [];
for (const c of checks) {
  if (c.kind === "granted") {
    const s = await Deno.permissions.query(c.perm);
    if (s.state !== "granted") failures.push("not granted: " + JSON.stringify(c.perm));
    continue;
  }
  let outcome = "allowed";
  try {
    switch (c.action) {
      case "read": await Deno.readTextFile(c.target); break;
      case "write": (await Deno.open(c.target, { write: true, create: false })).close(); break;
      case "net": (await Deno.connect({ hostname: c.target.split(":")[0], port: Number(c.target.split(":")[1]) })).close(); break;
      case "run": await new Deno.Command(c.target, { args: ["--version"] }).output(); break;
      case "env": Deno.env.get(c.target); break;
      case "ffi": Deno.dlopen(c.target, {}); break;
    }
  } catch (e) {
    outcome = e instanceof Deno.errors.NotCapable ? "refused" : "allowed (" + e.name + ")";
  }
  if (outcome !== "refused") failures.push(c.action + " " + c.target + ": " + outcome);
}
console.log(JSON.stringify({ probe: "done", failures }));
Deno.exit(0);
`;
}

/** Granted checks for every item the manifest states. */
function grantedChecks(p: Permissions): Check[] {
  const out: Check[] = [];
  for (const path of p.read) out.push({ kind: "granted", perm: { name: "read", path } });
  for (const path of p.write) out.push({ kind: "granted", perm: { name: "write", path } });
  for (const host of p.net) {
    if (!host.startsWith("unix:")) out.push({ kind: "granted", perm: { name: "net", host } });
  }
  for (const command of p.run) out.push({ kind: "granted", perm: { name: "run", command } });
  for (const variable of p.env) out.push({ kind: "granted", perm: { name: "env", variable } });
  return out;
}

/** Forbidden actions: none of them may be admitted by the program's flags. */
function refusedChecks(p: Permissions): Check[] {
  const covers = (list: string[], path: string) =>
    list.some((allowed) => path === allowed || path.startsWith(allowed.replace(/\/$/, "") + "/"));
  const checks: Check[] = [];
  if (!covers(p.read, "/etc/shadow")) {
    checks.push({ kind: "refused", action: "read", target: "/etc/shadow" });
  }
  if (!covers(p.read, "/root/.bash_history")) {
    checks.push({ kind: "refused", action: "read", target: "/root/.bash_history" });
  }
  if (!covers(p.write, "/etc/joi-sandbox-probe")) {
    checks.push({ kind: "refused", action: "write", target: "/etc/joi-sandbox-probe" });
  }
  checks.push({ kind: "refused", action: "write", target: "/usr/bin/joi-sandbox-probe" });
  checks.push({ kind: "refused", action: "net", target: "127.0.0.9:9" });
  checks.push({ kind: "refused", action: "run", target: "/usr/bin/env" });
  if (!p.env.includes("HOME")) checks.push({ kind: "refused", action: "env", target: "HOME" });
  checks.push({ kind: "refused", action: "env", target: "AWS_SECRET_ACCESS_KEY" });
  checks.push({ kind: "refused", action: "ffi", target: "libc.so.6" });
  return checks;
}

/** Programs started by the test runner itself are checked through `scripts/test.ts`. */
const SKIP: ProgramName[] = ["test"];

for (const program of PROGRAMS.filter((p) => !SKIP.includes(p))) {
  Deno.test(`sandbox: ${program} runs with exactly its manifest permissions`, async () => {
    const varDir = await Deno.makeTempDir({ prefix: "joi-sandbox-" });
    try {
      const layout = localLayout({ varDir, basePort: 18443 });
      const spec = programSpec(program, layout);
      assert.ok(
        await exists(`${ROOT}${spec.entry}`),
        `${program}: entry ${spec.entry} does not exist (the manifest names a missing program)`,
      );
      const probe = `${varDir}/probe.ts`;
      await Deno.writeTextFile(
        probe,
        probeSource([...grantedChecks(spec.permissions), ...refusedChecks(spec.permissions)]),
      );
      const [run, ...rest] = denoRunArgs(spec);
      const out = await new Deno.Command("deno", {
        args: [run, "--frozen", `--preload=${probe}`, ...rest],
        cwd: ROOT,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stdout = new TextDecoder().decode(out.stdout);
      const line = stdout.split("\n").find((l) => l.includes('"probe":"done"'));
      assert.ok(
        line,
        `${program}: probe did not run:\n${stdout}\n${new TextDecoder().decode(out.stderr)}`,
      );
      assert.deepEqual(JSON.parse(line).failures, [], `${program}: sandbox mismatch`);
    } finally {
      await Deno.remove(varDir, { recursive: true });
    }
  });
}
