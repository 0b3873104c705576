/**
 * RFC 2397 `data:` URIs, the way signal-cli takes an attachment it cannot
 * read from disk (`data:<mime>;filename=<name>;base64,<data>`).
 *
 * @module
 */

/** The base64 of `bytes`, in chunks (spreading a whole MiB into one call overflows the stack). */
export function base64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

/** A `data:` URI of `bytes` with content type `mime` and file name `filename`. */
export function dataUri(mime: string, filename: string, bytes: Uint8Array): string {
  return `data:${mime};filename=${filename};base64,${base64(bytes)}`;
}
