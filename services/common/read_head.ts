/**
 * Reading a child's output to its end while keeping only its head: the
 * child is never blocked on a full pipe, and a flood costs no memory.
 *
 * @module
 */

/**
 * Reads `reader` to its end (or until a read fails, e.g. cancelled after a
 * kill): the first `max` bytes, and how many arrived in all.
 */
export async function readHead(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  max: number,
): Promise<{ bytes: Uint8Array; total: number }> {
  const chunks: Uint8Array[] = [];
  let kept = 0;
  let total = 0;
  while (true) {
    let r: ReadableStreamReadResult<Uint8Array>;
    try {
      r = await reader.read();
    } catch {
      break; // cancelled after a kill
    }
    if (r.done) break;
    const c = r.value;
    if (kept < max) {
      const part = c.subarray(0, max - kept);
      chunks.push(part);
      kept += part.length;
    }
    total += c.length;
  }
  const bytes = new Uint8Array(kept);
  let off = 0;
  for (const c of chunks) {
    bytes.set(c, off);
    off += c.length;
  }
  return { bytes, total };
}
