import assert from "node:assert/strict";
import {
  daysLeft,
  parseNebulaCert,
  readNebulaCert,
} from "../../../../services/common/watch/nebula_cert.ts";
import { hasExecutable, ignoreUnless } from "../../../_helpers/requires.ts";
import { makeCerts, NEBULA_CERT, nebulaCert } from "../../../_helpers/nebula_certs.ts";

Deno.test({
  name: "nebula cert: a certificate of the real nebula-cert reads as nebula-cert print says",
  ignore: ignoreUnless([hasExecutable(NEBULA_CERT), "nebula-cert (Debian package nebula)"]),
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "joi-cert-" });
    try {
      await makeCerts(dir, { node: "openhab", duration: "170h" });
      for (const [file, isCa] of [["ca.crt", true], ["openhab.crt", false]] as const) {
        const printed = JSON.parse(await nebulaCert(["print", "-json", "-path", `${dir}/${file}`]));
        const c = await readNebulaCert(`${dir}/${file}`);
        assert.equal(c.name, printed.details.name);
        assert.equal(c.isCa, isCa);
        assert.equal(c.notAfter, Date.parse(printed.details.notAfter));
        assert.equal(c.notBefore, Date.parse(printed.details.notBefore));
        assert.deepEqual(c.ips, printed.details.ips);
      }
      const node = await readNebulaCert(`${dir}/openhab.crt`);
      assert.equal(daysLeft(node, Date.now()), 7); // 170 h = 7 days and 2 h
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/** DER of one TLV. */
function tlv(tag: number, value: Uint8Array): Uint8Array {
  const len = value.length < 128 ? [value.length] : [0x81, value.length];
  return new Uint8Array([tag, ...len, ...value]);
}
const cat = (...parts: Uint8Array[]) => new Uint8Array(parts.flatMap((p) => [...p]));
const u = (n: number) => {
  const out: number[] = [];
  do {
    out.unshift(n % 256);
    n = Math.floor(n / 256);
  } while (n > 0);
  if (out[0]! & 0x80) out.unshift(0);
  return new Uint8Array(out);
};

Deno.test("nebula cert: version 2 (ASN.1 DER of cert_v2.asn1) reads its name and validity", () => {
  const notBefore = 1_767_225_600;
  const notAfter = 1_774_999_999;
  const details = cat(
    tlv(0x80, new TextEncoder().encode("mesh")),
    tlv(0xa1, tlv(0x04, new Uint8Array([10, 42, 0, 1, 24]))),
    tlv(0xa3, tlv(0x0c, new TextEncoder().encode("gateway"))),
    tlv(0x85, u(notBefore)),
    tlv(0x86, u(notAfter)),
    tlv(0x87, new Uint8Array(32)),
  );
  const cert = tlv(
    0x30,
    cat(tlv(0xa0, details), tlv(0x82, new Uint8Array(32)), tlv(0x83, new Uint8Array(64))),
  );
  const pem = `-----BEGIN NEBULA CERTIFICATE V2-----\n${
    btoa(String.fromCharCode(...cert))
  }\n-----END NEBULA CERTIFICATE V2-----\n`;
  const c = parseNebulaCert(pem);
  assert.deepEqual(c, {
    name: "mesh",
    notBefore: notBefore * 1000,
    notAfter: notAfter * 1000,
    isCa: false,
    ips: ["10.42.0.1/24"],
    version: 2,
  });
});

Deno.test("nebula cert: anything else is refused saying what it is not", () => {
  assert.throws(() => parseNebulaCert("hello"), /not a Nebula certificate/);
  assert.throws(
    () =>
      parseNebulaCert("-----BEGIN NEBULA CERTIFICATE-----\nCgQK\n-----END NEBULA CERTIFICATE-----"),
    /not a readable Nebula v1 certificate/,
  );
  assert.throws(
    () =>
      parseNebulaCert(
        "-----BEGIN NEBULA CERTIFICATE V2-----\nMAA=\n-----END NEBULA CERTIFICATE V2-----",
      ),
    /not a readable Nebula v2 certificate/,
  );
});
