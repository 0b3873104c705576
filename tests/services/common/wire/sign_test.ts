/**
 * Known-answer vectors of joi-wire-v2 (the same as PROTOCOL.md's): the
 * canonical strings and MACs of a request and of its answer, and the HKDF
 * response keys, checked against independent computations (node:crypto's
 * createHmac and hkdfSync, WebCrypto) and against the literal values a third
 * party implements against.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createHash, createHmac, hkdfSync } from "node:crypto";
import {
  canonicalString,
  checkAnswer,
  hexToBytes,
  importWireKey,
  responseCanonicalString,
  sign,
  signedHeaders,
  signResponse,
  verify,
  verifyResponse,
} from "../../../../services/common/wire/mod.ts";
import { hmacHex, importHmacKey } from "../../../../services/common/wire/hmac.ts";

/** PROTOCOL.md, "Known-answer vectors". */
export const VECTOR = {
  keyHex: "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
  request: {
    direction: "mesh_to_joi" as const,
    method: "POST",
    path: "/api/v1/message/inbound",
    timestamp: 1_767_225_600_000,
    nonce: "7c9e6679-7425-40de-944b-e07fc1f90ae7",
    headers: {
      "Content-Type": "application/json",
      "X-Config-Hash": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
      "X-Request-ID": "3f2b8c1e-5d4a-4b6c-8e7f-1a2b3c4d5e6f",
      "X-Signal-Sender-Hash": "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
      "X-Validated-Channel": "family_group",
      "X-Validated-Sender": "partner",
    },
    body: '{"transport":"signal","message_id":"m-1"}',
    bodyHash: "add74bea3bbbdb5f766a5e5d4eeaabcb5c16673db932ef5c869399a7db726c37",
    signedHeaders:
      "content-type;x-config-hash;x-request-id;x-signal-sender-hash;x-validated-channel;x-validated-sender",
    mac: "ac44e8259477fac54f5f29e76e64116cd2eb1143ba4f2ec1f2644f6235e10a67",
  },
  response: {
    key: "b03ea167850f138a5000a8d57288081d90c012b0b25dea0f4df46d1e6a1afd71",
    status: 200,
    timestamp: 1_767_225_600_120,
    headers: [
      ["content-type", "application/json"],
      ["x-request-id", "3f2b8c1e-5d4a-4b6c-8e7f-1a2b3c4d5e6f"],
    ] as [string, string][],
    body:
      '{"status":"ok","request_id":"3f2b8c1e-5d4a-4b6c-8e7f-1a2b3c4d5e6f","timestamp":"2026-01-01T00:00:00.120Z","data":{"received":true,"will_respond":true}}',
    bodyHash: "35079aa450bed5beea5880fb737da9d82b71c8bdc1dd10ad2f583207c23d6901",
    mac: "43c2ffbdf82bf7e3617c9a2950e1211b30ec2d773d46fb90d6eb8d77055c7e84",
  },
};

const enc = new TextEncoder();
const R = VECTOR.request;
const A = VECTOR.response;
const EXPECTED_REQUEST = [
  "joi-wire-v2",
  "mesh_to_joi",
  "POST",
  "/api/v1/message/inbound",
  "1767225600000",
  "7c9e6679-7425-40de-944b-e07fc1f90ae7",
  "content-type:application/json",
  `x-config-hash:${R.headers["X-Config-Hash"]}`,
  `x-request-id:${R.headers["X-Request-ID"]}`,
  `x-signal-sender-hash:${R.headers["X-Signal-Sender-Hash"]}`,
  "x-validated-channel:family_group",
  "x-validated-sender:partner",
  R.bodyHash,
].join("\n");
const EXPECTED_RESPONSE = [
  "joi-wire-v2-response",
  "mesh_to_joi",
  R.nonce,
  "200",
  "1767225600120",
  "content-type:application/json",
  `x-request-id:${R.headers["X-Request-ID"]}`,
  A.bodyHash,
].join("\n");

const requestFields = () => ({
  direction: R.direction,
  method: R.method,
  path: R.path,
  timestamp: R.timestamp,
  nonce: R.nonce,
  headers: Object.entries(R.headers).map(([k, v]) => [k.toLowerCase(), v] as const),
  body: enc.encode(R.body),
});
const responseFields = () => ({
  direction: R.direction,
  requestNonce: R.nonce,
  status: A.status,
  timestamp: A.timestamp,
  headers: A.headers,
  body: enc.encode(A.body),
});

Deno.test("known answer: the request's canonical string and MAC, as documented and as computed independently", async () => {
  const raw = hexToBytes(VECTOR.keyHex);
  assert.equal(createHash("sha256").update(R.body).digest("hex"), R.bodyHash);
  assert.equal(canonicalString(requestFields()), EXPECTED_REQUEST);
  assert.equal(createHmac("sha256", raw).update(EXPECTED_REQUEST).digest("hex"), R.mac);
  const key = await importWireKey(raw, "mesh_to_joi");
  assert.equal(sign(key.request, requestFields()), R.mac);
  assert.equal(verify([key.request], requestFields(), R.mac), 0);
  // what a client sends: the helper produces the same list and MAC
  const sent = signedHeaders({
    key: key.request,
    direction: R.direction,
    method: R.method,
    path: R.path,
    body: enc.encode(R.body),
    headers: R.headers,
    timestamp: R.timestamp,
    nonce: R.nonce,
  });
  assert.equal(sent.signature, R.mac);
  assert.equal(sent.headers["x-signed-headers"], R.signedHeaders);
  assert.equal(sent.headers["x-hmac-sha256"], R.mac);
  assert.equal(sent.headers["x-timestamp"], "1767225600000");
  assert.equal(sent.headers["x-nonce"], R.nonce);
});

