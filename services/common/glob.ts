/**
 * Shell-style globs over names (openHAB item names in the policy: the item
 * allow and block lists, `iot.device_classes`): `*` matches any run of
 * characters (none too), `?` exactly one, everything else itself,
 * case-insensitively, over the whole name.
 *
 * Matching is linear in the name per `*` at worst (the classic greedy match
 * that backtracks only to the last `*`), never exponential: a regular
 * expression such as `^.*a.*a.*a.*a.*a.*b$` took 2.7 s on a 100-character
 * name, and item names come from outside.
 *
 * @module
 */

/** A compiled glob. */
export interface Glob {
  /** The glob as written. */
  readonly source: string;
  /** True when the whole of `name` matches. */
  test(name: string): boolean;
}

/** Compiles one glob (`Rauchmelder_*`, `*_Batt`, `Room?_Smoke`). */
export function compileGlob(glob: string): Glob {
  // runs of `*` are one `*`; code points, so `?` is one character, not half of one
  const pattern = [...glob.toLowerCase().replace(/\*+/g, "*")];
  return { source: glob, test: (name) => matches(pattern, [...name.toLowerCase()]) };
}

function matches(p: readonly string[], s: readonly string[]): boolean {
  let i = 0; // in s
  let j = 0; // in p
  let star = -1; // p index of the last `*` seen
  let mark = 0; // s index that `*` matched up to
  while (i < s.length) {
    if (j < p.length && (p[j] === "?" || (p[j] !== "*" && p[j] === s[i]))) {
      i++;
      j++;
    } else if (j < p.length && p[j] === "*") {
      star = j++;
      mark = i;
    } else if (star !== -1) {
      // let the last `*` take one more character and match the rest again
      j = star + 1;
      i = ++mark;
    } else {
      return false;
    }
  }
  while (j < p.length && p[j] === "*") j++;
  return j === p.length;
}
