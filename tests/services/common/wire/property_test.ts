/**
 * The properties of _property.ts on the real wire module, and the proof that
 * they would catch a weaker protocol: for each variable field of the two
 * canonical strings, a mutant of the wire module that leaves that one field
 * out (both when signing and when verifying, so honest traffic still
 * verifies) makes one of the properties fail.
 *
 * The constant version labels (`joi-wire-v2`, `joi-wire-v2-response`) are not
 * among the mutants: they keep future protocol versions apart, and leaving
 * one out changes no verdict between messages of this version (requests and
 * answers are signed under different keys), so no test can see it missing.
 */
import assert from "node:assert/strict";
import { answerProperty, requestProperty, type Wire } from "./_property.ts";
import * as wire from "../../../../services/common/wire/mod.ts";

Deno.test("property: exactly the exactly-signed, fresh, unseen requests from allowed sources pass", async () => {
  const tally = await requestProperty(wire, 300);
  console.log(`request property: outcomes ${JSON.stringify(tally)}`);
  const total = ["200", "401", "403", "409"].reduce((n, s) => n + (tally[s] ?? 0), 0);
  assert.ok(total >= 1500, `only ${total} requests generated`);
  for (const s of ["200", "401", "403", "409"]) {
    assert.ok(tally[s]! > 30, `too few ${s}: ${tally[s]}`);
  }
  for (const m of ["header_value_recased", "header_duplicated_recased", "header_name_recased"]) {
    assert.ok(tally[m]! > 10, `mutation ${m} too rare: ${tally[m]}`);
  }
});

Deno.test("property: a client accepts exactly the server's own unaltered answers to its request", async () => {
  const tally = await answerProperty(wire, 200);
  console.log(`answer property: outcomes ${JSON.stringify(tally)}`);
  assert.ok((tally["intact accepted"] ?? 0) > 100);
  for (const m of ["earlier_answer", "other_direction_shared_key", "header_value_recased"]) {
    assert.ok((tally[`${m} unverified`] ?? 0) > 10, `mutation ${m} too rare`);
  }
});

/** A field of a canonical string, and how to leave it out of the source. */
interface Drop {
  field: string;
  file: "sign.ts" | "response.ts";
  from: string;
  to: string;
  property: "request" | "answer";
}

const REQUEST_LINE =
  "let out = `${SIGNATURE_VERSION}\\n${direction}\\n${method}\\n${path}\\n${timestamp}\\n${nonce}`;";
const RESPONSE_LINE_1 =
  "return `${RESPONSE_VERSION}\\n${f.direction}\\n${f.requestNonce}\\n${f.status}\\n` +";
const RESPONSE_LINE_2 = "`${f.timestamp}\\n${headerLines(f.headers)}\\n${sha256Hex(f.body)}`;";

const DROPS: Drop[] = [
  ...["direction", "method", "path", "timestamp", "nonce"].map((f) => ({
    field: `request ${f}`,
    file: "sign.ts" as const,
    from: REQUEST_LINE,
    to: REQUEST_LINE.replace(`\\n\${${f}}`, ""),
    property: "request" as const,
  })),
  {
    field: "request signed headers",
    file: "sign.ts",
    from: "for (let i = 0; i < names.length; i++) out += `\\n${names[i]}:${values[i]}`;",
    to: "",
    property: "request",
  },
  {
    field: "request body hash",
    file: "sign.ts",
    from: "return `${out}\\n${sha256Hex(body)}`;",
    to: "return out;",
    property: "request",
  },
  ...["direction", "requestNonce", "status"].map((f) => ({
    field: `answer ${f}`,
    file: "response.ts" as const,
    from: RESPONSE_LINE_1,
    to: RESPONSE_LINE_1.replace(`\\n\${f.${f}}`, ""),
    property: "answer" as const,
  })),
  {
    field: "answer timestamp",
    file: "response.ts",
    from: RESPONSE_LINE_2,
    to: "`${headerLines(f.headers)}\\n${sha256Hex(f.body)}`;",
    property: "answer",
  },
  {
    field: "answer signed headers",
    file: "response.ts",
    from: RESPONSE_LINE_2,
    to: "`${f.timestamp}\\n${sha256Hex(f.body)}`;",
    property: "answer",
  },
  {
    field: "answer body hash",
    file: "response.ts",
    from: RESPONSE_LINE_2,
    to: "`${f.timestamp}\\n${headerLines(f.headers)}`;",
    property: "answer",
  },
];

const ROOT = new URL("../../../../", import.meta.url).pathname;

/** A copy of services/common with `drop` applied, importable as a wire module. */
async function mutant(dir: string, drop: Drop): Promise<Wire> {
  const copy = async (from: string, to: string) => {
    await Deno.mkdir(to, { recursive: true });
    for await (const e of Deno.readDir(from)) {
      if (e.isDirectory) await copy(`${from}/${e.name}`, `${to}/${e.name}`);
      else if (e.name.endsWith(".ts")) await Deno.copyFile(`${from}/${e.name}`, `${to}/${e.name}`);
    }
  };
  await copy(`${ROOT}services/common`, `${dir}/services/common`);
  const path = `${dir}/services/common/wire/${drop.file}`;
  const source = await Deno.readTextFile(path);
  assert.ok(
    source.includes(drop.from),
    `the ${drop.field} mutant no longer matches ${drop.file}: update DROPS to the new source`,
  );
  await Deno.writeTextFile(path, source.replace(drop.from, drop.to));
  return await import(`${dir}/services/common/wire/mod.ts`);
}

Deno.test("the properties fail when any one field is left out of a canonical string", async () => {
  const base = `${ROOT}var/wire-mutants-${crypto.randomUUID()}`;
  try {
    const survived: string[] = [];
    for (const [i, drop] of DROPS.entries()) {
      const weak = await mutant(`${base}/${i}`, drop);
      try {
        if (drop.property === "request") await requestProperty(weak, 300);
        else await answerProperty(weak, 300);
        survived.push(drop.field);
      } catch (e) {
        // fast-check reports the counterexample: the weaker protocol let a change through
        assert.match(String(e), /Property failed/, `${drop.field}: ${e}`);
      }
    }
    assert.deepEqual(survived, [], `no property noticed these fields missing: ${survived}`);
  } finally {
    await Deno.remove(base, { recursive: true }).catch(() => {});
  }
});
