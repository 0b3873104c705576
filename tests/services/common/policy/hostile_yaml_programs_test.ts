/**
 * Hostile YAML reaches every program that loads a policy file, started as
 * the manifest starts it (its exact flags): each refuses with
 * `file:line:col` and the reason, exits non-zero, promptly, and never dies on
 * an uncaught exception (a self-referencing alias used to be a stack
 * overflow in validate, revoke, provision, joi and the mesh alike). The
 * loader's own cases are in hostile_yaml_test.ts; this is the wiring.
 */
import assert from "node:assert/strict";
import {
  localLayout,
  type ProgramName,
  programSpec,
} from "../../../../services/common/permissions/mod.ts";
import { spawnAsStarted } from "../../../_helpers/program.ts";
import { freeBasePort } from "../../../_helpers/local_stack.ts";

const enc = new TextEncoder();

/** One attack per program (all are refused by the same loader): file, bytes, where and why. */
const CASES: {
  program: ProgramName;
  extra: string[];
  file: string;
  bytes: (original: string) => Uint8Array;
  expect: RegExp;
}[] = [
  {
    program: "joi",
    extra: [],
    file: "policy.yaml",
    bytes: (t) => enc.encode(t.replace(/^content:/m, "content: &c {x: *c}\nold_content:")),
    expect: /policy\.yaml:\d+:\d+: content\.x: YAML: alias \*c refers to a node that contains it/,
  },
  {
    program: "mesh",
    extra: [],
    file: "mesh.yaml",
    bytes: () => {
      const lines = ["l0: &l0 [a, a, a, a, a, a, a, a, a, a]"];
      for (let i = 1; i < 9; i++) {
        lines.push(`l${i}: &l${i} [${Array(10).fill(`*l${i - 1}`).join(", ")}]`);
      }
      return enc.encode(lines.join("\n") + "\n");
    },
    expect: /mesh\.yaml:5:10: l4\[0\]: YAML: alias \*l3 expands the document beyond/,
  },
  {
    program: "openhab_relay",
    extra: [],
    file: "policy.yaml",
    bytes: (t) => new Uint8Array([...enc.encode(t.slice(0, 20)), 0xc3, 0x28, ...enc.encode("\n")]),
    expect: /policy\.yaml:\d+:\d+: \(root\): YAML: invalid UTF-8 \(byte 0xc3/,
  },
  {
    program: "validate",
    extra: [],
    file: "recipients.yaml",
    bytes: (t) => enc.encode(`deep: ${"[".repeat(5000)}\n${t}`),
    // validate's report names the position after the reason
    expect: /YAML: nested more than 32 levels deep: .*\[\S*recipients\.yaml:1:39\]/,
  },
  {
    program: "revoke",
    extra: ["--dry-run", "owner"],
    file: "identities.yaml",
    bytes: (t) => enc.encode(`${t}\nidentities: {}\n`),
    expect: /identities\.yaml:\d+:1: identities: duplicate key "identities"/,
  },
  {
    program: "provision",
    extra: ["--dry-run"],
    file: "recipients.yaml",
    bytes: (t) => enc.encode(`base: &b {x: 1}\n<<: *b\n${t}`),
    expect: /recipients\.yaml:2:1: \["<<"\]: YAML: merge keys \(<<\) are not supported/,
  },
];

for (const c of CASES) {
  Deno.test(`hostile ${c.file} is refused by ${c.program}, positioned, without a crash`, async () => {
    await Deno.mkdir("./var", { recursive: true });
    const dir = await Deno.makeTempDir({ dir: "./var", prefix: "hostile-yaml-" });
    try {
      const config = `${dir}/policies`;
      await Deno.mkdir(config);
      for await (const e of Deno.readDir("./policies")) {
        if (e.isFile) await Deno.copyFile(`./policies/${e.name}`, `${config}/${e.name}`);
      }
      const original = await Deno.readTextFile(`${config}/${c.file}`).catch(() => "");
      await Deno.writeFile(`${config}/${c.file}`, c.bytes(original));
      const layout = {
        ...localLayout({ varDir: dir, basePort: freeBasePort() }),
        joiConfigDir: config,
        meshConfigDir: config,
        relayConfigDir: config,
      };
      const spec = programSpec(c.program, layout);
      const child = spawnAsStarted(spec, c.extra);
      const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
      const out = await child.output();
      clearTimeout(timer);
      const text = new TextDecoder().decode(out.stderr) + new TextDecoder().decode(out.stdout);
      const shown = `${c.program} -> exit ${out.code} ${out.signal ?? ""}:\n${text}`;
      assert.notEqual(out.signal, "SIGKILL", `hang: ${shown}`);
      assert.notEqual(out.code, 0, `accepted: ${shown}`);
      assert.ok(
        !/Uncaught|RangeError|Maximum call stack|^\s+at .+:\d+:\d+\)?$/m.test(text),
        `crashed: ${shown}`,
      );
      assert.match(text, c.expect, shown);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}
