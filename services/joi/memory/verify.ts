/**
 * Walks a channel's hash chain and reports the first broken link: a record
 * whose content no longer matches its hash, whose `prev_hash` does not match
 * its predecessor, a gap in the ids, a start not covered by a prune record, or
 * newest records missing compared with the head anchored in joi.db.
 *
 * Verification needs no key: hashes cover the ciphertext.
 *
 * @module
 */
import type { DatabaseSync } from "node:sqlite";
import { type ChainRecord, GENESIS_HASH, recordHash } from "./chain.ts";
import type { ChainHead } from "./heads.ts";

/** The first broken link found. */
export interface BrokenLink {
  /** The record at which the chain breaks. */
  id: number;
  /** What is wrong, in words. */
  reason: string;
  /** The value the chain requires. */
  expected: string;
  /** The value found. */
  found: string;
}

/** Result of {@link verifyChain}. */
export interface VerifyReport {
  /** True when the chain is intact. */
  ok: boolean;
  /** Records walked. */
  records: number;
  /** The newest record id (0 when empty). */
  lastId: number;
  /** The first broken link, when not ok. */
  broken?: BrokenLink;
}

/** Verifies the `memory_records` chain of an open channel database. */
export function verifyChain(
  db: DatabaseSync,
  chainKey: Uint8Array,
  head?: ChainHead,
): VerifyReport {
  let rows: ChainRecord[];
  try {
    rows = db.prepare(`SELECT * FROM memory_records ORDER BY id`).all() as unknown as ChainRecord[];
  } catch (e) {
    return {
      ok: false,
      records: 0,
      lastId: 0,
      broken: {
        id: 0,
        reason: `memory_records unreadable: ${(e as Error).message}`,
        expected: "table",
        found: "none",
      },
    };
  }
  const first = rows[0];
  const last = rows.at(-1);
  const report = (broken: BrokenLink, i: number): VerifyReport => ({
    ok: false,
    records: i,
    lastId: last ? Number(last.id) : 0,
    broken,
  });
  if (first === undefined || last === undefined) {
    if (head && head.lastId > 0) {
      return report({
        id: head.lastId,
        reason: "every record was deleted outside joi (joi.db records a newer head)",
        expected: head.lastHash,
        found: "no records",
      }, 0);
    }
    return { ok: true, records: 0, lastId: 0 };
  }
  const start = chainStart(first, rows);
  let prev: ChainRecord | undefined;
  for (const [i, row] of rows.entries()) {
    const r = { ...row, id: Number(row.id), created_at: Number(row.created_at) };
    if (prev && r.id !== Number(prev.id) + 1) {
      return report({
        id: r.id,
        reason: `record(s) #${Number(prev.id) + 1}..#${r.id - 1} were deleted`,
        expected: `#${Number(prev.id) + 1}`,
        found: `#${r.id}`,
      }, i);
    }
    const expectedPrev = prev ? prev.hash : start.prev;
    if (r.prev_hash !== expectedPrev) {
      return report({
        id: r.id,
        reason: prev ? `prev_hash does not match record #${prev.id}` : start.reason,
        expected: expectedPrev,
        found: r.prev_hash,
      }, i);
    }
    const { hash, ...rest } = r;
    const computed = recordHash(rest, chainKey);
    if (computed !== hash) {
      return report({
        id: r.id,
        reason: "record content was altered (hash mismatch)",
        expected: computed,
        found: hash,
      }, i);
    }
    prev = row;
  }
  if (head) {
    const lastId = Number(last.id);
    if (lastId < head.lastId) {
      return report({
        id: lastId + 1,
        reason: `newest record(s) #${
          lastId + 1
        }..#${head.lastId} were deleted (head anchored in joi.db)`,
        expected: head.lastHash,
        found: last.hash,
      }, rows.length);
    }
    const atHead = rows.find((r) => Number(r.id) === head.lastId);
    if (atHead && atHead.hash !== head.lastHash) {
      return report({
        id: head.lastId,
        reason: "chain rewritten: record hash differs from the head anchored in joi.db",
        expected: head.lastHash,
        found: atHead.hash,
      }, rows.length);
    }
  }
  return { ok: true, records: rows.length, lastId: Number(last.id) };
}

/** The prev_hash the first remaining record must carry. */
function chainStart(
  first: ChainRecord,
  rows: readonly ChainRecord[],
): { prev: string; reason: string } {
  if (Number(first.id) === 1) {
    return { prev: GENESIS_HASH, reason: "the first record does not start from the genesis hash" };
  }
  for (const row of rows.toReversed()) {
    if (row.kind !== "prune") continue;
    try {
      const meta = JSON.parse(row.meta) as {
        first_kept_id?: number;
        first_kept_prev_hash?: string;
      };
      if (
        Number(meta.first_kept_id) === Number(first.id) &&
        typeof meta.first_kept_prev_hash === "string"
      ) {
        return {
          prev: meta.first_kept_prev_hash,
          reason: "the chain start does not match the last prune record",
        };
      }
    } catch { /* an altered prune record fails its own hash check */ }
    break;
  }
  return {
    prev: "a prune record covering the start",
    reason: `records before #${first.id} were deleted outside joi (no prune record covers them)`,
  };
}
