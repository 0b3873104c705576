/**
 * The openHAB event-stream stand-in ({@link startOpenhabSse}) as a process,
 * for tests that need it inside a network namespace (the openHAB host of the
 * end-to-end test, where the relay dials openHAB's `127.0.0.1:8080`):
 *
 * ```sh
 * ip netns exec <openhab-ns> deno run --allow-net=127.0.0.1:8080 \
 *   tests/peers/openhab_sse_main.ts --port=8080
 * ```
 *
 * stdin, one JSON object per line: first `{"token":"..."}` (the API token is
 * never put in argv), then commands `{"id":1,"push":{topic,payload,type}}`,
 * `{"id":2,"alive":true}`, `{"id":3,"status":true}`. stdout: `{"ready":true}`
 * once listening, and `{"id":N,"connections":C,"open":O}` after each command
 * (connections accepted with the token so far, streams open now). Like
 * openHAB, it sends the `alive` keep-alive every 10 s on its own.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { type OpenhabEvent, type OpenhabSse, startOpenhabSse } from "./openhab_sse.ts";

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    options: { port: { type: "string", default: "8080" } },
  });
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    console.error(`openhab_sse_main: --port=${values.port} is not a TCP port`);
    return 2;
  }
  const enc = new TextEncoder();
  const dec = new TextDecoder();
  const out = (v: unknown) => Deno.stdout.writeSync(enc.encode(JSON.stringify(v) + "\n"));
  let sse: OpenhabSse | null = null;
  let keepAlive: ReturnType<typeof setInterval> | undefined;
  let buf = "";
  for await (const chunk of Deno.stdin.readable) {
    buf += dec.decode(chunk, { stream: true });
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (line === "") continue;
      let cmd: { id?: number; token?: string; push?: OpenhabEvent; alive?: boolean };
      try {
        cmd = JSON.parse(line);
      } catch {
        console.error(`openhab_sse_main: stdin line is not JSON: ${line.slice(0, 80)}`);
        continue;
      }
      if (sse === null) {
        if (typeof cmd.token !== "string" || cmd.token === "") {
          console.error('openhab_sse_main: the first stdin line must be {"token":"..."}');
          return 2;
        }
        sse = startOpenhabSse(cmd.token, { port });
        // openHAB sends its keep-alive every 10 s; the relay's watchdog expects it
        const s = sse;
        keepAlive = setInterval(() => s.alive(), 10_000);
        out({ ready: true, url: sse.url });
        continue;
      }
      if (cmd.push) sse.push(cmd.push);
      if (cmd.alive) sse.alive();
      out({ id: cmd.id ?? 0, connections: sse.connections, open: sse.open });
    }
  }
  clearInterval(keepAlive);
  await sse?.close();
  return 0;
}

if (import.meta.main) Deno.exit(await main());
