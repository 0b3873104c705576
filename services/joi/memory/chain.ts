/**
 * The hash chain over memory records.
 *
 * Each record's hash is `HMAC-SHA256(chainKey, prev_hash || canonical(record))`,
 * where the canonical form is the JSON of every stored column but the hash
 * itself, keys sorted, and includes the ciphertext: editing, reordering or
 * deleting a row outside the program breaks the chain at that row. The MAC is
 * keyed (a key derived from memory.key), so whoever can write the database but
 * does not hold the key cannot rebuild a consistent chain after a deletion.
 *
 * @module
 */
import { createHmac } from "node:crypto";
import { canonicalJson } from "../../common/policy/identities_hash.ts";

/** The `prev_hash` of the very first record of a store. */
export const GENESIS_HASH = "0".repeat(64);

/** The kinds of memory records. */
export type RecordKind = "turn" | "summary" | "fact" | "prune";

/** One stored record, exactly as its columns hold it. */
export interface ChainRecord {
  /** Position in the chain (1, 2, ...). */
  id: number;
  /** What the record is. */
  kind: RecordKind;
  /** The conversation inside the channel. */
  conversation_id: string;
  /** `user`, `assistant` or `` (summaries, facts, prune records). */
  role: string;
  /** Canonical sender id, or `joi`. */
  sender: string;
  /** Creation time, Unix ms. */
  created_at: number;
  /** AES-GCM nonce, base64 (empty for records without text). */
  nonce: string;
  /** Ciphertext, base64 (empty for records without text). */
  ciphertext: string;
  /** Non-secret metadata as canonical JSON. */
  meta: string;
  /** Hash of the previous record (or {@link GENESIS_HASH}). */
  prev_hash: string;
  /** This record's hash. */
  hash: string;
}

/** The hash a record must carry given its content, predecessor and the chain key. */
export function recordHash(record: Omit<ChainRecord, "hash">, chainKey: Uint8Array): string {
  const { prev_hash, ...rest } = record;
  return createHmac("sha256", chainKey).update(prev_hash).update(canonicalJson(rest)).digest("hex");
}
