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
import { compileGlob } from "../../common/glob.ts";

/**
 * The allow and block lists, policy.yaml `ingest.items`: `allow` globs are
 * admitted (`["*"]` for everything), `block` globs refused (they win).
 */
export type ItemLists = Policy["ingest"]["items"];

/** A compiled item filter. */
export interface ItemFilter {
  /** Why `item` is refused (`blocked by "*_key*"`), or null when admitted. */
  refusal(item: string): string | null;
  /** True when `item` is admitted. */
  admits(item: string): boolean;
}

/** Compiles the policy's lists into an {@link ItemFilter}. */
export function compileItemFilter(lists: ItemLists): ItemFilter {
  const allow = lists.allow.map(compileGlob);
  const block = lists.block.map(compileGlob);
  const refusal = (item: string): string | null => {
    const b = block.find((p) => p.test(item));
    if (b) return `item "${item}" is blocked by pattern "${b.source}"`;
    if (!allow.some((p) => p.test(item))) return `item "${item}" matches no allow pattern`;
    return null;
  };
  return { refusal, admits: (item) => refusal(item) === null };
}
