/**
 * The memory benchmarks' floor: an empty `Deno.serve` on 127.0.0.1 that reads
 * each request body and answers a small JSON object, nothing else. The
 * benchmarks start it with the same V8 flags and environment as the program
 * they measure, send it as many requests as the program handled messages, and
 * print the program's RSS as a ratio of this process's.
 *
 * Prints its port on stdout once listening.
 *
 * @module
 */
Deno.serve(
  { hostname: "127.0.0.1", port: 0, onListen: ({ port }) => console.log(port) },
  async (req) => {
    const body = await req.arrayBuffer();
    return Response.json({ status: "ok", bytes: body.byteLength });
  },
);
