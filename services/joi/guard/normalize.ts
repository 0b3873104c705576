/**
 * The one normal form every content rule judges, inbound and outbound.
 *
 * A rule that reads raw text is bypassed by text that looks the same to a
 * person but not to a regular expression: `https\u200b://`, `<\u200b|system|>`,
 * fullwidth `ｈｔｔｐｓ`, a soft hyphen or a run of odd spaces. So every rule
 * (the outbound content rules, link detection, untrusted event strings, the
 * web search query, acknowledgement words) runs on {@link normalizeForRules}:
 *
 * 1. format characters removed (Unicode `Cf`: zero-width space and joiner,
 *    soft hyphen, bidi controls, tag characters) and every other default-
 *    ignorable code point (variation selectors, Hangul fillers, the combining
 *    grapheme joiner);
 * 2. NFKC (compatibility forms folded: fullwidth, ligatures, superscripts);
 * 3. runs of whitespace folded to one space, or to one newline when the run
 *    holds a line break (so `^` in a multi-line rule still means a line start).
 *
 * What is sent or stored is not the judged form but {@link stripFormat} of
 * the original: the same text without format characters (an emoji's zero-
 * width joiner between two pictographs is kept, so 👩‍👧 stays one glyph).
 *
 * @module
 */

// Cf plus the rest of Default_Ignorable_Code_Point (variation selectors, fillers)
const IGNORABLE = /[\p{Cf}\p{Default_Ignorable_Code_Point}]/gu;
// Cf only: what a sent text loses
const FORMAT = /\p{Cf}/gu;
const PICTOGRAPH = /[\p{Extended_Pictographic}\p{Emoji_Modifier}\uFE0F]/u;
const ZWJ = "\u200d";

/**
 * The judged form of `text`: ignorable code points removed, NFKC, whitespace
 * runs folded (a run with a line break becomes one `\n`, any other one space).
 */
export function normalizeForRules(text: string): string {
  return text.replace(IGNORABLE, "")
    .normalize("NFKC")
    .replace(IGNORABLE, "") // NFKC can produce none today; cheap insurance
    .replace(/\s+/gu, (run) => /[\n\r\u2028\u2029\u0085\v\f]/u.test(run) ? "\n" : " ");
}

/**
 * `text` without Unicode format characters (`Cf`), except a zero-width joiner
 * between two pictographs (an emoji sequence). This is what leaves joi.
 */
export function stripFormat(text: string): string {
  if (!FORMAT.test(text)) return text;
  FORMAT.lastIndex = 0;
  const chars = [...text];
  let out = "";
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i]!;
    if (!/\p{Cf}/u.test(ch)) {
      out += ch;
      continue;
    }
    const before = chars[i - 1];
    const after = chars[i + 1];
    if (
      ch === ZWJ && before !== undefined && after !== undefined &&
      PICTOGRAPH.test(before) && PICTOGRAPH.test(after)
    ) out += ch;
  }
  return out;
}
