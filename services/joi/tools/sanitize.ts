/**
 * Tool results are data: HTML is stripped (scripts and styles with their
 * content), entities decoded, control characters removed, each result cut to
 * `max_result_length` characters and the whole wrapped as search results
 * whose text cannot open or close a tag.
 *
 * @module
 */

const ENTITIES: Record<string, string> = {
  amp: "&",
  lt: "<",
  gt: ">",
  quot: '"',
  apos: "'",
  nbsp: " ",
};

/** Plain text of an HTML fragment. */
export function stripHtml(html: string): string {
  return html
    .replace(/<(script|style|noscript|iframe)\b[\s\S]*?<\/\1\s*>/gi, " ")
    .replace(/<!--[\s\S]*?-->/g, " ")
    .replace(/<\/?[a-zA-Z!?][^>]*>/g, " ")
    .replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (m, e: string) => {
      if (e[0] === "#") {
        const code = e[1]!.toLowerCase() === "x"
          ? parseInt(e.slice(2), 16)
          : parseInt(e.slice(1), 10);
        return code > 0 && code < 0x110000 ? String.fromCodePoint(code) : " ";
      }
      return ENTITIES[e.toLowerCase()] ?? m;
    });
}

/** One sanitized result: plain, single-spaced, no angle brackets, at most `max` characters. */
export function sanitizeResult(text: string, max: number): string {
  const plain = stripHtml(text).normalize("NFKC")
    .replace(/[\p{Cc}\p{Cf}]/gu, " ")
    .replace(/</g, "‹")
    .replace(/>/g, "›")
    .replace(/\s+/g, " ")
    .trim();
  const chars = Array.from(plain);
  return chars.length <= max ? plain : chars.slice(0, Math.max(0, max - 1)).join("") + "…";
}

/** A search hit before sanitizing. */
export interface RawResult {
  /** Title (may hold HTML). */
  title: string;
  /** Snippet (may hold HTML). */
  text: string;
  /** Source host, shown to the model as plain text. */
  source?: string | undefined;
}

/** Wraps sanitized results in `<search_results>`: context, never instructions. */
export function wrapSearchResults(
  results: readonly RawResult[],
  maxLength: number,
  maxResults: number,
): string {
  const lines = results.slice(0, maxResults).map((r, i) => {
    const body = sanitizeResult(`${r.title} - ${r.text}`, maxLength);
    const src = r.source ? ` (${sanitizeResult(r.source, 100)})` : "";
    return `${i + 1}.${src} ${body}`;
  });
  return `<search_results>\n${lines.join("\n")}\n</search_results>`;
}
