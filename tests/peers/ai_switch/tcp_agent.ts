/**
 * A TCP peer for the ai-switch namespace tests (tests only). One runs in each
 * client namespace: it serves an echo server on `--listen HOST:PORT` and takes
 * JSON-line commands on stdin, answering each with one JSON line on stdout:
 *
 * - `{"id":1,"op":"probe","host":"10.0.1.2","port":7000,"timeoutMs":1500}` ->
 *   `{"id":1,"ok":true}` if a connection opened and echoed a line, else
 *   `{"id":1,"ok":false,"error":"timeout"|"..."}`.
 * - `{"id":2,"op":"open","name":"c","host":...,"port":...}` holds a connection;
 *   `{"id":3,"op":"send","name":"c","timeoutMs":1000}` writes a line on it and
 *   answers whether the echo came back.
 * - `{"id":4,"op":"hammer","host":...,"port":...,"concurrency":200}` starts
 *   connecting continuously; `{"id":5,"op":"stop"}` answers
 *   `{"attempts":N,"successes":N}`.
 * - `{"id":6,"op":"peek"}` answers the hammer's counts so far without stopping it.
 * - `{"id":7,"op":"accepted"}` answers the remote addresses the echo server
 *   accepted and the lines it received.
 *
 * A connection counts as made only when the echo comes back, so a SYN that
 * slipped through without a usable connection is still seen server-side
 * through `accepted`.
 *
 * @module
 */
import { parseArgs } from "node:util";

const { values } = parseArgs({ args: Deno.args, options: { listen: { type: "string" } } });
const [lhost = "", lport] = (values.listen ?? "").split(":");
const listener = Deno.listen({ hostname: lhost, port: Number(lport) });
const accepted: { from: string; lines: number }[] = [];
const enc = new TextEncoder();
const dec = new TextDecoder();

(async () => {
  for await (const conn of listener) {
    const a = conn.remoteAddr as Deno.NetAddr;
    const rec = { from: a.hostname, lines: 0 };
    accepted.push(rec);
    (async () => {
      const buf = new Uint8Array(1024);
      try {
        while (true) {
          const n = await conn.read(buf);
          if (n === null) break;
          rec.lines += dec.decode(buf.subarray(0, n)).split("\n").length - 1;
          await conn.write(buf.subarray(0, n));
        }
      } catch { /* peer gone */ }
      try {
        conn.close();
      } catch { /* closed */ }
    })();
  }
})();

function timeout(ms: number): Promise<"timeout"> {
  return new Promise((r) => setTimeout(() => r("timeout"), ms));
}

async function echo(conn: Deno.TcpConn, ms: number): Promise<boolean> {
  const buf = new Uint8Array(64);
  const work = (async () => {
    await conn.write(enc.encode("ping\n"));
    const n = await conn.read(buf);
    return n !== null && dec.decode(buf.subarray(0, n)).includes("ping");
  })().catch(() => false);
  const r = await Promise.race([work, timeout(ms)]);
  return r === true;
}

const held = new Map<string, Deno.TcpConn>();
let hammer: { stop: boolean; attempts: number; successes: number; done: Promise<void> } | null =
  null;

async function connect(host: string, port: number, ms: number): Promise<Deno.TcpConn> {
  const p = Deno.connect({ hostname: host, port });
  const r = await Promise.race([p, timeout(ms)]);
  if (r === "timeout") {
    p.then((c) => c.close()).catch(() => {});
    throw new Error("timeout");
  }
  return r;
}

// deno-lint-ignore no-explicit-any
async function handle(cmd: any): Promise<Record<string, unknown>> {
  switch (cmd.op) {
    case "probe": {
      try {
        const c = await connect(cmd.host, cmd.port, cmd.timeoutMs);
        const ok = await echo(c, cmd.timeoutMs);
        c.close();
        return ok ? { ok } : { ok, error: "no echo" };
      } catch (e) {
        return { ok: false, error: (e as Error).message };
      }
    }
    case "open": {
      try {
        const c = await connect(cmd.host, cmd.port, cmd.timeoutMs ?? 5000);
        held.set(cmd.name, c);
        return { ok: await echo(c, cmd.timeoutMs ?? 5000) };
      } catch (e) {
        return { ok: false, error: (e as Error).message };
      }
    }
    case "send": {
      const c = held.get(cmd.name);
      if (!c) return { ok: false, error: "no such connection" };
      return { ok: await echo(c, cmd.timeoutMs) };
    }
    case "hammer": {
      const h = { stop: false, attempts: 0, successes: 0, done: Promise.resolve() };
      const worker = async () => {
        while (!h.stop) {
          h.attempts++;
          try {
            const c = await Deno.connect({ hostname: cmd.host, port: cmd.port });
            h.successes++;
            c.close();
          } catch { /* blocked: the SYN was dropped until the kernel gave up */ }
        }
      };
      h.done = Promise.all(Array.from({ length: cmd.concurrency }, worker)).then(() => {});
      hammer = h;
      return { ok: true };
    }
    case "stop": {
      if (!hammer) return { ok: false, error: "no hammer" };
      hammer.stop = true;
      // Let attempts still waiting on a dropped SYN end, so a late success is counted.
      const settled = await Promise.race([hammer.done.then(() => true), timeout(cmd.settleMs)]);
      return { ok: true, settled, attempts: hammer.attempts, successes: hammer.successes };
    }
    case "peek":
      if (!hammer) return { ok: false, error: "no hammer" };
      return { ok: true, attempts: hammer.attempts, successes: hammer.successes };
    case "accepted":
      return { ok: true, accepted };
    default:
      return { ok: false, error: `unknown op ${cmd.op}` };
  }
}

console.log(JSON.stringify({ ready: true }));
let pending = "";
for await (const chunk of Deno.stdin.readable) {
  pending += dec.decode(chunk);
  let nl;
  while ((nl = pending.indexOf("\n")) >= 0) {
    const line = pending.slice(0, nl);
    pending = pending.slice(nl + 1);
    if (!line.trim()) continue;
    const cmd = JSON.parse(line);
    handle(cmd).then((r) => console.log(JSON.stringify({ id: cmd.id, ...r })));
  }
}
Deno.exit(0);
