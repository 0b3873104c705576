/**
 * The identity configuration hash (`X-Config-Hash`): joi sends it with every
 * request, the mesh compares it with the hash of its copy and fetches
 * `GET /config/identities` on a mismatch.
 *
 * The hash is computed on canonical JSON (keys sorted at every level, no
 * whitespace), so it depends on the configuration only: not on YAML comments,
 * key order or quoting, and it is the same whether computed from the YAML on
 * joi or from the JSON the mesh fetched.
 *
 * @module
 */
import { createHash } from "node:crypto";
import type { Identities } from "./identities.ts";

/** Serialises plain JSON data with object keys sorted at every level. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object") {
    if (typeof value === "number" && !Number.isFinite(value)) {
      throw new TypeError(`canonicalJson: ${value} has no JSON form`);
    }
    const s = JSON.stringify(value);
    if (s === undefined) throw new TypeError(`canonicalJson: a ${typeof value} has no JSON form`);
    return s;
  }
  if (Array.isArray(value)) {
    return `[${value.map((v) => (v === undefined ? "null" : canonicalJson(v))).join(",")}]`;
  }
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj).filter((k) => obj[k] !== undefined).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(",")}}`;
}

/** sha256 (lowercase hex) of the canonical JSON of a validated identities config. */
export function identitiesHash(config: Identities): string {
  return createHash("sha256").update(canonicalJson(config), "utf8").digest("hex");
}
