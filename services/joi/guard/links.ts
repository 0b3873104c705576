/**
 * Link detection for the content rules: `linkify-it` (markdown-it's link
 * recogniser) finds links with a scheme (`https://`, `ftp://`, `//host`,
 * `mailto:`, and the schemes added below), without one (`evil.example/x`,
 * against the full list of top-level domains from the `tlds` package plus the
 * reserved and private ones) and bare e-mail addresses and IPv4 hosts. Run it
 * on {@link normalizeForRules} text: zero-width characters and fullwidth
 * letters are gone there.
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
const MORE_SCHEMES = ["file:", "data:", "javascript:", "vbscript:", "sgnl:", "ws:", "wss:"];

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

/** Every link in `text` (already in the judged form), in order. */
export function findLinks(text: string): FoundLink[] {
  const matches = instance().match(text.replace(DOTS, "."));
  return (matches ?? []).map((m) => ({ index: m.index, raw: text.slice(m.index, m.lastIndex) }));
}
