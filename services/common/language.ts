/**
 * Which of joi's languages a text is in, and graders of the Slovak acceptance
 * criteria (does a reply answer a question, which diacritics does it get
 * wrong). The mesh uses the detector to speak a reply with a voice of its
 * language; `deno task language-check` uses all of it.
 *
 * Language identification is a small, explainable heuristic rather than a
 * model: Slovak and English function words, plus words carrying Slovak
 * letters (ľ, ô, ä, č, ...). A text counts as Slovak when its Slovak evidence
 * is at least 2 and more than twice its English evidence (and the other way
 * round for English).
 *
 * @module
 */

/** Letters the diacritics row scores (joi-architecture-v2.md). */
export const SLOVAK_LETTERS = "ľšťčžýáíéôäúňď";

const SK_WORDS = new Set(
  (
    "aj ale alebo ako je sú som si sme ste nie áno na vo do zo so ku po pre pri za že sa tak " +
    "ten tá tie čo kde kedy ktorý ktorá ktoré môžem môžeš mám máš má bude budem teraz dnes " +
    "zajtra ešte už len iba veľmi prosím ďakujem ahoj dobrý dobré mi ti ho jej ich vám nám " +
    "tvoj môj všetko nič niečo keď lebo preto ešte potom tu tam je v z k"
  ).split(" "),
);
const EN_WORDS = new Set(
  (
    "the an is are was were be been i you he she it we they of in on at for with and or but " +
    "not yes this that there here what where when how can will would your my have has do does " +
    "please thanks thank hello hi right now today tomorrow if so just about from"
  ).split(" "),
);
// "a", "to", "no", "i" are words of both languages: neither side counts them
for (const w of ["a", "to", "no", "i"]) {
  SK_WORDS.delete(w);
  EN_WORDS.delete(w);
}
const SK_LETTER = /[ľĺŕôäčďňšťžýáíéú]/;

/** Lower-cased words of `text` (NFC, letters only). */
export function words(text: string): string[] {
  return text.normalize("NFC").toLowerCase().match(/\p{L}+/gu) ?? [];
}

/** Evidence for each language in `text`. */
export function languageEvidence(text: string): { sk: number; en: number } {
  let sk = 0;
  let en = 0;
  for (const w of words(text)) {
    if (SK_WORDS.has(w) || SK_LETTER.test(w)) sk++;
    else if (EN_WORDS.has(w)) en++;
  }
  return { sk, en };
}

/** `sk`, `en` or `unknown`. */
export function detectLanguage(text: string): "sk" | "en" | "unknown" {
  const e = languageEvidence(text);
  if (e.sk >= 2 && e.sk > 2 * e.en) return "sk";
  if (e.en >= 2 && e.en > 2 * e.sk) return "en";
  return "unknown";
}

/** Whether `reply` matches the item's expected-answer pattern (case-insensitive). */
export function answers(reply: string, expect: string): boolean {
  return new RegExp(expect, "iu").test(reply.normalize("NFC"));
}

/** Per-letter tally of the diacritics row. */
export interface LetterTally {
  /** Words that need the letter. */
  needed: number;
  /** Of those, words the reply wrote exactly right. */
  right: number;
}

/**
 * Scores one corrected sentence: every expected word holding a scored letter
 * counts for each such letter, right when the reply contains that exact word.
 */
export function tallyDiacritics(
  reply: string,
  expected: string,
  into: Map<string, LetterTally> = new Map(),
): Map<string, LetterTally> {
  const got = new Set(words(reply));
  for (const w of words(expected)) {
    const letters = new Set([...w].filter((c) => SLOVAK_LETTERS.includes(c)));
    for (const l of letters) {
      const t = into.get(l) ?? { needed: 0, right: 0 };
      t.needed++;
      if (got.has(w)) t.right++;
      into.set(l, t);
    }
  }
  return into;
}

/** Letters wrong in more than half of the words that need them: systematic errors. */
export function systematicErrors(tally: Map<string, LetterTally>): string[] {
  return [...SLOVAK_LETTERS].filter((l) => {
    const t = tally.get(l);
    return t !== undefined && t.needed - t.right > t.needed / 2;
  });
}
