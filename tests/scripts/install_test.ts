import assert from "node:assert/strict";
import {
  denoRunArgs,
  productionLayout,
  programSpec,
} from "../../services/common/permissions/mod.ts";
import { loadPolicyFile } from "../../services/common/policy/mod.ts";
import { productionAddressesFrom, renderUnits } from "../../services/common/units.ts";
import { ROLES } from "../../scripts/install/plan.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const dec = new TextDecoder();

async function install(args: string[]) {
  const addresses = productionAddressesFrom(
    loadPolicyFile("network", `${ROOT}policies/network.yaml`),
    loadPolicyFile("llm", `${ROOT}policies/llm.yaml`),
  );
  const spec = programSpec("install", productionLayout(addresses));
  const [run, ...rest] = denoRunArgs(spec);
  const out = await new Deno.Command("deno", {
    args: [run, "--frozen", ...rest, ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

const mode = async (p: string) => (await Deno.stat(p)).mode! & 0o7777;

for (const role of ["joi", "mesh", "openhab"] as const) {
  Deno.test(`install --role ${role} stages code, cache, config, keys and the manifest's units`, async () => {
    const stage = `var/stage/t-${role}-${crypto.randomUUID().slice(0, 8)}`;
    const abs = `${ROOT}${stage}`;
    await Deno.mkdir(abs, { recursive: true });
    try {
      await Deno.writeTextFile(`${abs}/fake-deno`, "#!/bin/false\n", { mode: 0o755 });
      const args = [`--role=${role}`, `--root=${stage}`, `--deno-bin=${stage}/fake-deno`];

      const dry = await install([...args, "--dry-run"]);
      assert.equal(dry.code, 0, dry.stderr);
      assert.match(dry.stdout, /nothing is changed/);
      assert.deepEqual(
        [...Deno.readDirSync(abs)].map((e) => e.name),
        ["fake-deno"],
        "dry run wrote nothing",
      );

      const first = await install(args);
      assert.equal(first.code, 0, first.stderr + first.stdout);
      const r = ROLES[role];
      // code and npm packages, no tests and no local state
      assert.ok((await Deno.stat(`${abs}/opt/joi/services/common/permissions/mod.ts`)).isFile);
      assert.ok((await Deno.stat(`${abs}/opt/joi/node_modules/hono/package.json`)).isFile);
      await assert.rejects(Deno.stat(`${abs}/opt/joi/tests`));
      assert.ok((await Deno.stat(`${abs}/opt/joi/.deno`)).isDirectory, "pre-filled Deno cache");
      // configuration: example policies 0640, secrets dir 0700, keys 0600
      for (const f of r.policyFiles) {
        assert.equal(await mode(`${abs}${r.configDir}/${f}`), 0o640, f);
      }
      assert.equal(await mode(`${abs}${r.configDir}/secrets`), 0o700);
      for (const k of r.generatedKeys) {
        assert.equal(await mode(`${abs}${r.configDir}/secrets/${k}`), 0o600, k);
      }
      // units exactly as the manifest renders them
      const units = renderUnits(productionAddressesFrom(
        loadPolicyFile("network", `${ROOT}policies/network.yaml`),
        loadPolicyFile("llm", `${ROOT}policies/llm.yaml`),
      ));
      for (const name of ["nebula.service", ...r.units]) {
        const want = units.find((u) => u.name === name)!.text;
        assert.equal(await Deno.readTextFile(`${abs}/etc/systemd/system/${name}`), want, name);
      }
      if (role === "joi") assert.equal(await mode(`${abs}/usr/local/bin/joi-retrieve`), 0o755);

      // A second run keeps the household's configuration and keys.
      await Deno.writeTextFile(`${abs}${r.configDir}/policy.yaml`, "# edited by the household\n");
      const keys = await Promise.all(
        r.generatedKeys.map((k) => Deno.readTextFile(`${abs}${r.configDir}/secrets/${k}`)),
      );
      const second = await install(args);
      assert.equal(second.code, 0, second.stderr);
      assert.equal(
        await Deno.readTextFile(`${abs}${r.configDir}/policy.yaml`),
        "# edited by the household\n",
      );
      const again = await Promise.all(
        r.generatedKeys.map((k) => Deno.readTextFile(`${abs}${r.configDir}/secrets/${k}`)),
      );
      assert.deepEqual(again, keys);
    } finally {
      await Deno.remove(abs, { recursive: true });
    }
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
