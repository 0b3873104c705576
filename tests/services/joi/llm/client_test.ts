import assert from "node:assert/strict";
import {
  GpuHealthMonitor,
  LlmCallBudget,
  LlmClient,
  type LlmConfig,
  LlmError,
  promptTokens,
} from "../../../../services/joi/llm/mod.ts";
import { LlmTestServer } from "../../../peers/llm_server.ts";

function config(endpoint: string, over: Partial<LlmConfig> = {}): LlmConfig {
  return {
    endpoint,
    primary_model: "llama3.1:8b-instruct-q4_K_M",
    fallback_models: ["gemma2:9b", "phi3:mini"],
    banned_families: ["qwen", "deepseek"],
    timeout_seconds: 0.3,
    max_retries: 2,
    context_tokens: 8192,
    temperature: 0.6,
    ...over,
  };
}

async function withServer(fn: (s: LlmTestServer) => Promise<void>, opts = {}) {
  const s = await LlmTestServer.start(opts);
  try {
    await fn(s);
  } finally {
    await s.close();
  }
}

const msgs = [
  { role: "system" as const, content: "You are joi." },
  { role: "user" as const, content: "hello" },
];

Deno.test("llm: answers in OpenAI format on GPU", () =>
  withServer(async (s) => {
    const c = new LlmClient({ config: config(s.baseUrl) });
    const r = await c.chat(msgs);
    assert.equal(r.content, "Hello from llama3.1:8b-instruct-q4_K_M.");
    assert.equal(r.mode, "gpu");
    assert.equal(s.requests[0]!.api, "openai", "a normal call uses the OpenAI-compatible API");
    assert.equal(s.requests[0]!.options, undefined, "which ignores Ollama options: none are sent");
    assert.equal(c.degraded, false);
  }));

Deno.test("llm: GPU error falls back to CPU (num_gpu 0), one degraded notice per episode", () =>
  withServer(async (s) => {
    const notices: string[] = [];
    let recovered = 0;
    const c = new LlmClient({ config: config(s.baseUrl) });
    c.onDegraded((i) => notices.push(i.model));
    c.onRecovered(() => recovered++);
    s.mode = "gpu_error";
    const r1 = await c.chat(msgs);
    assert.equal(r1.mode, "cpu");
    assert.equal(s.requests.length, 2);
    assert.equal(s.requests[1]!.options?.num_gpu, 0);
    assert.equal(s.requests[1]!.api, "native", "num_gpu only takes effect on Ollama's /api/chat");
    const r2 = await c.chat(msgs);
    assert.equal(r2.mode, "cpu");
    assert.equal(s.requests.length, 3, "a degraded client goes straight to CPU");
    assert.equal(notices.length, 1);
    assert.equal(c.state().degraded, true);
    // the health probe while the GPU is still gone keeps the episode open
    assert.equal(await c.probeGpu(), false);
    assert.equal(notices.length, 1);
    // eGPU reconnected: the probe ends the episode
    s.mode = "answer";
    assert.equal(await c.probeGpu(), true);
    assert.equal(recovered, 1);
    assert.equal(c.degraded, false);
    // a new disconnect is a new episode: one more notice
    s.mode = "gpu_error";
    await c.chat(msgs);
    assert.equal(notices.length, 2);
  }));

Deno.test("llm: GPU error on CPU too -> the fallback models in order", () =>
  withServer(async (s) => {
    const c = new LlmClient({ config: config(s.baseUrl) });
    s.mode = "gpu_error";
    s.brokenModels.add("llama3.1:8b-instruct-q4_K_M");
    s.brokenModels.add("gemma2:9b");
    const r = await c.chat(msgs);
    assert.equal(r.model, "phi3:mini");
    s.brokenModels.add("phi3:mini");
    await assert.rejects(c.chat(msgs), (e) => e instanceof LlmError && e.kind === "gpu");
  }));

Deno.test("llm: out of memory retries with half the context and a prompt that fits it", () =>
  withServer(async (s) => {
    const c = new LlmClient({ config: config(s.baseUrl) });
    s.mode = "oom";
    const long = [
      { role: "system" as const, content: "You are joi." },
      ...Array.from({ length: 60 }, (_, i) => ({
        role: (i % 2 ? "assistant" : "user") as "user" | "assistant",
        content: `turn ${i} `.repeat(60),
      })),
      { role: "user" as const, content: "the question" },
    ];
    assert.ok(promptTokens(long) > 4096);
    const r = await c.chat(long);
    assert.equal(r.contextTokens, 4096);
    // the smaller context only takes effect on Ollama's native API
    assert.deepEqual(s.requests.map((q) => [q.api, q.options?.num_ctx]), [
      ["openai", undefined],
      ["native", 4096],
    ]);
    const sent = s.requests[1]!.messages;
    assert.ok(promptTokens(sent as typeof long) <= 4096);
    assert.equal(sent[0]!.content, "You are joi.");
    assert.equal(sent[sent.length - 1]!.content, "the question");
  }, { oomAboveCtx: 4096 }));

