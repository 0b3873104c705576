/**
 * A raw client for Unix stream sockets, run inside a booted VM as a given user
 * (`runuser -u joi -- deno run --allow-read=D --allow-write=D
 * --allow-net=unix:D/x.sock,... socket_probe.ts`): for each request on stdin
 * it connects, writes one line, reads until the server closes, and reports
 * what came back and how long it took. The kernel decides whether the user
 * may connect; the probe adds no protocol of its own.
 *
 * stdin: a JSON array of `{socket, line, repeat?}`; stdout: a JSON array of
 * `{socket, runs: [{ok, ms, output?, error?}]}` in the same order.
 *
 * @module
 */

/** One request. */
export interface ProbeRequest {
  /** Socket path. */
  socket: string;
  /** The line to write (a trailing newline is added); "" writes nothing. */
  line: string;
  /** How often (default 1). */
  repeat?: number;
}

/** One connection's outcome. */
export interface ProbeRun {
  /** Connected and read to the end. */
  ok: boolean;
  /** Milliseconds from connect to the server's close. */
  ms: number;
  /** What the server wrote. */
  output?: string;
  /** Why it failed (`PermissionDenied: ...`). */
  error?: string;
}

/** One request's runs. */
export interface ProbeAnswer {
  socket: string;
  runs: ProbeRun[];
}

async function once(socket: string, line: string): Promise<ProbeRun> {
  const started = performance.now();
  let conn: Deno.UnixConn | undefined;
  try {
    conn = await Deno.connect({ transport: "unix", path: socket });
    // a server that never reads (a benchmark's floor) must not see a write it resets on
    if (line !== "") await conn.write(new TextEncoder().encode(`${line}\n`));
    const output = await new Response(conn.readable).text();
    return { ok: true, ms: performance.now() - started, output };
  } catch (e) {
    try {
      conn?.close();
    } catch { /* closed */ }
    return {
      ok: false,
      ms: performance.now() - started,
      error: `${(e as Error).name}: ${(e as Error).message}`,
    };
  }
}

async function main(): Promise<void> {
  const requests = JSON.parse(await new Response(Deno.stdin.readable).text()) as ProbeRequest[];
  const answers: ProbeAnswer[] = [];
  for (const r of requests) {
    const runs: ProbeRun[] = [];
    for (let i = 0; i < (r.repeat ?? 1); i++) runs.push(await once(r.socket, r.line));
    answers.push({ socket: r.socket, runs });
  }
  console.log(JSON.stringify(answers));
}

if (import.meta.main) await main();
