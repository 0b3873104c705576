/**
 * Reads a Nebula certificate's name and validity from its PEM file, without
 * `nebula-cert` (the services may run nothing): version 1 certificates
 * (`NEBULA CERTIFICATE`, protobuf; the Nebula of Debian 12 writes these) and
 * version 2 (`NEBULA CERTIFICATE V2`, ASN.1 DER, Nebula >= 1.10). The
 * signature is not checked: Nebula itself refuses a forged certificate; the
 * watch only wants to know when this one stops working.
 *
 * Field numbers from Nebula's `cert/cert_v1.proto` (Details = 1; Name = 1,
 * Ips = 2 (packed address/mask pairs), NotBefore = 5, NotAfter = 6, IsCA = 8)
 * and `cert/cert_v2.asn1` (details `[0]`; name `[0]`, networks `[1]` (octet
 * strings: address bytes + prefix length), isCA `[4]`, notBefore `[5]`,
 * notAfter `[6]`), times in seconds since the epoch.
 *
 * @module
 */

/** The certificates a VM may hold in `/etc/nebula` (never the keys beside them). */
export const NEBULA_CERTS = ["ca.crt", "joi.crt", "mesh.crt", "openhab.crt"] as const;

/** What the watches need of a certificate. */
export interface NebulaCert {
  /** The node name (`joi`, `mesh`, `openhab`). */
  name: string;
  /** Valid from, ms since the epoch. */
  notBefore: number;
  /** Valid until, ms since the epoch. */
  notAfter: number;
  /** A CA certificate. */
  isCa: boolean;
  /** The node's overlay addresses with prefix (`10.42.0.10/24`); none for a CA. */
  ips: string[];
  /** Format version. */
  version: 1 | 2;
}

const PEM = /-----BEGIN (NEBULA CERTIFICATE(?: V2)?)-----\s*([A-Za-z0-9+/=\s]+?)-----END \1-----/;

/** Parses the first certificate of a PEM text. Throws naming what is wrong. */
export function parseNebulaCert(pem: string): NebulaCert {
  const m = PEM.exec(pem);
  if (!m) {
    throw new Error(
      "no -----BEGIN NEBULA CERTIFICATE----- block: not a Nebula certificate (a .crt made by nebula-cert)",
    );
  }
  let der: Uint8Array;
  try {
    der = Uint8Array.from(atob(m[2]!.replace(/\s+/g, "")), (c) => c.charCodeAt(0));
  } catch {
    throw new Error("the certificate's base64 text is damaged");
  }
  return m[1] === "NEBULA CERTIFICATE V2" ? parseV2(der) : parseV1(der);
}

/** Reads and parses a certificate file. */
export async function readNebulaCert(path: string): Promise<NebulaCert> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new Error(`cannot read the Nebula certificate ${path}: ${(e as Error).message}`);
  }
  try {
    return parseNebulaCert(text);
  } catch (e) {
    throw new Error(`${path}: ${(e as Error).message}`);
  }
}

// ---- version 1: protobuf ----

class Reader {
  pos = 0;
  constructor(readonly b: Uint8Array) {}
  get done(): boolean {
    return this.pos >= this.b.length;
  }
  varint(): number {
    let result = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.b.length) throw new Error("truncated varint");
      const byte = this.b[this.pos++]!;
      result += (byte & 0x7f) * scale;
      if ((byte & 0x80) === 0) return result;
      scale *= 128;
    }
    throw new Error("varint too long");
  }
  bytes(): Uint8Array {
    const n = this.varint();
    if (this.pos + n > this.b.length) throw new Error("truncated field");
    const out = this.b.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 2) this.bytes();
    else if (wire === 1) this.pos += 8;
    else if (wire === 5) this.pos += 4;
    else throw new Error(`unknown protobuf wire type ${wire}`);
  }
}

