/**
 * Link detection for the content rules: `linkify-it` (markdown-it's link
 * recogniser) finds links with a scheme (`https://`, `ftp://`, `//host`,
 * `mailto:`, and the schemes added below), without one (`evil.example/x`,
 * against the full list of top-level domains from the `tlds` package plus the
 * reserved and private ones) and bare e-mail addresses and IPv4 hosts. Run it
 * on {@link normalizeForRules} text: zero-width characters and fullwidth
 * letters are gone there.
 *
 * linkify-it leaves some forms alone on purpose that a client still opens or
 * a person still follows; those are found too, on variants of the text of the
 * same length or with an offset map, so every link keeps its place:
 *
 * - a host with a port and no scheme (`evil.example:8080/x`, `10.0.0.1:80`):
 *   linkify-it refuses a host followed by `:digit`; Android's link finder
 *   opens it;
 * - any `scheme://` (`irc://`, `intent://`, the defanged `hxxp://`) and the
 *   web schemes with odd or no slashes (`https:/\/x`, `https:evil.example`);
 * - defanged dots (`evil[.]com`, `evil(.)com`, `evil[dot]com`);
 * - a host followed by a slash look-alike (`evil.com∕x`, U+2215).
 *
 * `uc.micro` (linkify-it's one dependency) is also listed in deno.json: the
 * installed copy of `node_modules` has no symlinks (install materialises
 * them), so a package's own dependencies must sit at the top level for
 * Node-style resolution to find them there.
 *
 * @module
 */
import { LinkifyIt } from "linkify-it";
import tlds from "tlds" with { type: "json" };

/** Reserved and private-use names a real network may still resolve. */
const EXTRA_TLDS = [
  "example",
  "test",
  "invalid",
  "localhost",
  "local",
  "lan",
  "home",
  "internal",
  "intranet",
  "corp",
  "private",
  "onion",
  "i2p",
];

/** Schemes beyond linkify-it's own (http, https, ftp, mailto, `//`) that a client may open. */
const MORE_SCHEMES = [
  "file:",
  "data:",
  "javascript:",
  "vbscript:",
  "sgnl:",
  "ws:",
  "wss:",
  "magnet:",
];

const anyTail = {
  validate: (text: string, pos: number) => /^[^\s<>"]+/u.exec(text.slice(pos))?.[0].length ?? 0,
};

let linkify: LinkifyIt | undefined;

function instance(): LinkifyIt {
  if (linkify) return linkify;
  const l = new LinkifyIt({
    fuzzyLink: true,
    fuzzyEmail: true,
    fuzzyIP: true,
    tlds: [...tlds, ...EXTRA_TLDS],
  });
  for (const s of MORE_SCHEMES) l.add(s, anyTail);
  return linkify = l;
}

// label separators that IDNA (and so browsers) read as "."
const DOTS = /[\u3002\uFF0E\uFF61]/gu;

/** One link found in a text. */
export interface FoundLink {
  /** Offset in the text searched. */
  index: number;
  /** The link as written. */
  raw: string;
}

/** A span found in a variant of the text, as offsets into the text. */
type Span = [start: number, end: number];

function linkifySpans(text: string): Span[] {
  return (instance().match(text) ?? []).map((m) => [m.index, m.lastIndex]);
}

// `:` before a port (1-5 digits, then not a digit or letter) and slash look-alikes: both
// become `/` (same length), so linkify-it sees `host/8080/x` where it would refuse `host:8080/x`
const PORT_COLON = /(?<=[\p{L}\p{N}]):(?=\d{1,5}(?![\p{L}\p{N}]))/gu;
const SLASHES = /[\u2044\u2215\u29F8\u29F9\uFF0F]/gu;

// any `scheme://`, and web schemes (also defanged: hxxp) followed by slashes of any kind or none
const SCHEMED =
  /(?<![\p{L}\p{N}+.\-])(?:[a-z][a-z0-9+.\-]{0,31}:[\\/]{2,}|(?:h[tx]{2}ps?|ftp|wss?):[\\/]*(?=[\p{L}\p{N}]))[^\s<>"]*/giu;

function schemedSpans(text: string): Span[] {
  return [...text.matchAll(SCHEMED)].map((m) => [m.index, m.index + m[0].length]);
}

// dots written so that they do not link (`[.]`, `(.)`, `{.}`, `[dot]`, `(dot)`) between two
// label characters
const DEFANGED_DOT = /(?<=[\p{L}\p{N}])(?:\[\.\]|\(\.\)|\{\.\}|\[dot\]|\(dot\))(?=[\p{L}\p{N}])/giu;

/** Links in `text` with defanged dots read as dots, as offsets into `text`. */
function defangedSpans(text: string): Span[] {
  if (!DEFANGED_DOT.test(text)) return [];
  DEFANGED_DOT.lastIndex = 0;
  let out = "";
  const at: number[] = []; // offset in `out` -> offset in `text`
  let from = 0;
  for (const m of text.matchAll(DEFANGED_DOT)) {
    for (let i = from; i < m.index; i++) at.push(i);
    out += text.slice(from, m.index) + ".";
    at.push(m.index);
    from = m.index + m[0].length;
  }
  for (let i = from; i <= text.length; i++) at.push(i);
  out += text.slice(from);
  return linkifySpans(out).map(([s, e]) => [at[s]!, at[e]!]);
}

/** Every link in `text` (already in the judged form), in order. */
export function findLinks(text: string): FoundLink[] {
  // each replacement keeps the length: offsets in a variant are offsets in `text`
  const dotted = text.replace(DOTS, ".");
  const spans = [
    ...linkifySpans(dotted),
    ...linkifySpans(dotted.replace(PORT_COLON, "/").replace(SLASHES, "/")),
    ...schemedSpans(dotted),
    ...defangedSpans(dotted),
  ].sort((a, b) => a[0] - b[0] || b[1] - a[1]);
  const merged: Span[] = [];
  for (const [start, end] of spans) {
    const last = merged[merged.length - 1];
    if (last && start < last[1]) last[1] = Math.max(last[1], end);
    else merged.push([start, end]);
  }
  return merged.map(([start, end]) => ({ index: start, raw: text.slice(start, end) }));
}
