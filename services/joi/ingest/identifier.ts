/**
 * Identifiers from events (item names, sensor ids, alert types) made safe to
 * log, store and show: kept as they are when they are plain, otherwise every
 * other character replaced. Apart from `untrusted.ts` (free text), so that
 * the relay can name items without loading joi's link finder.
 *
 * @module
 */

const SAFE_ID = /^[A-Za-z0-9_\-.:@]+$/;

/** A safe identifier (item names, sensor ids): letters, digits, `_-.:@`; at most `max` chars. */
export function cleanIdentifier(input: string, max = 120): string {
  if (input.length <= max && SAFE_ID.test(input)) return input;
  return input.normalize("NFKC").replace(/[^\p{L}\p{N}_\-.:@]/gu, "_").slice(0, max);
}
