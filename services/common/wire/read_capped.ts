/**
 * Reading a whole body under a size limit, shared by the server side
 * (request bodies, verify.ts) and the client side (responses, client.ts).
 *
 * @module
 */

/**
 * All bytes of `stream`, or undefined as soon as more than `max` bytes
 * arrived (the stream is then cancelled, not drained). A null stream (no
 * body) reads as zero bytes. When `signal` aborts, the stream is cancelled
 * and the signal's reason is thrown; read errors are thrown as they are.
 */
export async function readCapped(
  stream: ReadableStream<Uint8Array> | null,
  max: number,
  signal?: AbortSignal,
): Promise<Uint8Array | undefined> {
  if (stream === null) return new Uint8Array(0);
  const reader = stream.getReader();
  const cancel = () => void reader.cancel().catch(() => {});
  signal?.addEventListener("abort", cancel, { once: true });
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.length;
      if (total > max) {
        cancel();
        return undefined;
      }
      chunks.push(value);
    }
  } finally {
    signal?.removeEventListener("abort", cancel);
  }
  signal?.throwIfAborted();
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  return bytes;
}
