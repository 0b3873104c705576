import assert from "node:assert/strict";
import fc from "fast-check";
import {
  canonicalJson,
  identitiesHash,
  IdentitiesSchema,
  loadPolicyFile,
  parsePolicyText,
} from "../../../../services/common/policy/mod.ts";
import { SHIPPED } from "./helpers.ts";

async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

const SHIPPED_CANONICAL = '{"groups":{' +
  '"Y3JpdGljYWwtZ3JvdXAtaWQtMDAwMDAwMDAwMDAwMDA=":{"channel":"critical_group","expected_members":["owner"]},' +
  '"ZmFtaWx5LWdyb3VwLWlkLTAwMDAwMDAwMDAwMDAwMDA=":{"channel":"family_group","expected_members":["owner","partner"]},' +
  '"b3duZXItcHVibGljLWdyb3VwLWlkLTAwMDAwMDAwMDA=":{"channel":"owner_regular_dm","expected_members":["owner"]}},' +
  '"identities":{' +
  '"+15550000001":{"name":"Owner","recipient_id":"owner","uuid":"3b0b5f4e-8d6c-4a55-9d6e-1f2a3b4c5d01"},' +
  '"+15550000002":{"name":"Partner","recipient_id":"partner","uuid":"3b0b5f4e-8d6c-4a55-9d6e-1f2a3b4c5d02"}}}';

Deno.test("identitiesHash is sha256 hex of the canonical JSON (known answer on the shipped file)", async () => {
  const config = loadPolicyFile("identities", `${SHIPPED}/identities.yaml`);
  assert.equal(canonicalJson(config), SHIPPED_CANONICAL);
  const hash = identitiesHash(config);
  assert.match(hash, /^[0-9a-f]{64}$/);
  assert.equal(hash, await sha256Hex(SHIPPED_CANONICAL));
});

Deno.test("identitiesHash ignores YAML formatting: order, comments, quoting, flow style", () => {
  const shipped = loadPolicyFile("identities", `${SHIPPED}/identities.yaml`);
  const rewritten = `# reordered and restyled
groups:
  Y3JpdGljYWwtZ3JvdXAtaWQtMDAwMDAwMDAwMDAwMDA=: {expected_members: [owner], channel: critical_group}
  'b3duZXItcHVibGljLWdyb3VwLWlkLTAwMDAwMDAwMDA=': {channel: owner_regular_dm, expected_members: ["owner"]}
  "ZmFtaWx5LWdyb3VwLWlkLTAwMDAwMDAwMDAwMDAwMDA=":
    expected_members:
      - owner
      - partner
    channel: "family_group"
identities:
  "+15550000002": {uuid: 3b0b5f4e-8d6c-4a55-9d6e-1f2a3b4c5d02, name: "Partner", recipient_id: partner}
  "+15550000001": {name: Owner, recipient_id: owner, uuid: "3b0b5f4e-8d6c-4a55-9d6e-1f2a3b4c5d01"}
`;
  const again = parsePolicyText("identities", rewritten, "rewritten.yaml");
  assert.equal(identitiesHash(again), identitiesHash(shipped));
});

Deno.test("the mesh's path (JSON over the wire, then the schema) gives the same hash", () => {
  const shipped = loadPolicyFile("identities", `${SHIPPED}/identities.yaml`);
  const wire = JSON.parse(JSON.stringify({ hash: identitiesHash(shipped), config: shipped }));
  const onMesh = IdentitiesSchema.parse(wire.config);
  assert.equal(identitiesHash(onMesh), wire.hash);
});

Deno.test("any change of an identity changes the hash", () => {
  const text = Deno.readTextFileSync(`${SHIPPED}/identities.yaml`);
  const base = identitiesHash(parsePolicyText("identities", text, "a.yaml"));
  const variants = [
    text.replace('"+15550000002":', '"+15550000003":'),
    text.replace("recipient_id: partner", "recipient_id: partner2"),
    text.replace("name: Partner", "name: Partner B"),
    text.replace("expected_members: [owner, partner]", "expected_members: [partner, owner]"),
  ];
  for (const v of variants) {
    assert.notEqual(v, text);
    assert.notEqual(identitiesHash(parsePolicyText("identities", v, "b.yaml")), base);
  }
});

function shuffleKeys(value: unknown, seed: number): unknown {
  if (Array.isArray(value)) return value.map((v, i) => shuffleKeys(v, seed + i));
  if (value === null || typeof value !== "object") return value;
  const entries = Object.entries(value as Record<string, unknown>);
  entries.sort((a, b) =>
    ((a[0].length * 31 + seed) % 7) - ((b[0].length * 31 + seed) % 7) || (b[0] < a[0] ? -1 : 1)
  );
  return Object.fromEntries(entries.map(([k, v]) => [k, shuffleKeys(v, seed + 1)]));
}

Deno.test("canonicalJson: key order never matters and the output is the same JSON value", () => {
  fc.assert(
    fc.property(fc.jsonValue(), fc.nat(1000), (value, seed) => {
      const canon = canonicalJson(value);
      assert.equal(canonicalJson(shuffleKeys(value, seed)), canon);
      assert.deepEqual(JSON.parse(canon), JSON.parse(JSON.stringify(value)));
    }),
    { numRuns: 300 },
  );
});

Deno.test("canonicalJson refuses values without a JSON form", () => {
  assert.throws(() => canonicalJson({ a: Number.NaN }), /NaN has no JSON form/);
  assert.throws(() => canonicalJson(() => 1), /function has no JSON form/);
});
