/**
 * Outbound content rules (contracts.md, "Outbound content rules"): at most
 * `max_outbound_chars`, printable text only, NFKC-normalized before the
 * blocked patterns of policy.yaml are checked. Fixed critical templates skip
 * the patterns (their constant text is ours) but not length or printability.
 * A refusal names the rule; the caller logs it to the security log and never
 * sends the message.
 *
 * @module
 */
import type { Policy } from "../../common/policy/policy.ts";

/** policy.yaml `content`, as the outbound rules use it. */
export type ContentPolicy = Pick<Policy["content"], "max_outbound_chars" | "blocked_patterns">;

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
  #patterns: { name: string; re: RegExp; proactiveOnly: boolean }[];

  /** Compiles the patterns; throws naming a pattern that is not a valid expression. */
  constructor(policy: ContentPolicy) {
    this.#max = policy.max_outbound_chars;
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

  /** Checks (and NFKC-normalizes) one outbound text. */
  check(text: string, options: CheckOptions = {}): ContentVerdict {
    const t = text.normalize("NFKC");
    if (t.trim() === "") return { ok: false, rule: "empty", message: "message is empty" };
    const length = [...t].length;
    if (length > this.#max) {
      return {
        ok: false,
        rule: "max_outbound_chars",
        message: `message has ${length} chars, more than max_outbound_chars ${this.#max}`,
      };
    }
    const bad = UNPRINTABLE.exec(t);
    if (bad) {
      const cp = bad[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0");
      return {
        ok: false,
        rule: "printable",
        message: `message holds the unprintable character U+${cp} at index ${bad.index}`,
      };
    }
    if (!options.template) {
      for (const p of this.#patterns) {
        if (p.proactiveOnly && !options.proactive) continue;
        if (p.re.test(t)) {
          return { ok: false, rule: p.name, message: `message matches blocked pattern ${p.name}` };
        }
      }
    }
    return { ok: true, text: t };
  }
}
