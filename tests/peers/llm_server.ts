/**
 * A protocol-faithful stand-in for Ollama on loopback: `POST /v1/chat/completions`
 * in OpenAI's response format (where, as in Ollama, `options` are ignored),
 * Ollama's native `POST /api/chat` (which honours `options.num_gpu` and
 * `options.num_ctx`), its `GET /api/ps` process list and `GET /api/tags` (the pulled models).
 *
 * It speaks HTTP/1.1 over a raw TCP listener so it can misbehave the way a
 * real Ollama does: answer, stall (never respond), fail with a GPU error (HTTP
 * 500 with CUDA text; a request with `options.num_gpu: 0` is served on "CPU"),
 * run out of memory (HTTP 500 "out of memory" while `options.num_ctx` exceeds
 * `oomAboveCtx`), or be down (the socket is closed with no response).
 *
 * @module
 */

/** How the server treats the next requests. */
export type LlmMode = "answer" | "stall" | "gpu_error" | "oom" | "down";

/** A recorded chat request. */
export interface RecordedRequest {
  /**
   * Which API was called: `openai` (`/v1/chat/completions`, where real Ollama
   * ignores `options`, so they are not honoured here either) or `native`
   * (`/api/chat`, which honours `options.num_gpu` and `options.num_ctx`).
   */
  api: "openai" | "native";
  /** The model asked for. */
  model: string;
  /** The messages sent. */
  messages: { role: string; content: string }[];
  /** Ollama options (num_ctx, num_gpu). */
  options?: { num_ctx?: number; num_gpu?: number } | undefined;
  /** max_tokens, if any. */
  max_tokens?: number | undefined;
  /** Raw body. */
  body: Record<string, unknown>;
}

/** Options of {@link LlmTestServer.start}. */
export interface LlmServerOptions {
  /** Produces the assistant's text (default: a short deterministic reply). */
  reply?: (req: RecordedRequest) => string;
  /** The server's own context (OLLAMA_CONTEXT_LENGTH), used where options are ignored (default 8192). */
  serverCtx?: number;
  /** num_ctx above which `oom` mode fails (default 4096). */
  oomAboveCtx?: number;
  /** TCP port on 127.0.0.1 (default 0: a free port). */
  port?: number;
  /** Requests kept in `requests` (default: all; long runs keep fewer). */
  keepRequests?: number;
  /** Thinking time before answering a request, ms (a CPU-bound model takes 30-60 s). */
  delayMs?: (req: RecordedRequest) => number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The OpenAI-compatible LLM test server. */
export class LlmTestServer {
  /** Current behaviour; change it at any time. */
  mode: LlmMode = "answer";
  /** Models that fail in `gpu_error` mode even on CPU (to force the fallback model). */
  brokenModels = new Set<string>();
  /** Every chat request received (including failed ones). */
  readonly requests: RecordedRequest[] = [];
  /** Chat requests received in total. */
  served = 0;
  /** What /api/ps reports. */
  ps: { name: string; size: number; size_vram: number }[] = [];
  /** The pulled models `GET /api/tags` lists (Ollama's shape: `{models: [{name, ...}]}`). */
  tags: string[] = ["llama3.1:8b-instruct-q4_K_M", "gemma2:9b", "phi3:mini"];
  #listener: Deno.TcpListener;
  #conns = new Set<Deno.Conn>();
  #opts: LlmServerOptions;
  #done: Promise<void>;

  private constructor(listener: Deno.TcpListener, opts: LlmServerOptions) {
    this.#listener = listener;
    this.#opts = opts;
    this.#done = this.#accept();
  }

