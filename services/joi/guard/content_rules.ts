/**
 * Outbound content rules (contracts.md, "Outbound content rules"): at most
 * `max_outbound_chars`, printable text only, no link (with or without a
 * scheme, when `block_links` is on) and none of the blocked patterns of
 * policy.yaml. Links and patterns are judged on the normal form of
 * `normalize.ts` (format characters removed, NFKC, whitespace folded), so a
 * zero-width space or a fullwidth letter cannot slip a link or a prompt
 * marker past them; what is sent is the original text cleaned of format
 * characters. Fixed critical templates skip links and patterns (their
 * constant text is ours) but not length or printability. A refusal names the
 * rule; the caller logs it to the security log and never sends the message.
 *
 * @module
 */
import type { Policy } from "../../common/policy/policy.ts";
import { findLinks } from "./links.ts";
import { normalizeForRules, stripFormat } from "./normalize.ts";

/** policy.yaml `content`, as the outbound rules use it. */
export type ContentPolicy = Pick<
  Policy["content"],
  "max_outbound_chars" | "blocked_patterns" | "block_links"
>;

/** The rule name a refused link is reported under. */
export const LINK_RULE = "external_url";

/** How a message is checked. */
export interface CheckOptions {
  /** Proactive messages also get the `proactive_only` patterns. */
  proactive?: boolean;
  /** A fixed critical template: length and printability only. */
  template?: boolean;
}

/** Result of {@link ContentRules.check}. */
export type ContentVerdict =
  | { ok: true; text: string }
  | { ok: false; rule: string; message: string };

// controls except \t \n; bidi embeddings/overrides/isolates; unassigned, private use, surrogates
const hex4 = (n: number) => n.toString(16).padStart(4, "0");
const CONTROL_RANGES = ([[0x00, 0x08], [0x0b, 0x1f], [0x7f, 0x9f], [0x202a, 0x202e], [
  0x2066,
  0x2069,
]] as const).map(([a, b]) => `\\u${hex4(a)}-\\u${hex4(b)}`).join("");
const UNPRINTABLE = new RegExp(`[${CONTROL_RANGES}\\p{Cn}\\p{Co}\\p{Cs}]`, "u");

/** The outbound rules compiled from the policy. */
export class ContentRules {
  #max: number;
  #blockLinks: boolean;
  #patterns: { name: string; re: RegExp; proactiveOnly: boolean }[];

  /** Compiles the patterns; throws naming a pattern that is not a valid expression. */
  constructor(policy: ContentPolicy) {
    this.#max = policy.max_outbound_chars;
    this.#blockLinks = policy.block_links;
    this.#patterns = policy.blocked_patterns.map((p) => {
      try {
        return {
          name: p.name,
          re: new RegExp(p.pattern, "imu"),
          proactiveOnly: !!p.proactive_only,
        };
      } catch (e) {
        throw new SyntaxError(
          `content.blocked_patterns "${p.name}": invalid regular expression (${
            (e as Error).message
          }); fix it in policy.yaml`,
        );
      }
    });
  }

  /**
   * Checks one outbound text; on success `text` is what to send: the original
   * without format characters.
   */
  check(text: string, options: CheckOptions = {}): ContentVerdict {
    const sent = stripFormat(text);
    const judged = normalizeForRules(sent);
    if (judged.trim() === "") return { ok: false, rule: "empty", message: "message is empty" };
    const length = [...sent].length;
    if (length > this.#max) {
      return {
        ok: false,
        rule: "max_outbound_chars",
        message: `message has ${length} chars, more than max_outbound_chars ${this.#max}`,
      };
    }
    const bad = UNPRINTABLE.exec(sent);
    if (bad) {
      const cp = bad[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0");
      return {
        ok: false,
        rule: "printable",
        message: `message holds the unprintable character U+${cp} at index ${bad.index}`,
      };
    }
    if (!options.template) {
      if (this.#blockLinks) {
        const link = findLinks(judged)[0];
        if (link) {
          return {
            ok: false,
            rule: LINK_RULE,
            message: `message holds a link at index ${link.index} (block_links)`,
          };
        }
      }
      for (const p of this.#patterns) {
        if (p.proactiveOnly && !options.proactive) continue;
        if (p.re.test(judged)) {
          return { ok: false, rule: p.name, message: `message matches blocked pattern ${p.name}` };
        }
      }
    }
    return { ok: true, text: sent };
  }
}
