/**
 * Fuzz: the mesh's JSON-RPC line reader (signal-cli's socket). A peer on a
 * real Unix socket sends generated lines — garbage, invalid UTF-8, batches,
 * answers to unknown ids, wrong shapes, over-long lines — before a real
 * notification and the real answer to the client's request. Property: the
 * client never crashes, delivers the notification sent after the garbage and
 * resolves its request.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { createLogger } from "../../services/common/log.ts";
import { socketSlot } from "../_helpers/sockets.ts";
import { JsonRpcClient } from "../../services/mesh/signal/jsonrpc_client.ts";
import { hostileBytes, mutated, nastyString, report, runs, writeAll } from "./_fuzz.ts";

const SOCK = socketSlot(14);

const enc = new TextEncoder();

const NOTE = JSON.stringify({
  jsonrpc: "2.0",
  method: "receive",
  params: {
    envelope: { sourceNumber: "+15550000001", timestamp: 1, dataMessage: { message: "x" } },
  },
});

const line = fc.oneof(
  mutated(NOTE).map((l) => enc.encode(l.replaceAll("\n", " "))),
  nastyString.map((s) => enc.encode(s.replaceAll("\n", " "))),
  fc.json().map((j) => enc.encode(j)),
  hostileBytes.map((b) => b.map((x) => (x === 10 ? 32 : x))),
  fc.constantFrom(
    '{"jsonrpc":"2.0","id":999,"result":{}}',
    '{"jsonrpc":"2.0","id":"1","result":null}',
    '[{"jsonrpc":"2.0","method":"receive"},1,null]',
    '{"jsonrpc":"2.0","id":null,"error":{"code":-32700}}',
    '{"jsonrpc":"2.0","method":"receive","params":null}',
    "",
  ).map((s) => enc.encode(s)),
  fc.nat({ max: 300_000 }).map((n) => enc.encode(`{"x":"${"a".repeat(n)}"}`)),
);

Deno.test({
  name: "fuzz: JSON-RPC line reader (signal-cli socket)",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const n = runs(40);
    for (const garbage of fc.sample(fc.array(line, { maxLength: 5 }), n)) {
      // a fresh socket per run: a client of an earlier run can never be accepted here
      await Deno.remove(SOCK).catch(() => {});
      const listener = Deno.listen({ transport: "unix", path: SOCK });
      try {
        const notes: unknown[] = [];
        const client = new JsonRpcClient({
          path: SOCK,
          log: createLogger("signal", { quiet: true }),
          initialBackoffMs: 10,
          maxBackoffMs: 50,
          requestTimeoutMs: 5_000,
          maxLineBytes: 64 * 1024,
        });
        client.onNotification((note) => notes.push(note));
        const connected = new Promise<void>((res) => client.onConnect(res));
        client.start();
        const conn = await listener.accept();
        try {
          const b = new Uint8Array(65536);
          let buf = "";
          /** Reads the client's request lines until one names `method`; returns its id. */
          const idOf = async (method: string): Promise<unknown> => {
            for (;;) {
              const nl = buf.indexOf("\n");
              if (nl >= 0) {
                const msg = JSON.parse(buf.slice(0, nl));
                buf = buf.slice(nl + 1);
                if (msg.method === method) return msg.id;
                continue;
              }
              const got = await conn.read(b);
              if (got === null) throw new Error("client hung up");
              buf += new TextDecoder().decode(b.subarray(0, got));
            }
          };
          const answer = (id: unknown, result: unknown) =>
            writeAll(conn, enc.encode(JSON.stringify({ jsonrpc: "2.0", id, result }) + "\n"));
          // signal-cli answers the client's version question on connect
          await answer(await idOf("version"), { version: "0.14.6" });
          await connected;
          const answered = client.request<{ ok: number }>("listGroups");
          const id = await idOf("listGroups");
          for (const g of garbage) await writeAll(conn, new Uint8Array([...g, 10]));
          await writeAll(conn, enc.encode(NOTE + "\n"));
          await answer(id, { ok: 1 });
          const r = await answered;
          assert.deepEqual(r, { ok: 1 }, "the request after the garbage");
          const deadline = Date.now() + 5_000;
          while (
            !notes.some((x) =>
              (x as { method?: string }).method === "receive" &&
              JSON.stringify(x).includes('"x"')
            )
          ) {
            if (Date.now() > deadline) {
              const shown = garbage.map((g) =>
                JSON.stringify(new TextDecoder().decode(g)).slice(0, 80)
              );
              throw new Error(
                `the notification after the garbage was lost (client ${client.status().state}, ` +
                  `${notes.length} notes): ${shown.join(" + ")}`,
              );
            }
            await new Promise((res) => setTimeout(res, 5));
          }
        } finally {
          await client.close();
          try {
            conn.close();
          } catch { /* closed */ }
        }
      } finally {
        listener.close();
        await Deno.remove(SOCK).catch(() => {});
      }
    }
    report("JSON-RPC line reader", n);
  },
});
