/**
 * The conversation side of the joi process, composed: config manager, memory,
 * LLM client with its budget and GPU monitor, agent, and the signed 8443 app.
 * It plugs into the ingest side's services (`services/joi/main.ts`): their
 * outbox is the one way out, their acknowledger takes the owner's ack words,
 * and the agent is their context sink.
 *
 * @module
 */
import type { DatabaseSync } from "node:sqlite";
import type { Hono } from "hono";
import { openDb } from "../../common/db.ts";
import type { Logger } from "../../common/log.ts";
import { identitiesHash, loadPolicies, type Policies } from "../../common/policy/mod.ts";
import { RateLimiter } from "../../common/rate_limit.ts";
import { loadKey, type NonceStore, openNonceStore, signedRoutes } from "../../common/wire/mod.ts";
import { Agent, type AgentOutbox } from "../agent/agent.ts";
import type { KnowledgeSnippet } from "../agent/prompt.ts";
import { ConfigManager } from "../config/manager.ts";
import type { Acknowledge } from "../guard/acknowledge.ts";
import { GpuHealthMonitor, LlmCallBudget, LlmClient } from "../llm/mod.ts";
import { loadMemoryKey, MemoryStores } from "../memory/mod.ts";
import { ToolRouter, type WebSearchOptions, webSearchRunner } from "../tools/mod.ts";
import { KnowledgeClient } from "../knowledge/broker_client.ts";
import { KnowledgeWriter } from "../knowledge/writer.ts";
import { createInboundApp } from "./app.ts";
import { InboundLedger } from "./ledger.ts";

/** Options of {@link createConversation}. */
export interface ConversationOptions {
  /** Policy folder. */
  configDir: string;
  /** joi's state folder (`data/`, `joi.db`). */
  stateDir: string;
  /** Secrets folder (`mesh_to_joi.key`, `memory.key`). */
  secretsDir: string;
  /** `production` requires every channel user to exist; `local` only warns (shown on /health). */
  mode: "local" | "production";
  /** The mesh's address(es), the only allowed callers of 8443's signed routes. */
  meshSources: readonly string[];
  /** The outbox of the ingest side. */
  outbox: AgentOutbox;
  /** The ingest side's acknowledger. */
  acknowledge?: Acknowledge | undefined;
  /** The ingest side's /health fields. */
  health?: (() => Record<string, unknown>) | undefined;
  /** `--llm-url` (overrides llm.yaml's endpoint). */
  llmUrl?: string | undefined;
  /** Knowledge retrieval for a channel (default: the broker at `knowledgeSocket`, if given). */
  retrieve?: ((channel: string, query: string) => Promise<KnowledgeSnippet[]>) | undefined;
  /** The knowledge broker's socket (`--knowledge-socket`). */
  knowledgeSocket?: string | undefined;
  /**
   * Knowledge write to a channel's folder. Default: the knowledge module's
   * writer on `<stateDir>/knowledge` (current channel only, UUIDv4 ids, indexed).
   */
  saveKnowledge?: ((channel: string, doc: { title: string; body: string }) => void) | undefined;
  /** Web search runner options (tests: the search URL). */
  webSearch?: WebSearchOptions | undefined;
  /** Logger. */
  log: Logger;
  /** Policies joi's main already loaded and validated (the first snapshot). */
  policies?: Policies | undefined;
  /** Loads the policies (default `loadPolicies(configDir)`). */
  load?: (() => Policies) | undefined;
  /** passwd file (default `/etc/passwd`). */
  passwdPath?: string | undefined;
  /** LLM fetch / sleep, for tests. */
  llmFetch?: typeof fetch | undefined;
  /** Backoff sleep, for tests. */
  sleep?: ((ms: number) => Promise<void>) | undefined;
  /** Overrides of llm.yaml figures, for tests (e.g. a short timeout). */
  llmOverrides?: Partial<Policies["llm"]> | undefined;
  /** Clock. */
  now?: (() => number) | undefined;
}

/** The composed conversation side. */
export interface Conversation {
  /** The 8443 app. */
  app: Hono;
  /** The agent (also the ingest side's context sink). */
  agent: Agent;
  /** The configuration manager. */
  config: ConfigManager;
  /** Per-channel memory. */
  memory: MemoryStores;
  /** The LLM client. */
  llm: LlmClient;
  /** GPU health. */
  gpu: GpuHealthMonitor;
  /** Starts the GPU monitor, SIGHUP reloads and daily pruning. */
  start(): void;
  /** Stops timers and closes databases (after the server stopped). */
  close(): Promise<void>;
}