Deno.test("llm: out of memory at every size fails with kind oom", () =>
  withServer(async (s) => {
    const c = new LlmClient({ config: config(s.baseUrl) });
    s.mode = "oom";
    await assert.rejects(c.chat(msgs), (e) => e instanceof LlmError && e.kind === "oom");
    assert.deepEqual(s.requests.map((q) => [q.api, q.options?.num_ctx]), [
      ["openai", undefined],
      ["native", 4096],
      ["native", 2048],
      ["native", 1024],
    ]);
  }, { oomAboveCtx: 0 }));

Deno.test("llm: a stalled server times out and is retried with exponential backoff", () =>
  withServer(async (s) => {
    const sleeps: number[] = [];
    const c = new LlmClient({
      config: config(s.baseUrl),
      sleep: (ms) => (sleeps.push(ms), Promise.resolve()),
    });
    s.mode = "stall";
    await assert.rejects(c.chat(msgs), (e) => e instanceof LlmError && e.kind === "timeout");
    assert.equal(s.requests.length, 3);
    assert.deepEqual(sleeps, [1000, 2000]);
    // recovers once the server answers again
    s.mode = "answer";
    assert.equal((await c.chat(msgs)).mode, "gpu");
  }));

Deno.test("llm: a server that closes the socket is 'down' after the retries", () =>
  withServer(async (s) => {
    const sleeps: number[] = [];
    const c = new LlmClient({
      config: config(s.baseUrl),
      sleep: (ms) => (sleeps.push(ms), Promise.resolve()),
    });
    s.mode = "down";
    await assert.rejects(c.chat(msgs), (e) => e instanceof LlmError && e.kind === "down");
    assert.equal(sleeps.length, 2);
    assert.equal(c.state().consecutive_failures, 1);
  }));

Deno.test("llm: the call budget refuses beyond calls_per_hour, then pauses", () =>
  withServer(async (s) => {
    let now = 1_000_000;
    const budget = new LlmCallBudget({ calls_per_hour: 3, pause_minutes: 5 }, () => now);
    const c = new LlmClient({ config: config(s.baseUrl), budget });
    for (let i = 0; i < 3; i++) await c.chat(msgs);
    await assert.rejects(
      c.chat(msgs),
      (e) => e instanceof LlmError && e.kind === "busy" && e.retryAfterSeconds === 300,
    );
    assert.equal(s.requests.length, 3, "a refused call never reaches the server");
    now += 60 * 60_000 + 1; // the hour has rolled, the pause is over
    await c.chat(msgs);
    assert.equal(s.requests.length, 4);
  }));

Deno.test("gpu health: VRAM from /api/ps, unreachable Ollama reported", () =>
  withServer(async (s) => {
    const c = new LlmClient({ config: config(s.baseUrl) });
    const m = new GpuHealthMonitor({ client: c, intervalSeconds: 60 });
    s.ps = [{ name: "llama3.1", size: 6e9, size_vram: 5 * 1024 * 1024 * 1024 }];
    await c.chat(msgs);
    const h = await m.check();
    assert.equal(h.vram_used_mb, 5120);
    assert.equal(h.gpu_available, true);
    assert.equal(h.ollama_reachable, true);
    assert.equal(typeof h.inference_time_ms, "number");
    s.mode = "down";
    const down = await m.check();
    assert.equal(down.ollama_reachable, false);
    assert.equal(down.gpu_available, false);
    assert.equal(down.vram_used_mb, null);
  }));

Deno.test("gpu health: while degraded the monitor probes the GPU and ends the episode", () =>
  withServer(async (s) => {
    let recovered = 0;
    const c = new LlmClient({ config: config(s.baseUrl) });
    c.onRecovered(() => recovered++);
    s.mode = "gpu_error";
    await c.chat(msgs);
    const m = new GpuHealthMonitor({ client: c, intervalSeconds: 60 });
    assert.equal((await m.check()).degraded, true);
    s.mode = "answer";
    const h = await m.check();
    assert.equal(h.degraded, false);
    assert.equal(h.gpu_available, true);
    assert.equal(recovered, 1);
  }));
