/**
 * The words of a message worth searching the knowledge for.
 *
 * joi-retrieve ranks documents by how many of the given words they hold and
 * how rare those words are (SQLite FTS5, bm25), so a question such as "joi,
 * where is the spare key?" must reach it as `spare key`, not as six words of
 * which "where" and "is" match everything and "joi" nothing. This module drops
 * the function words of the household's languages (English and Slovak),
 * repeats and numbers-only noise, and bounds what is sent.
 *
 * @module
 */

/** At most this many words go to joi-retrieve (its own cap is 32). */
export const MAX_SEARCH_TERMS = 12;

/** Function words of English and Slovak: they say nothing about a document. */
const STOP_WORDS: ReadonlySet<string> = new Set([
  // English
  ..."a about above after again all am an and any are as at be been before being below between both but by can could did do does doing down during each few for from further had has have having he her here hers him his how i if in into is it its just me more most my no nor not now of off on once only or other our ours out over own same she should so some such than that the their theirs them then there these they this those through to too under until up very was we were what when where which while who whom why will with would you your yours please tell know remember hey hi hello ok okay thanks thank"
    .split(" "),
  // Slovak
  ..."a aj ako ale alebo ani by bol bola bolo boli do ho i ich ja je jej jeho ju k ked keď kde kedy kto ku ma mi mne na nad nas nás nie o od on ona ono oni po pod pre pri prosim prosím s sa si so som sme ste su sú ta tá tak tam te to tu ty v vo z za ze že čo či"
    .split(" "),
]);

/**
 * The search words of `text`: lowercased letters and digits, function words and
 * repeats dropped, at most {@link MAX_SEARCH_TERMS}, joined by spaces. Empty
 * when nothing is worth searching for (then joi does not ask at all).
 */
export function searchTerms(text: string): string {
  const seen = new Set<string>();
  for (const word of text.toLowerCase().normalize("NFKC").match(/[\p{L}\p{N}\p{M}]+/gu) ?? []) {
    if (word.length < 2 || STOP_WORDS.has(word) || /^\p{N}{1,2}$/u.test(word)) continue;
    seen.add(word);
    if (seen.size === MAX_SEARCH_TERMS) break;
  }
  return [...seen].join(" ");
}
