/**
 * Document paths: how an issue names the node it is about.
 *
 * `["recipients", "partner", "public_readers", 1]` reads
 * `recipients.partner.public_readers[1]`; keys that are not plain words are
 * quoted: `identities["+15550000001"].recipient_id`.
 *
 * @module
 */

/** One step into a document: a mapping key or a list index. */
export type PathSegment = string | number;

const PLAIN_KEY = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/** The text shown for the document root. */
export const ROOT_PATH = "(root)";

/** Formats a path for humans; the empty path is {@link ROOT_PATH}. */
export function formatPath(path: readonly PathSegment[]): string {
  if (path.length === 0) return ROOT_PATH;
  let out = "";
  for (const seg of path) {
    if (typeof seg === "number") out += `[${seg}]`;
    else if (PLAIN_KEY.test(seg)) out += out === "" ? seg : `.${seg}`;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

/** Reads the value at `path` inside plain data, or `undefined` when absent. */
export function valueAt(data: unknown, path: readonly PathSegment[]): unknown {
  let cur: unknown = data;
  for (const seg of path) {
    if (cur === null || typeof cur !== "object") return undefined;
    if (!Object.hasOwn(cur, seg)) return undefined;
    cur = (cur as Record<string | number, unknown>)[seg];
  }
  return cur;
}
