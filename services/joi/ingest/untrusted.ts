/**
 * Untrusted strings from events (item labels, alert titles, String items) are
 * never placed in a prompt or a message verbatim. {@link cleanUntrusted}
 * takes the normal form every content rule judges (`guard/normalize.ts`:
 * format characters such as zero-width and bidi controls removed, NFKC,
 * whitespace folded), strips controls, neutralises prompt markers and links
 * (with or without a scheme, found by `guard/links.ts`) and cuts to a
 * maximum; {@link quoteUntrusted} additionally wraps the result in
 * typographic quotes so a template always shows where foreign text begins and
 * ends.
 *
 * @module
 */

import { findLinks } from "../guard/links.ts";
import { normalizeForRules } from "../guard/normalize.ts";

// C0/C1 controls, private use, lone surrogates, line separators (format characters
// are already gone in the normal form)
const STRIP = /[\p{Cc}\p{Co}\p{Cs}\u2028\u2029]/gu;
const MARKERS = /<\|?[a-z_]*\|?>|\[\/?INST\]|<<\/?SYS>>|```/gi;
const QUOTES = /["“”«»]/g;

/** Replaces every link in `text` with `[link removed]`. */
function withoutLinks(text: string): string {
  let out = "";
  let at = 0;
  for (const link of findLinks(text)) {
    out += text.slice(at, link.index) + "[link removed]";
    at = link.index + link.raw.length;
  }
  return out + text.slice(at);
}

/** Cleans an untrusted string: NFKC, no controls, no markers or URLs, at most `max` chars. */
export function cleanUntrusted(input: unknown, max: number): string {
  if (typeof input !== "string") return "";
  let s = withoutLinks(
    normalizeForRules(input)
      .replace(STRIP, " ")
      .replace(MARKERS, " "),
  )
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
