/**
 * What `deno task language-check` last found, as joi reads it at start
 * (`<state-dir>/language_check.json`): with `household.language: sk` on a
 * model that has not passed the Slovak acceptance criteria, joi still
 * answers in Slovak (the household chose it) but says so loudly in its log
 * and on `/health`, the first place an operator looks.
 *
 * @module
 */

/** joi's view of the language setting, for `/health`. */
export interface LanguageStatus {
  /** `household.language`. */
  language: string;
  /** The model answering. */
  model: string;
  /** The last language-check of that model: pass, fail, unrated, or null (never run). */
  checked: "pass" | "fail" | "unrated" | null;
  /** When it ran. */
  checkedAt: string | null;
}

/** The file `deno task language-check` writes in joi's state folder. */
export const LANGUAGE_CHECK_FILE = "language_check.json";

/** Reads the record for `model` (null fields when it is missing, unreadable or for another model). */
export function languageStatus(stateDir: string, language: string, model: string): LanguageStatus {
  const none: LanguageStatus = { language, model, checked: null, checkedAt: null };
  if (language === "en") return none;
  try {
    const r = JSON.parse(Deno.readTextFileSync(`${stateDir}/${LANGUAGE_CHECK_FILE}`)) as {
      model?: unknown;
      result?: unknown;
      at?: unknown;
      language?: unknown;
    };
    if (r.model !== model || r.language !== language) return none;
    const checked = r.result === "pass" || r.result === "fail" || r.result === "unrated"
      ? r.result
      : null;
    return { language, model, checked, checkedAt: typeof r.at === "string" ? r.at : null };
  } catch {
    return none;
  }
}
