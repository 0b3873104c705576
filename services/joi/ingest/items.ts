/**
 * Item allow and block lists (policy.yaml `ingest.items`): shell-style globs
 * where `*` matches any run of characters and `?` one, case-insensitive. An
 * item is admitted when it matches an allow pattern and no block pattern, so
 * `*_password*`, `*_secret*`, `*_key*` are never stored whatever the allow
 * list says.
 *
 * @module
 */
import type { Policy } from "../../common/policy/policy.ts";

/**
 * The allow and block lists, policy.yaml `ingest.items`: `allow` globs are
 * admitted (`["*"]` for everything), `block` globs refused (they win).
 */
export type ItemLists = Policy["ingest"]["items"];

/** Compiles one glob into an anchored, case-insensitive regular expression. */
export function globToRegExp(glob: string): RegExp {
  const body = glob.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".");
  return new RegExp(`^${body}$`, "is");
}

/** A compiled item filter. */
export interface ItemFilter {
  /** Why `item` is refused (`blocked by "*_key*"`), or null when admitted. */
  refusal(item: string): string | null;
  /** True when `item` is admitted. */
  admits(item: string): boolean;
}

/** Compiles the policy's lists into an {@link ItemFilter}. */
export function compileItemFilter(lists: ItemLists): ItemFilter {
  const allow = lists.allow.map((g) => ({ g, re: globToRegExp(g) }));
  const block = lists.block.map((g) => ({ g, re: globToRegExp(g) }));
  const refusal = (item: string): string | null => {
    const b = block.find((p) => p.re.test(item));
    if (b) return `item "${item}" is blocked by pattern "${b.g}"`;
    if (!allow.some((p) => p.re.test(item))) return `item "${item}" matches no allow pattern`;
    return null;
  };
  return { refusal, admits: (item) => refusal(item) === null };
}
