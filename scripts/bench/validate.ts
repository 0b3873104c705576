/**
 * joi-validate-config speed: it runs as `ExecStartPre` of joi.service, so its
 * cost is added to every start. Measures a full in-process validation of a
 * provisioned household (staged under /tmp with fake accounts, with 200
 * documents in the knowledge folders) against the baseline of loading the
 * policy files alone, measured in the same run.
 *
 * @module
 */
import { loadPolicies } from "../../services/common/policy/mod.ts";
import { renderUnits, unitHousehold } from "../../services/common/units/mod.ts";
import { householdUnitsOf } from "../provision/provision.ts";
import { diff, systemView } from "../provision/plan.ts";
import { parseGroup, parsePasswd } from "../provision/system.ts";
import { expectedState, INSTALLED, productionAddressesFrom, validate } from "../validate/mod.ts";
import { credentialsOf } from "../validate/secrets_check.ts";

/** Stages a household under a new temp root (no tools spawned: provision's plan, placed here). */
function stage(): string {
  const root = Deno.makeTempDirSync({ prefix: "joi-bench-validate-" });
  try {
    populate(root);
    return root;
  } catch (e) {
    Deno.removeSync(root, { recursive: true });
    throw e;
  }
}

function populate(root: string): void {
  const config = root + INSTALLED.configDir;
  Deno.mkdirSync(config, { recursive: true });
  for (const e of Deno.readDirSync("policies")) {
    if (e.isFile) Deno.copyFileSync(`policies/${e.name}`, `${config}/${e.name}`);
  }
  const p = loadPolicies(config);
  const want = expectedState(p.recipients, householdUnitsOf(p));
  const passwd = ["root:x:0:0::/root:/bin/sh"];
  const group = ["root:x:0:"];
  let id = 64000;
  for (const u of want.users) {
    passwd.push(`${u}:x:${id}:${id}::/nonexistent:/usr/sbin/nologin`);
    group.push(`${u}:x:${id++}:`);
  }
  for (const g of want.groups) {
    if (!want.users.includes(g)) {
      group.push(`${g}:x:${id++}:${(want.memberships[g] ?? []).join(",")}`);
    }
  }
  Deno.writeTextFileSync(`${root}/etc/passwd`, passwd.join("\n") + "\n");
  Deno.writeTextFileSync(`${root}/etc/group`, group.join("\n") + "\n");
  const users = parsePasswd(passwd.join("\n"));
  const groups = parseGroup(group.join("\n"));
  Deno.mkdirSync(`${root}/var/lib`, { recursive: true });
  for (const a of diff(want, systemView({ users, groups }, root, true))) {
    if (a.kind !== "create" && a.kind !== "write") continue;
    const s = a.spec;
    const at = root + s.path;
    Deno.mkdirSync(at.slice(0, at.lastIndexOf("/")), { recursive: true });
    if (s.type === "dir") Deno.mkdirSync(at);
    else Deno.writeTextFileSync(at, s.content ?? "");
    const uid = s.owner === "root" ? 0 : users.get(s.owner)!.uid;
    const gid = s.group === "root" ? 0 : groups.get(s.group)!.gid;
    Deno.chownSync(at, uid, gid);
    Deno.chmodSync(at, s.mode);
  }
  // 200 documents spread over the knowledge folders
  const folders = want.paths.filter((s) => s.type === "dir" && s.mode === 0o2750);
  for (let i = 0; i < 200; i++) {
    const f = folders[i % folders.length];
    if (!f) throw new Error("bench: the household plan has no knowledge folders");
    const at = `${root}${f.path}/note-${i}.md`;
    Deno.writeTextFileSync(at, `# note ${i}\n`);
    Deno.chownSync(at, users.get(p.recipients.service_user)!.uid, groups.get(f.group)!.gid);
    Deno.chmodSync(at, 0o640);
  }
  const bin = root + INSTALLED.retrieveBin;
  Deno.mkdirSync(bin.slice(0, bin.lastIndexOf("/")), { recursive: true });
  Deno.writeTextFileSync(bin, "#!/bin/false\n");
  Deno.chmodSync(bin, 0o755);
  const units = renderUnits(
    productionAddressesFrom({ network: p.network, llm: p.llm }),
    unitHousehold(p.recipients),
  );
  // the code validate guards: its own and retrieve's entry modules, root-owned
  for (const entry of ["scripts/validate.ts", "scripts/retrieve.ts"]) {
    const at = `${root}${INSTALLED.codeDir}/${entry}`;
    Deno.mkdirSync(at.slice(0, at.lastIndexOf("/")), { recursive: true, mode: 0o755 });
    Deno.copyFileSync(entry, at);
    Deno.chmodSync(at, 0o644);
  }
  Deno.mkdirSync(root + INSTALLED.unitsDir, { recursive: true });
  for (const u of units) Deno.writeTextFileSync(`${root}${INSTALLED.unitsDir}/${u.name}`, u.text);
  Deno.mkdirSync(root + INSTALLED.secretsDir, { mode: 0o700 });
  Deno.chmodSync(root + INSTALLED.secretsDir, 0o700);
  for (const path of credentialsOf(units.find((u) => u.name === "joi.service")!.text).values()) {
    Deno.writeTextFileSync(root + path, "k".repeat(64), { mode: 0o600 });
    Deno.chownSync(root + path, users.get(p.recipients.service_user)!.uid, null);
  }
}

function time(n: number, fn: () => void): number {
  fn(); // warm up
  const t0 = performance.now();
  for (let i = 0; i < n; i++) fn();
  return (performance.now() - t0) / n;
}

/** Prints the figures. */
export function bench(): Promise<void> {
  let root: string;
  try {
    root = stage();
  } catch (e) {
    if (e instanceof Deno.errors.PermissionDenied || e instanceof Deno.errors.NotCapable) {
      console.log(`validate: skipped (staging the household needs root: ${(e as Error).message})`);
      return Promise.resolve();
    }
    throw e;
  }
  try {
    const config = root + INSTALLED.configDir;
    const run = () => {
      const r = validate({ root, lsattrBin: "" });
      if (!r.summary.ok) throw new Error(`bench household invalid: ${JSON.stringify(r.findings)}`);
    };
    const baseline = time(20, () => loadPolicies(config));
    const full = time(20, run);
    console.log(`validate: loading the 9 policy files (baseline): ${baseline.toFixed(1)} ms`);
    console.log(
      `validate: full validation (policies, accounts, tree + 200 documents, sudoers, units, ` +
        `secrets): ${full.toFixed(1)} ms = ${(full / baseline).toFixed(1)}x the baseline`,
    );
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
  return Promise.resolve();
}
