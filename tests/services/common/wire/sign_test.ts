import assert from "node:assert/strict";
import { createHash, createHmac } from "node:crypto";
import {
  canonicalString,
  importHmacKey,
  sign,
  verify,
} from "../../../../services/common/wire/mod.ts";
import { hexToBytes } from "../../../../services/common/wire/sign.ts";

const KEY_HEX = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const FIELDS = {
  direction: "mesh_to_joi" as const,
  method: "post",
  path: "/api/v1/message/inbound?x=1",
  timestamp: 1_767_225_600_000,
  nonce: "7c9e6679-7425-40de-944b-e07fc1f90ae7",
  body: new TextEncoder().encode('{"a":1}'),
};

Deno.test("the canonical string is the documented one and the HMAC matches an independent computation", async () => {
  const bodyHash = createHash("sha256").update('{"a":1}').digest("hex");
  const expected = [
    "joi-wire-v1",
    "mesh_to_joi",
    "POST",
    "/api/v1/message/inbound?x=1",
    "1767225600000",
    "7c9e6679-7425-40de-944b-e07fc1f90ae7",
    bodyHash,
  ].join("\n");
  assert.equal(await canonicalString(FIELDS), expected);
  const independent = createHmac("sha256", Buffer.from(KEY_HEX, "hex")).update(expected).digest(
    "hex",
  );
  const key = await importHmacKey(hexToBytes(KEY_HEX));
  assert.equal(await sign(key, FIELDS), independent);
  assert.ok(await verify(key, FIELDS, hexToBytes(independent)));
  assert.ok(!(await verify(key, { ...FIELDS, direction: "joi_to_mesh" }, hexToBytes(independent))));
});

Deno.test("fields that could make the string ambiguous are refused when signing, false when verifying", async () => {
  const key = await importHmacKey(hexToBytes(KEY_HEX));
  const bad = [
    { ...FIELDS, path: "/a\nPOST" },
    { ...FIELDS, path: "relative" },
    { ...FIELDS, nonce: "7C9E6679-7425-40DE-944B-E07FC1F90AE7" },
    { ...FIELDS, timestamp: 1.5 },
    { ...FIELDS, method: "PO ST" },
  ];
  for (const f of bad) {
    await assert.rejects(() => sign(key, f), /cannot sign/);
    assert.equal(await verify(key, f, new Uint8Array(32)), false);
  }
  await assert.rejects(() => importHmacKey(new Uint8Array(31)), /at least 32/);
});
