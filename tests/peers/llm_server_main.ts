/**
 * The LLM test server ({@link LlmTestServer}) as a process, for tests that
 * need it inside a network namespace (the joi host of the end-to-end test,
 * where joi dials Ollama's `127.0.0.1:11434`):
 *
 * ```sh
 * ip netns exec <joi-ns> deno run --allow-net=127.0.0.1:11434 \
 *   tests/peers/llm_server_main.ts --port=11434 --reply="The porch light is on."
 * ```
 *
 * With `--echo=REGEX`, the reply ends with every distinct match of REGEX in
 * the messages it was sent, in brackets (`... [kbowner123]`), or `[]`: a test
 * sees in the answer what the prompt held (knowledge retrieved for it).
 *
 * stdout, one JSON object per line: `{"ready":true,"origin":...}` once
 * listening, then `{"request":{"model":...,"messages":[...]}}` for each chat
 * request (what the test asserts joi sent). It stops when stdin closes or on
 * SIGTERM.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { LlmTestServer } from "./llm_server.ts";

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      port: { type: "string", default: "11434" },
      reply: { type: "string" },
      echo: { type: "string" },
    },
  });
  const echo = values.echo ? new RegExp(values.echo, "g") : null;
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    console.error(`llm_server_main: --port=${values.port} is not a TCP port`);
    return 2;
  }
  const enc = new TextEncoder();
  const out = (v: unknown) => Deno.stdout.writeSync(enc.encode(JSON.stringify(v) + "\n"));
  const server = await LlmTestServer.start({
    port,
    reply: (req) => {
      out({ request: { model: req.model, messages: req.messages } });
      const text = values.reply ?? `Hello from ${req.model}.`;
      if (!echo) return text;
      const found = new Set(
        req.messages.flatMap((m) => [...m.content.matchAll(echo)].map((x) => x[0])),
      );
      return `${text} [${[...found].join(" ")}]`;
    },
  });
  out({ ready: true, origin: server.origin });
  const stop = Promise.withResolvers<void>();
  Deno.addSignalListener("SIGTERM", () => stop.resolve());
  (async () => {
    for await (const _ of Deno.stdin.readable) { /* the test holds stdin open */ }
    stop.resolve();
  })();
  await stop.promise;
  await server.close();
  return 0;
}

if (import.meta.main) Deno.exit(await main());
