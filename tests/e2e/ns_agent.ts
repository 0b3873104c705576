/**
 * A probe that runs inside one host namespace of the end-to-end topology
 * (`ip netns exec <ns> deno run --allow-net=<exact peers> ns_agent.ts`) and
 * answers questions about that host's view of the network, one JSON object
 * per line on stdin, one answer per line on stdout:
 *
 * - `{"id":1,"op":"connect","host":"10.42.0.10","port":8443,"timeoutMs":3000}`
 *   -> `{"id":1,"ok":true}` when a TCP connection opened, else
 *   `{"id":1,"ok":false,"error":"timed out after 3000 ms"}` (or the refusal);
 * - `{"id":2,"op":"get","url":"http://10.42.0.1:8444/health","timeoutMs":3000}`
 *   -> `{"id":2,"ok":true,"status":200,"body":{...}}` or `{"ok":false,"error"}`.
 *
 * It prints `{"ready":true}` first. Its sandbox is only the `--allow-net` list
 * the test gives it, so a probe can never reach more than the test intended.
 *
 * @module
 */

/** A question to the agent, without its id. */
export type AgentQuestion =
  | { op: "connect"; host: string; port: number; timeoutMs: number }
  | { op: "get"; url: string; timeoutMs: number };

/** A question to the agent. */
export type AgentCommand = AgentQuestion & { id: number };

/** Its answer. */
export interface AgentAnswer {
  id: number;
  ok: boolean;
  error?: string;
  status?: number;
  body?: unknown;
}

/** Tries one TCP connection; a connection that opens late is closed at once. */
export async function tryConnect(
  host: string,
  port: number,
  timeoutMs: number,
): Promise<{ ok: boolean; error?: string }> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const attempt = Deno.connect({ hostname: host, port });
  const timeout = new Promise<"timeout">((
    r,
  ) => (timer = setTimeout(() => r("timeout"), timeoutMs)));
  try {
    const r = await Promise.race([attempt, timeout]);
    if (r === "timeout") {
      attempt.then((c) => c.close(), () => {});
      return { ok: false, error: `timed out after ${timeoutMs} ms` };
    }
    r.close();
    return { ok: true };
  } catch (e) {
    return { ok: false, error: `${(e as Error).name}: ${(e as Error).message}` };
  } finally {
    clearTimeout(timer);
  }
}

/** Fetches a URL and parses a JSON body when there is one. */
export async function tryGet(url: string, timeoutMs: number): Promise<Omit<AgentAnswer, "id">> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    const text = await res.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch { /* not JSON: keep the text */ }
    return { ok: true, status: res.status, body };
  } catch (e) {
    return { ok: false, error: `${(e as Error).name}: ${(e as Error).message}` };
  }
}

async function answer(cmd: AgentCommand): Promise<AgentAnswer> {
  if (cmd.op === "connect") {
    return { id: cmd.id, ...await tryConnect(cmd.host, cmd.port, cmd.timeoutMs) };
  }
  if (cmd.op === "get") return { id: cmd.id, ...await tryGet(cmd.url, cmd.timeoutMs) };
  return { id: (cmd as { id: number }).id, ok: false, error: "unknown op" };
}

async function main(): Promise<void> {
  const enc = new TextEncoder();
  const out = (v: unknown) => Deno.stdout.writeSync(enc.encode(JSON.stringify(v) + "\n"));
  out({ ready: true });
  const dec = new TextDecoder();
  let buf = "";
  const pending: Promise<void>[] = [];
  for await (const chunk of Deno.stdin.readable) {
    buf += dec.decode(chunk, { stream: true });
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (line === "") continue;
      let cmd: AgentCommand;
      try {
        cmd = JSON.parse(line);
      } catch {
        out({ id: -1, ok: false, error: `not JSON: ${line.slice(0, 80)}` });
        continue;
      }
      pending.push(answer(cmd).then((a) => void out(a)));
    }
  }
  await Promise.allSettled(pending);
  Deno.exit(0);
}

if (import.meta.main) await main();