Deno.test("known answer: the response key is HKDF-SHA256 of the direction key, never the key itself", async () => {
  const raw = hexToBytes(VECTOR.keyHex);
  const independent = Buffer.from(
    hkdfSync("sha256", raw, "joi-wire-v2", "joi-wire-v2 response key", 32),
  ).toString("hex");
  assert.equal(independent, A.key);
  assert.notEqual(A.key, VECTOR.keyHex);
  // ours signs exactly like the documented response key
  const key = await importWireKey(raw, "mesh_to_joi");
  const documented = await importHmacKey(hexToBytes(A.key));
  assert.equal(hmacHex(key.response, "x"), hmacHex(documented, "x"));
  assert.notEqual(hmacHex(key.response, "x"), hmacHex(key.request, "x"));
});

Deno.test("known answer: the answer's canonical string and MAC, bound to the request's nonce", async () => {
  const raw = hexToBytes(VECTOR.keyHex);
  assert.equal(createHash("sha256").update(A.body).digest("hex"), A.bodyHash);
  assert.equal(responseCanonicalString(responseFields()), EXPECTED_RESPONSE);
  assert.equal(
    createHmac("sha256", hexToBytes(A.key)).update(EXPECTED_RESPONSE).digest("hex"),
    A.mac,
  );
  const key = await importWireKey(raw, "mesh_to_joi");
  assert.equal(signResponse(key.response, responseFields()), A.mac);
  assert.ok(verifyResponse(key.response, responseFields(), A.mac));
  // the same answer as received over HTTP
  const headers = new Headers([
    ...A.headers,
    ["x-timestamp", String(A.timestamp)],
    ["x-signed-headers", "content-type;x-request-id"],
    ["x-hmac-sha256", A.mac],
    ["content-length", String(A.body.length)],
    ["date", "Thu, 01 Jan 2026 00:00:00 GMT"],
  ]);
  const verdict = checkAnswer(
    key.response,
    { direction: "mesh_to_joi", nonce: R.nonce },
    { status: 200, headers, body: enc.encode(A.body) },
  );
  assert.deepEqual(verdict, { ok: true, serverTime: A.timestamp });
  // the request key, or another request's nonce, does not verify it
  assert.ok(!verifyResponse(key.request, responseFields(), A.mac));
  assert.ok(
    !verifyResponse(
      key.response,
      { ...responseFields(), requestNonce: crypto.randomUUID() },
      A.mac,
    ),
  );
});

Deno.test("our HMAC-SHA256 equals node:crypto's and WebCrypto's for keys of every length", async () => {
  for (const length of [32, 33, 63, 64, 65, 100, 200]) {
    const raw = crypto.getRandomValues(new Uint8Array(length));
    const key = await importHmacKey(raw);
    for (const data of ["", "a", "joi-wire-v2\n".repeat(40), "é✓"]) {
      const expected = createHmac("sha256", raw).update(data).digest("hex");
      assert.equal(hmacHex(key, data), expected, `${length} bytes`);
      const web = new Uint8Array(await crypto.subtle.sign("HMAC", key, enc.encode(data)));
      assert.equal(Buffer.from(web).toString("hex"), expected);
    }
  }
});

Deno.test("fields that could make a string ambiguous are refused when signing, unverifiable when verifying", async () => {
  const key = await importWireKey(hexToBytes(VECTOR.keyHex), "mesh_to_joi");
  const bad = [
    { ...requestFields(), path: "/a\nPOST" },
    { ...requestFields(), path: "relative" },
    { ...requestFields(), nonce: R.nonce.toUpperCase() },
    { ...requestFields(), timestamp: 1.5 },
    { ...requestFields(), method: "PO ST" },
    { ...requestFields(), headers: [] },
  ];
  for (const f of bad) {
    assert.throws(() => sign(key.request, f), /cannot sign/);
    assert.equal(verify([key.request], f, R.mac), -1);
  }
  const sign1 = (headers: Record<string, string>) =>
    signedHeaders({
      key: key.request,
      direction: "mesh_to_joi",
      method: "POST",
      path: "/x",
      body: enc.encode("{}"),
      headers: {
        "X-Request-ID": R.headers["X-Request-ID"],
        "Content-Type": "application/json",
        ...headers,
      },
    });
  assert.throws(() => sign1({ "X-List": "a, b" }), /printable ASCII without a comma/);
  assert.throws(() => sign1({ "X-Text": "né" }), /printable ASCII/);
  assert.throws(() => sign1({ "X-Padded": " a" }), /edge spaces/);
  assert.throws(() => sign1({ "x-request-ID": "again" }), /given twice/);
  assert.throws(() => sign1({ "X-Nonce": R.nonce }), /protocol or transport header/);
  assert.throws(() => sign1({ "Host": "x" }), /protocol or transport header/);
  assert.throws(
    () =>
      signedHeaders({
        key: key.request,
        direction: "mesh_to_joi",
        method: "POST",
        path: "/x",
        body: enc.encode("{}"),
        headers: { "X-Request-ID": "1" },
      }),
    /a request with a body needs Content-Type/,
  );
  await assert.rejects(() => importHmacKey(new Uint8Array(31)), /at least 32/);
});
