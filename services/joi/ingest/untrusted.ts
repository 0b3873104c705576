/**
 * Untrusted strings from events (item labels, alert titles, String items) are
 * never placed in a prompt or a message verbatim. {@link cleanUntrusted}
 * NFKC-normalizes, strips control and format characters (bidi overrides,
 * zero-width), neutralises prompt markers and URLs, collapses whitespace and
 * cuts to a maximum; {@link quoteUntrusted} additionally wraps the result in
 * typographic quotes so a template always shows where foreign text begins and
 * ends.
 *
 * @module
 */

// C0/C1 controls, bidi overrides and isolates, zero-width and other format characters
const STRIP = /[\p{Cc}\p{Cf}\p{Co}\p{Cs}\u2028\u2029]/gu;
const MARKERS = /<\|?[a-z_]*\|?>|\[\/?INST\]|<<\/?SYS>>|```/gi;
const URLS = /\b(?:https?|ftp|file|data):\/*[^\s"]*/gi;
const QUOTES = /["“”«»]/g;

/** Cleans an untrusted string: NFKC, no controls, no markers or URLs, at most `max` chars. */
export function cleanUntrusted(input: unknown, max: number): string {
  if (typeof input !== "string") return "";
  let s = input.normalize("NFKC")
    .replace(STRIP, " ")
    .replace(MARKERS, " ")
    .replace(URLS, "[link removed]")
    .replace(QUOTES, "'")
    .replace(/\s+/g, " ")
    .trim();
  if (max > 0 && [...s].length > max) {
    s = [...s].slice(0, Math.max(1, max - 1)).join("").trimEnd() + "…";
  }
  return s;
}

/** {@link cleanUntrusted}, then wrapped in “quotes”: the form templates use. */
export function quoteUntrusted(input: unknown, max: number): string {
  return `“${cleanUntrusted(input, max)}”`;
}

const SAFE_ID = /^[A-Za-z0-9_\-.:@]+$/;

/** A safe identifier (item names, sensor ids): letters, digits, `_-.:@`; at most `max` chars. */
export function cleanIdentifier(input: string, max = 120): string {
  if (input.length <= max && SAFE_ID.test(input)) return input;
  return input.normalize("NFKC").replace(/[^\p{L}\p{N}_\-.:@]/gu, "_").slice(0, max);
}
