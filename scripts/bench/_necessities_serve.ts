/**
 * The memory benchmarks' second yardstick: the least a joi service does per
 * message, and nothing else. A `Deno.serve` that reads each request body,
 * queues it in SQLite (`openDb`, the services' settings), MACs it with the
 * wire's HMAC, posts it onward with `fetch` to a sink served by the same
 * process, dequeues it and answers a small JSON object. The mesh, joi and
 * the relay each do all of these (the relay's alarm store is SQLite too); no
 * zod, Hono, YAML, policies or routes. Its RSS over the empty `Deno.serve`'s
 * is what the runtime charges for the features, before any code of the
 * service itself.
 *
 * `deno run --allow-net=127.0.0.1 --allow-read=DIR --allow-write=DIR _necessities_serve.ts DIR`
 *
 * Prints its port on stdout once listening.
 *
 * @module
 */
import { openDb } from "../../services/common/db.ts";
import { hmacHex, importHmacKey } from "../../services/common/wire/hmac.ts";

const dir = Deno.args[0];
if (!dir) throw new Error("usage: _necessities_serve.ts DIR (where its queue lives)");
const db = openDb(`${dir}/queue.db`);
db.exec("CREATE TABLE IF NOT EXISTS queue (id INTEGER PRIMARY KEY, body BLOB NOT NULL)");
const enqueue = db.prepare("INSERT INTO queue (body) VALUES (?)");
const dequeue = db.prepare("DELETE FROM queue WHERE id = ?");
const key = await importHmacKey(crypto.getRandomValues(new Uint8Array(32)));
const decoder = new TextDecoder();

const sink = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
  await req.arrayBuffer();
  return Response.json({ status: "ok" });
});
const onward = `http://127.0.0.1:${(sink.addr as Deno.NetAddr).port}/`;

Deno.serve(
  { hostname: "127.0.0.1", port: 0, onListen: ({ port }) => console.log(port) },
  async (req) => {
    const body = new Uint8Array(await req.arrayBuffer());
    const { lastInsertRowid } = enqueue.run(body);
    const mac = hmacHex(key, decoder.decode(body));
    const r = await fetch(onward, { method: "POST", body, headers: { "x-mac": mac } });
    await r.arrayBuffer();
    dequeue.run(lastInsertRowid);
    return Response.json({ status: "ok", bytes: body.byteLength });
  },
);