  /** Starts on 127.0.0.1 with `opts.port` (default: a free port). */
  static start(opts: LlmServerOptions = {}): Promise<LlmTestServer> {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: opts.port ?? 0 });
    return Promise.resolve(new LlmTestServer(listener, opts));
  }

  /** The server's origin, e.g. `http://127.0.0.1:40123`. */
  get origin(): string {
    return `http://127.0.0.1:${this.#listener.addr.port}`;
  }

  /** The OpenAI-compatible base URL (`<origin>/v1`). */
  get baseUrl(): string {
    return `${this.origin}/v1`;
  }

  /** Stops listening and closes every connection (stalled ones too). */
  async close(): Promise<void> {
    try {
      this.#listener.close();
    } catch { /* closed */ }
    for (const c of this.#conns) {
      try {
        c.close();
      } catch { /* closed */ }
    }
    await this.#done;
  }

  async #accept(): Promise<void> {
    while (true) {
      let conn: Deno.Conn;
      try {
        conn = await this.#listener.accept();
      } catch {
        return;
      }
      this.#conns.add(conn);
      this.#serve(conn).catch(() => {}).finally(() => {
        this.#conns.delete(conn);
        try {
          conn.close();
        } catch { /* closed */ }
      });
    }
  }

  async #serve(conn: Deno.Conn): Promise<void> {
    if (this.mode === "down") return; // closed with no response
    const req = await readRequest(conn);
    if (!req) return;
    if ((this.mode as LlmMode) === "down") return; // it went down while the request arrived
    if (req.method === "GET" && req.path === "/api/ps") {
      return await respond(conn, 200, { models: this.ps });
    }
    if (req.method === "GET" && req.path === "/api/tags") {
      return await respond(conn, 200, {
        models: this.tags.map((name) => ({ name, model: name, size: 4_920_000_000 })),
      });
    }
    const api = req.path === "/v1/chat/completions"
      ? "openai"
      : req.path === "/api/chat"
      ? "native"
      : null;
    if (req.method !== "POST" || api === null) {
      return await respond(conn, 404, { error: "404 page not found" });
    }
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(req.body);
    } catch {
      return await respond(conn, 400, {
        error: { message: "invalid JSON", type: "invalid_request_error" },
      });
    }
    const rec: RecordedRequest = {
      api,
      model: String(body.model),
      messages: body.messages as RecordedRequest["messages"],
      options: body.options as RecordedRequest["options"],
      max_tokens: body.max_tokens as number | undefined,
      body,
    };
    this.requests.push(rec);
    const keep = this.#opts.keepRequests;
    if (keep !== undefined && this.requests.length > keep) {
      this.requests.splice(0, this.requests.length - keep);
    }
    this.served++;
    const mode = this.mode;
    if (mode === "stall") {
      await new Promise<void>((resolve) => {
        const poll = setInterval(() => {
          if (!this.#conns.has(conn) || this.mode !== "stall") {
            clearInterval(poll);
            resolve();
          }
        }, 20);
      });
      return; // the client gave up, or the test moved on: close without a response
    }
    // Like Ollama: options are honoured by the native API only.
    const honoured = api === "native" ? rec.options : undefined;
    const onCpu = honoured?.num_gpu === 0;
    const ctx = honoured?.num_ctx ?? this.#opts.serverCtx ?? 8192;
    const error = (message: string) =>
      api === "native"
        ? respond(conn, 500, { error: message })
        : respond(conn, 500, { error: { message, type: "api_error" } });
    if (mode === "gpu_error" && (!onCpu || this.brokenModels.has(rec.model))) {
      return await error(
        "llama runner process has terminated: CUDA error: no CUDA-capable device is detected",
      );
    }
    if (mode === "oom" && ctx > (this.#opts.oomAboveCtx ?? 4096)) {
      return await error("model requires more system memory: cudaMalloc failed: out of memory");
    }
    const delay = this.#opts.delayMs?.(rec) ?? 0;
    if (delay > 0) await new Promise((r) => setTimeout(r, delay));
    const text = this.#opts.reply?.({ ...rec, options: honoured }) ?? `Hello from ${rec.model}.`;
    if (api === "native") {
      return await respond(conn, 200, {
        model: rec.model,
        created_at: new Date(1_700_000_000_000).toISOString(),
        message: { role: "assistant", content: text },
        done: true,
        done_reason: "stop",
        total_duration: 1_000_000,
        prompt_eval_count: 10,
        eval_count: 5,
      });
    }
    return await respond(conn, 200, {
      id: `chatcmpl-${this.requests.length}`,
      object: "chat.completion",
      created: 1_700_000_000,
      model: rec.model,
      system_fingerprint: onCpu ? "fp_ollama_cpu" : "fp_ollama",
      choices: [{ index: 0, message: { role: "assistant", content: text }, finish_reason: "stop" }],
      usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 },
    });
  }
}

async function readRequest(
  conn: Deno.Conn,
): Promise<{ method: string; path: string; body: string } | undefined> {
  let buf: Uint8Array = new Uint8Array(0);
  const chunk = new Uint8Array(16384);
  let headerEnd = -1;
  while (headerEnd < 0) {
    const n = await conn.read(chunk);
    if (n === null) return undefined;
    buf = concat(buf, chunk.subarray(0, n));
    headerEnd = findHeaderEnd(buf);
    if (buf.length > 1 << 20) return undefined;
  }
  const head = decoder.decode(buf.subarray(0, headerEnd));
  const [requestLine, ...headerLines] = head.split("\r\n");
  const [method = "", path = ""] = (requestLine ?? "").split(" ");
  let length = 0;
  for (const line of headerLines) {
    const i = line.indexOf(":");
    if (line.slice(0, i).trim().toLowerCase() === "content-length") {
      length = Number(line.slice(i + 1).trim());
    }
  }
  let body: Uint8Array = buf.subarray(headerEnd + 4);
  while (body.length < length) {
    const n = await conn.read(chunk);
    if (n === null) return undefined;
    body = concat(body, chunk.subarray(0, n));
  }
  return { method, path, body: decoder.decode(body.subarray(0, length)) };
}

function findHeaderEnd(b: Uint8Array): number {
  for (let i = 0; i + 3 < b.length; i++) {
    if (b[i] === 13 && b[i + 1] === 10 && b[i + 2] === 13 && b[i + 3] === 10) return i;
  }
  return -1;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

async function respond(conn: Deno.Conn, status: number, body: unknown): Promise<void> {
  const payload = encoder.encode(JSON.stringify(body));
  const reason = status === 200
    ? "OK"
    : status === 404
    ? "Not Found"
    : status === 400
    ? "Bad Request"
    : "Internal Server Error";
  const head = `HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json; charset=utf-8\r\n` +
    `content-length: ${payload.length}\r\nconnection: close\r\n\r\n`;
  await writeAll(conn, concat(encoder.encode(head), payload));
}

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await conn.write(data.subarray(off));
}