/** Builds the conversation side. Throws (joi must not start) on a bad configuration or key. */
export async function createConversation(o: ConversationOptions): Promise<Conversation> {
  const log = o.log;
  const now = o.now ?? Date.now;
  const config = await ConfigManager.create({
    load: o.load ?? (() => loadPolicies(o.configDir)),
    ...(o.policies ? { initial: o.policies } : {}),
    hash: identitiesHash,
    requireSystemUsers: o.mode === "production",
    passwdPath: o.passwdPath,
    log: log.child("config"),
    alert: (text) => {
      o.outbox.enqueue({
        channel: ownerDm(),
        text,
        priority: "normal",
        kind: "proactive",
        template: true,
      });
      o.outbox.kick();
    },
    now,
  });
  const snap = config.current();
  const ownerId = Object.keys(snap.policies.recipients.recipients)[0] ?? "owner";
  const ownerDm = () => `${ownerId}_private_dm`;
  const policy = () => config.current().policies.policy;

  await Deno.mkdir(o.stateDir, { recursive: true, mode: 0o700 });
  const memoryKey = await loadMemoryKey(o.secretsDir);
  const meshKey = await loadKey(o.secretsDir, "mesh_to_joi.key");
  const memory = new MemoryStores({
    stateDir: o.stateDir,
    recipients: snap.policies.recipients,
    key: memoryKey,
    now,
  });

  const ref: { agent?: Agent } = {}; // the LLM's callbacks reach the agent built below
  const llm = new LlmClient({
    config: { ...snap.policies.llm, ...(o.llmOverrides ?? {}) },
    endpoint: o.llmUrl,
    budget: new LlmCallBudget(snap.policies.policy.rate_limits.llm, now),
    log: log.child("llm"),
    fetch: o.llmFetch,
    sleep: o.sleep,
    now,
    onDegraded: () => ref.agent?.degraded(),
    onRecovered: () => ref.agent?.recovered(),
  });
  const gpu = new GpuHealthMonitor({
    client: llm,
    intervalSeconds: snap.policies.policy.gpu_health.check_interval_seconds,
    fetch: o.llmFetch,
    now,
    log: log.child("gpu"),
  });
  const writer = o.saveKnowledge ? undefined : new KnowledgeWriter({
    root: `${o.stateDir}/knowledge`,
    recipients: snap.policies.recipients,
    allowedChannelUsers: snap.policies.channelUsers.allowed_channel_users,
    logger: log.child("knowledge"),
  });
  const saveKnowledge = o.saveKnowledge ??
    ((channel: string, doc: { title: string; body: string }) => void writer!.save(channel, doc));
  const tools = new ToolRouter({
    tools: snap.policies.tools,
    runners: { web_search: webSearchRunner(o.webSearch) },
    log: log.child("tools"),
    now,
  });
  const agent = new Agent({
    config: () => config.current(),
    memory,
    llm,
    outbox: o.outbox,
    retrieve: o.retrieve ?? (o.knowledgeSocket ? brokerRetrieve(o.knowledgeSocket) : undefined),
    saveKnowledge,
    tools,
    log: log.child("agent"),
    ownerId,
    now,
  });
  ref.agent = agent;

  const stateDb: DatabaseSync = openDb(`${o.stateDir}/joi.db`);
  const ledger = new InboundLedger(stateDb, 24 * 3_600_000, now);
  const sec = snap.policies.policy.security;
  const nonceStore: NonceStore = openNonceStore(
    `${o.stateDir}/nonces_inbound.db`,
    sec.nonce_retention_minutes * 60_000,
  );
  const app = createInboundApp({
    config,
    auth: signedRoutes({
      key: meshKey,
      direction: "mesh_to_joi",
      nonceStore,
      allowedSources: o.meshSources,
      toleranceMs: sec.timestamp_tolerance_minutes * 60_000,
      maxBodyBytes: sec.max_body_bytes,
      logger: log,
      now,
    }),
    meshSources: o.meshSources.map((s) => s.toLowerCase()),
    sink: agent,
    inboundLimiter: new RateLimiter(policy().rate_limits.inbound.others, { now }),
    ledger,
    acknowledge: o.acknowledge,
    ownerId,
    health: () => ({
      ...(o.health?.() ?? {}),
      llm: llm.state(),
      gpu: gpu.snapshot(),
      agent_queue: agent.queueDepth(),
      memory_mb: memoryMb(),
    }),
    log: log.child("inbound"),
  });

  let stopSighup: (() => void) | undefined;
  let pruneTimer: ReturnType<typeof setInterval> | undefined;
  const prune = () =>
    memory.pruneAll(policy().memory.retention_days).then(
      (n) => log.info("memory_pruned", { deleted: n }),
      (e) => log.error("memory_prune_failed", { error: (e as Error).message }),
    );
  return {
    app,
    agent,
    config,
    memory,
    llm,
    gpu,
    start() {
      gpu.start();
      stopSighup = config.listenSighup();
      void prune();
      pruneTimer = setInterval(prune, 24 * 3_600_000);
    },
    async close() {
      gpu.stop();
      stopSighup?.();
      if (pruneTimer !== undefined) clearInterval(pruneTimer);
      await agent.idle();
      memory.close();
      nonceStore.close?.();
      stateDb.close();
    },
  };
}

/** Resident and heap memory of this process, MiB (for /health and the benchmark). */
function memoryMb(): { rss: number; heap_used: number } {
  const m = Deno.memoryUsage();
  return { rss: Math.round(m.rss / 1048576), heap_used: Math.round(m.heapUsed / 1048576) };
}

/** Knowledge search through the broker (which runs retrieve as the channel's user). */
function brokerRetrieve(
  socketPath: string,
): (channel: string, query: string) => Promise<KnowledgeSnippet[]> {
  const client = new KnowledgeClient({ socketPath });
  return async (channel, query) => {
    const out = await client.retrieve(channel, "search", { q: query });
    if (out.status !== "ok") throw new Error(`knowledge broker: ${out.reason}`);
    return out.results.map((r) => ({ title: r.title, text: r.snippet }));
  };
}