function parseV1(der: Uint8Array): NebulaCert {
  try {
    const outer = new Reader(der);
    let details: Uint8Array | undefined;
    while (!outer.done) {
      const key = outer.varint();
      if (key >>> 3 === 1 && (key & 7) === 2) details = outer.bytes();
      else outer.skip(key & 7);
    }
    if (!details) throw new Error("no details");
    const r = new Reader(details);
    const cert = {
      name: "",
      notBefore: NaN,
      notAfter: NaN,
      isCa: false,
      ips: [] as string[],
      version: 1 as const,
    };
    const words: number[] = [];
    while (!r.done) {
      const key = r.varint();
      const field = key >>> 3;
      const wire = key & 7;
      if (field === 1 && wire === 2) cert.name = new TextDecoder().decode(r.bytes());
      else if (field === 2 && wire === 2) {
        const packed = new Reader(r.bytes());
        while (!packed.done) words.push(packed.varint());
      } else if (field === 2 && wire === 0) words.push(r.varint());
      else if (field === 5 && wire === 0) cert.notBefore = r.varint() * 1000;
      else if (field === 6 && wire === 0) cert.notAfter = r.varint() * 1000;
      else if (field === 8 && wire === 0) cert.isCa = r.varint() !== 0;
      else r.skip(wire);
    }
    for (let i = 0; i + 1 < words.length; i += 2) {
      cert.ips.push(`${ipv4(words[i]!)}/${prefixOf(words[i + 1]!)}`);
    }
    return checked(cert);
  } catch (e) {
    throw new Error(`not a readable Nebula v1 certificate (${(e as Error).message})`);
  }
}

const ipv4 = (n: number) => [24, 16, 8, 0].map((b) => Math.floor(n / 2 ** b) % 256).join(".");
const prefixOf = (mask: number) => mask.toString(2).replace(/0+$/, "").length;

// ---- version 2: ASN.1 DER ----

interface Tlv {
  tag: number;
  value: Uint8Array;
}

function* tlvs(b: Uint8Array): Generator<Tlv> {
  let pos = 0;
  while (pos < b.length) {
    const tag = b[pos++]!;
    if ((tag & 0x1f) === 0x1f) throw new Error("multi-byte tags are not used by Nebula");
    let len = b[pos++];
    if (len === undefined) throw new Error("truncated length");
    if (len & 0x80) {
      const n = len & 0x7f;
      if (n === 0 || n > 4) throw new Error("bad length");
      len = 0;
      for (let i = 0; i < n; i++) len = len * 256 + (b[pos++] ?? NaN);
      if (Number.isNaN(len)) throw new Error("truncated length");
    }
    if (pos + len > b.length) throw new Error("truncated value");
    yield { tag, value: b.subarray(pos, pos + len) };
    pos += len;
  }
}

function int(b: Uint8Array): number {
  let n = 0;
  for (const byte of b) n = n * 256 + byte;
  return n;
}

function parseV2(der: Uint8Array): NebulaCert {
  try {
    const [cert] = [...tlvs(der)];
    if (!cert || cert.tag !== 0x30) throw new Error("no certificate sequence");
    const details = [...tlvs(cert.value)].find((t) => t.tag === 0xa0);
    if (!details) throw new Error("no details");
    // the details' fields, whether or not wrapped in their own SEQUENCE
    let fields = [...tlvs(details.value)];
    if (fields.length === 1 && fields[0]!.tag === 0x30) fields = [...tlvs(fields[0]!.value)];
    const out = {
      name: "",
      notBefore: NaN,
      notAfter: NaN,
      isCa: false,
      ips: [] as string[],
      version: 2 as const,
    };
    for (const f of fields) {
      if (f.tag === 0x80) out.name = new TextDecoder().decode(f.value);
      else if (f.tag === 0xa1) {
        for (const n of tlvs(f.value)) {
          if (n.tag === 0x04 && n.value.length === 5) {
            out.ips.push(`${[...n.value.subarray(0, 4)].join(".")}/${n.value[4]}`);
          }
        }
      } else if (f.tag === 0x84) out.isCa = f.value[0] !== 0;
      else if (f.tag === 0x85) out.notBefore = int(f.value) * 1000;
      else if (f.tag === 0x86) out.notAfter = int(f.value) * 1000;
    }
    return checked(out);
  } catch (e) {
    throw new Error(`not a readable Nebula v2 certificate (${(e as Error).message})`);
  }
}

function checked(c: NebulaCert): NebulaCert {
  if (!Number.isFinite(c.notAfter) || !Number.isFinite(c.notBefore)) {
    throw new Error("no validity period");
  }
  return c;
}

/** Whole days from `now` until `notAfter` (negative once expired). */
export function daysLeft(cert: Pick<NebulaCert, "notAfter">, now: number): number {
  return Math.floor((cert.notAfter - now) / 86_400_000);
}
