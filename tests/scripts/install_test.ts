/**
 * install from a role's bundle, staged under ./var/stage with its real
 * manifest flags: code, node_modules with its links, cache, configuration,
 * the VM's own keys and Nebula files, the commands and the household-
 * independent units; the bundle check; and, as a plan, owners and modes that
 * let each service read what it must. (The real install on a booted Debian,
 * with users and owners, is the booted end-to-end test.)
 */
import assert from "node:assert/strict";
import {
  denoRunArgs,
  productionLayout,
  programSpec,
} from "../../services/common/permissions/mod.ts";
import { loadPolicyFile } from "../../services/common/policy/mod.ts";
import {
  productionAddressesFrom,
  renderUnits,
  unitHousehold,
} from "../../services/common/units/mod.ts";
import { type Action, planInstall, ROLES } from "../../scripts/install/plan.ts";
import { hasExecutable, ignoreUnless } from "../_helpers/requires.ts";
import { makeBundle } from "../_helpers/bundle.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const dec = new TextDecoder();
const addresses = () =>
  productionAddressesFrom(
    loadPolicyFile("network", `${ROOT}policies/network.yaml`),
    loadPolicyFile("llm", `${ROOT}policies/llm.yaml`),
  );

async function install(args: string[]) {
  const spec = programSpec("install", productionLayout(addresses()));
  const [run, ...rest] = denoRunArgs(spec);
  const out = await new Deno.Command("deno", {
    args: [run, "--frozen", ...rest, ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

const mode = async (p: string) => (await Deno.lstat(p)).mode! & 0o7777;

for (const role of ["joi", "mesh", "openhab"] as const) {
  Deno.test({
    name:
      `install --role ${role} from its bundle: code, links, cache, config, its keys and Nebula, units`,
    ignore: ignoreUnless([hasExecutable("/usr/bin/nebula-cert"), "nebula-cert"]),
    async fn() {
      const stage = `var/stage/t-${role}-${crypto.randomUUID().slice(0, 8)}`;
      const abs = `${ROOT}${stage}`;
      await Deno.mkdir(`${abs}/root`, { recursive: true });
      try {
        const bundleDir = await makeBundle(abs, role);
        const rel = bundleDir.slice(ROOT.length);
        const args = [
          `--role=${role}`,
          `--root=${stage}/root`,
          `--repo=${rel}`,
          `--deno-bin=${rel}/var/deno/node_modules/deno/deno`,
        ];
        // the bundle holds this node's key and keys only, and never the CA key
        const r = ROLES[role];
        assert.deepEqual(
          [...Deno.readDirSync(`${bundleDir}/var/keys`)].map((e) => e.name).sort(),
          [...r.bundledKeys].sort(),
        );
        const nebulaNames = [...Deno.readDirSync(`${bundleDir}/var/nebula`)].map((e) => e.name);
        assert.ok(!nebulaNames.includes("ca.key"));
        assert.deepEqual(nebulaNames.filter((n) => n.endsWith(".key")), [`${role}.key`]);

        const dry = await install([...args, "--dry-run"]);
        assert.equal(dry.code, 0, dry.stderr);
        assert.match(dry.stdout, /nothing is changed/);
        assert.deepEqual([...Deno.readDirSync(`${abs}/root`)], [], "dry run wrote nothing");

        const first = await install(args);
        assert.equal(first.code, 0, first.stderr + first.stdout);
        const at = (p: string) => `${abs}/root${p}`;
        // code and npm packages (links kept: linkify-it finds its sibling uc.micro)
        assert.ok((await Deno.stat(at("/opt/joi/services/common/permissions/mod.ts"))).isFile);
        assert.ok((await Deno.stat(at("/opt/joi/node_modules/hono/package.json"))).isFile);
        assert.ok((await Deno.lstat(at("/opt/joi/node_modules/linkify-it"))).isSymlink);
        const linkify = await Deno.realPath(at("/opt/joi/node_modules/linkify-it"));
        assert.ok(linkify.startsWith(at("/opt/joi/node_modules/.deno/")), linkify);
        assert.ok((await Deno.stat(`${linkify}/../uc.micro/package.json`)).isFile);
        await assert.rejects(Deno.stat(at("/opt/joi/tests")));
        assert.ok((await Deno.stat(at("/opt/joi/.deno"))).isDirectory, "pre-filled Deno cache");
        // configuration: example policies 0640, secrets dir 0700, keys 0600
        for (const f of r.policyFiles) {
          assert.equal(await mode(at(`${r.configDir}/${f}`)), 0o640, f);
        }
        assert.equal(await mode(at(`${r.configDir}/secrets`)), 0o700);
        for (const k of [...r.bundledKeys, ...r.generatedKeys]) {
          assert.equal(await mode(at(`${r.configDir}/secrets/${k}`)), 0o600, k);
        }
        for (const k of r.bundledKeys) {
          assert.equal(
            await Deno.readTextFile(at(`${r.configDir}/secrets/${k}`)),
            await Deno.readTextFile(`${abs}/keys/${k}`),
            `${k} comes from the build host`,
          );
        }
        // Nebula: this node's files only, the key 0600
        assert.equal(await mode(at(`/etc/nebula/${role}.key`)), 0o600);
        assert.equal(
          await Deno.readTextFile(at("/etc/nebula/config.yml")),
          await Deno.readTextFile(`${abs}/nebula/${role}.yml`),
        );
        const etcNebula = [...Deno.readDirSync(at("/etc/nebula"))].map((e) => e.name).sort();
        assert.deepEqual(etcNebula, [
          "ca.crt",
          "config.yml",
          "guard.nft",
          `${role}.crt`,
          `${role}.key`,
        ]);
        assert.equal(await mode(at("/usr/local/bin/nebula")), 0o755);
        // units exactly as the manifest renders them; joi.service is provision's
        const units = renderUnits(
          addresses(),
          unitHousehold(loadPolicyFile("recipients", `${ROOT}policies/recipients.yaml`)),
        );
        const installed = [...Deno.readDirSync(at("/etc/systemd/system"))].map((e) => e.name);
        assert.deepEqual(installed.sort(), [...r.units].sort());
        for (const name of r.units) {
          const want = units.find((u) => u.name === name)!.text;
          assert.equal(await Deno.readTextFile(at(`/etc/systemd/system/${name}`)), want, name);
        }
        if (role === "joi") {
          assert.equal(await mode(at("/usr/local/bin/joi-retrieve")), 0o755);
          for (
            const [cmd, entry] of [
              ["joi-validate-config", "scripts/validate.ts"],
              ["joi-revoke-recipient", "scripts/revoke.ts"],
            ]
          ) {
            const text = await Deno.readTextFile(at(`/usr/local/bin/${cmd}`));
            assert.equal(await mode(at(`/usr/local/bin/${cmd}`)), 0o755);
            // the manifest's arguments (validate also names its drift report), then the caller's
            assert.match(
              text,
              new RegExp(`/opt/joi/${entry} --config-dir=/etc/joi(?: --[a-z-]+=\\S+)* "\\$@"`),
            );
            assert.match(text, /--cached-only/);
            assert.doesNotMatch(text, /--allow-all|\s-A\s/);
          }
        }

        // A second run keeps the household's configuration and the generated keys.
        await Deno.writeTextFile(at(`${r.configDir}/policy.yaml`), "# edited by the household\n");
        const keys = await Promise.all(
          r.generatedKeys.map((k) => Deno.readTextFile(at(`${r.configDir}/secrets/${k}`))),
        );
        const second = await install(args);
        assert.equal(second.code, 0, second.stderr);
        assert.equal(
          await Deno.readTextFile(at(`${r.configDir}/policy.yaml`)),
          "# edited by the household\n",
        );
        const again = await Promise.all(
          r.generatedKeys.map((k) => Deno.readTextFile(at(`${r.configDir}/secrets/${k}`))),
        );
        assert.deepEqual(again, keys);

        // a bundle that holds the CA key or another node's key is refused, naming them
        const other = role === "joi" ? "mesh" : "joi";
        await Deno.writeTextFile(`${bundleDir}/var/nebula/ca.key`, "x");
        await Deno.writeTextFile(`${bundleDir}/var/nebula/${other}.key`, "x");
        const refused = await install(args);
        assert.equal(refused.code, 1);
        assert.match(refused.stderr, /refusing a bundle that holds .*var\/nebula\/ca\.key/);
        assert.match(refused.stderr, new RegExp(`var/nebula/${other}\\.key`));
        assert.match(refused.stderr, /deno task bundle --role/);
      } finally {
        await Deno.remove(abs, { recursive: true });
      }
    },
  });
}

Deno.test("install refuses an unknown role and a staging root outside ./var/stage", async () => {
  const bad = await install(["--role=fridge"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--role must be one of joi, mesh, openhab/);
  const out = await install(["--role=joi", "--root=/tmp/elsewhere"]);
  assert.equal(out.code, 2);
  assert.match(out.stderr, /--root must be \/ or a directory under \.\/var\/stage\//);
});

/** Every path an action writes (without a staging root). */
function written(a: Action): string[] {
  switch (a.kind) {
    case "dir":
      return [a.path];
    case "copy":
      return [a.to, `${a.to}.tmp`];
    case "file":
      return [a.path, `${a.path}.tmp`];
    case "key":
      return [a.path];
    case "tree":
      return [a.to];
    case "cache":
      return [a.dir];
    default:
      return [];
  }
}

const covered = (list: string[], path: string) =>
  list.some((e) => e.startsWith("/") && (path === e || path.startsWith(`${e}/`)));

Deno.test("install's sandbox reads and writes every path a real install touches (no 'Requires read access')", () => {
  const spec = programSpec("install", productionLayout(addresses()));
  for (const role of ["joi", "mesh", "openhab", "anklume"] as const) {
    const plan = planInstall({
      role,
      repo: ".",
      denoBinary: "/usr/local/bin/deno",
      units: renderUnits(
        addresses(),
        unitHousehold(loadPolicyFile("recipients", `${ROOT}policies/recipients.yaml`)),
      ),
      denoJson: "{}",
      wrappers: role === "joi" ? { "joi-validate-config": "", "joi-revoke-recipient": "" } : {},
    });
    for (const path of plan.flatMap(written)) {
      assert.ok(covered(spec.permissions.write, path), `${role}: may not write ${path}`);
      assert.ok(covered(spec.permissions.read, path), `${role}: may not read ${path}`);
    }
  }
});

Deno.test("install's plan: each service can read its policies (root:<its group> 0640), Nebula its files", () => {
  const units = renderUnits(
    addresses(),
    unitHousehold(loadPolicyFile("recipients", `${ROOT}policies/recipients.yaml`)),
  );
  for (const role of ["joi", "mesh", "openhab"] as const) {
    const plan = planInstall({
      role,
      repo: ".",
      denoBinary: "/usr/local/bin/deno",
      units,
      denoJson: "{}",
      wrappers: {},
    });
    const r = ROLES[role];
    const user = r.user;
    const users = plan.filter((a) => a.kind === "user").map((a) => a.kind === "user" ? a.name : "");
    assert.ok(users.includes(user) && users.includes("nebula"), users.join(","));
    if (role === "mesh") {
      assert.ok(users.indexOf("signal-cli") < users.indexOf(user), "signal-cli's group first");
      // the account data stays signal-cli's; the mesh passes through to attachments/
      const dir = (p: string) => {
        const d = plan.find((a) => a.kind === "dir" && a.path === p);
        return d && d.kind === "dir" ? [d.owner, d.group, d.mode] : [];
      };
      assert.deepEqual(dir("/var/lib/signal-cli"), ["signal-cli", "signal-cli", 0o710]);
      assert.deepEqual(dir("/var/lib/signal-cli/attachments"), [
        "signal-cli",
        "signal-cli",
        0o2770,
      ]);
    }
    const dir = plan.find((a) => a.kind === "dir" && a.path === r.configDir);
    assert.deepEqual(dir?.kind === "dir" ? [dir.owner, dir.group, dir.mode] : [], [
      "root",
      user,
      0o750,
    ]);
    for (const f of r.policyFiles) {
      const c = plan.find((a) => a.kind === "copy" && a.to === `${r.configDir}/${f}`);
      assert.deepEqual(
        c?.kind === "copy" ? [c.owner, c.group, c.mode] : [],
        ["root", user, 0o640],
        `${role} ${f}`,
      );
    }
    const key = plan.find((a) => a.kind === "copy" && a.to === `/etc/nebula/${role}.key`);
    assert.deepEqual(
      key?.kind === "copy" ? [key.owner, key.mode] : [],
      ["nebula", 0o600],
    );
    // the service reads its own public certificate (expiry watch): the folder is
    // searchable and the certificates world-readable; the key stays nebula's
    const etc = plan.find((a) => a.kind === "dir" && a.path === "/etc/nebula");
    assert.equal(etc?.kind === "dir" ? etc.mode & 0o005 : 0, 0o005, `${role} /etc/nebula`);
    for (const crt of ["ca.crt", `${role}.crt`]) {
      const c = plan.find((a) => a.kind === "copy" && a.to === `/etc/nebula/${crt}`);
      assert.equal(c?.kind === "copy" ? c.mode : 0, 0o644, `${role} ${crt}`);
    }
  }
});
