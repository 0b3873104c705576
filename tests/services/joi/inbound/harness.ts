/**
 * A whole joi for tests, built by joi's composition root (createJoi: config
 * manager, outbox, memory, LLM client, agent, event path, the signed 8443
 * app and the ingest app) served over HTTP on loopback, the Ollama stand-in,
 * and a signed client playing the mesh. Only the mesh's own HTTP server is
 * replaced by a transport that records what the outbox hands it.
 */
import { createLogger, memorySink } from "../../../../services/common/log.ts";
import {
  generateKeyFile,
  loadWireKey,
  SignedClient,
} from "../../../../services/common/wire/mod.ts";
import { identitiesHash, loadPolicies } from "../../../../services/common/policy/mod.ts";
import { generateMemoryKeyFile } from "../../../../services/joi/memory/mod.ts";
import { createJoi, type Joi } from "../../../../services/joi/service.ts";
import type { MeshOutboundBody } from "../../../../services/joi/outbox/message.ts";
import { type LlmServerOptions, LlmTestServer } from "../../../peers/llm_server.ts";

/** Phone numbers of policies/identities.yaml. */
export const PHONES = { owner: "+15550000001", partner: "+15550000002" } as const;

/** Options of {@link startJoi}. */
export interface JoiTestOptions {
  llm?: LlmServerOptions;
  /** Edits the copied policy files before the first load. */
  editPolicies?: (dir: string) => Promise<void>;
  /** Start clock (ms). */
  startAt?: number;
  /** Extra overrides of llm.yaml. */
  llmOverrides?: Record<string, unknown>;
  retrieve?: (channel: string, q: string) => Promise<{ title: string; text: string }[]>;
  saveKnowledge?: (channel: string, doc: { title: string; body: string }) => void;
  /** The folder of the channels' retrieve sockets. */
  retrieveSocketDir?: string;
  /** Web search runner options. */
  webSearch?: { searchUrl?: (q: string) => string };
  /** Keep only a count of sent messages, not their bodies, and no log lines (long runs). */
  countOnly?: boolean;
}

/** A running joi for tests. */
export interface JoiTest {
  dir: string;
  llm: LlmTestServer;
  /** joi (named as the conversation side, its part the tests talk to). */
  conv: Joi;
  /** The same joi (named as the event side, its part the tests drive). */
  services: Joi;
  /** What the outbox handed to the mesh, in order. */
  sent: MeshOutboundBody[];
  logs: ReturnType<typeof memorySink>["lines"];
  mesh: SignedClient;
  baseUrl: string;
  ingestUrl: string;
  clock: { now: number };
  /** Posts an inbound message as the mesh would. */
  post(
    m: InboundSpec,
  ): Promise<
    { status: number; data?: Record<string, unknown> | undefined; code?: string | undefined }
  >;
  /** Waits for the agent and drains the outbox (advancing the test clock past cooldowns). */
  settle(): Promise<void>;
  close(): Promise<void>;
}

/** What a test message says. */
export interface InboundSpec {
  sender: "owner" | "partner" | string;
  channel: string;
  text: string;
  type?: "direct" | "group";
  transportId?: string;
  validatedSender?: string;
  messageId?: string;
  omitChannel?: boolean;
  /** Replaces the text content (voice notes, reactions, pictures). */
  content?: Record<string, unknown>;
  /** The mesh's `addressed` (false: a group line not for joi). */
  addressed?: boolean;
}

let counter = 0;

/** Builds the contract body of an inbound message. */
export function inboundBody(m: InboundSpec): Record<string, unknown> {
  return {
    transport: "signal",
    message_id: m.messageId ?? `sig-${Date.now()}-${++counter}`,
    sender: {
      id: m.sender,
      transport_id: m.transportId ?? (PHONES as Record<string, string>)[m.sender] ?? "+15559999999",
    },
    conversation: {
      type: m.type ?? (m.channel.endsWith("_private_dm") ? "direct" : "group"),
      id: m.channel,
    },
    priority: m.channel === "critical_group" ? "critical" : "normal",
    content: m.content ?? { type: "text", text: m.text, voice_transcription_failed: false },
    metadata: { mesh_received_at: new Date().toISOString(), original_format: "text" },
    timestamp: new Date().toISOString(),
    ...(m.addressed === undefined ? {} : { addressed: m.addressed }),
  };
}

/** Starts everything in a temp dir. */
export async function startJoi(o: JoiTestOptions = {}): Promise<JoiTest> {
  const dir = await Deno.makeTempDir({ prefix: "joi-conv-" });
  const policies = `${dir}/policies`;
  await Deno.mkdir(policies);
  for await (const e of Deno.readDir("./policies")) {
    if (e.isFile) await Deno.copyFile(`./policies/${e.name}`, `${policies}/${e.name}`);
  }
  await o.editPolicies?.(policies);
  const secrets = `${dir}/secrets`;
  await Deno.mkdir(secrets, { mode: 0o700 });
  await generateKeyFile(`${secrets}/mesh_to_joi.key`);
  await generateMemoryKeyFile(`${secrets}/memory.key`);
  const llm = await LlmTestServer.start(o.llm);
  const sink = memorySink();
  const log = createLogger("joi", { sinks: o.countOnly ? [] : [sink], quiet: true });
  const clock = { now: o.startAt ?? Date.UTC(2026, 2, 4, 12, 0, 0) }; // a Wednesday noon
  const now = () => clock.now;
  const sent: MeshOutboundBody[] = [];
  const stateDir = `${dir}/state`;
  await Deno.mkdir(stateDir, { mode: 0o700 });
  const joi = await createJoi({
    configDir: policies,
    policies: loadPolicies(policies),
    load: () => loadPolicies(policies),
    stateDir,
    secretsDir: secrets,
    mode: "local",
    meshUrl: "http://127.0.0.1:9",
    meshSources: ["127.0.0.1"],
    transport: {
      send(body) {
        if (o.countOnly) sent.length++;
        else sent.push(structuredClone(body));
        return Promise.resolve({ ok: true, messageId: `m${sent.length}` });
      },
    },
    llmUrl: llm.baseUrl,
    retrieve: o.retrieve,
    saveKnowledge: o.saveKnowledge,
    webSearch: o.webSearch,
    retrieveSocketDir: o.retrieveSocketDir,
    log,
    sleep: () => Promise.resolve(),
    llmOverrides: { timeout_seconds: 1, ...(o.llmOverrides ?? {}) },
    now,
  });
  const conv = joi;
  const services = joi;
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    joi.messagesApp.fetch,
  );
  const ingest = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    services.ingestApp.fetch,
  );
  const baseUrl = `http://127.0.0.1:${server.addr.port}`;
  const key = await loadWireKey(secrets, "mesh_to_joi");
  const mesh = new SignedClient({ baseUrl, key, direction: "mesh_to_joi", maxRetries: 0, now });
  const hash = identitiesHash(conv.config.current().policies.identities);
  return {
    dir,
    llm,
    conv,
    services,
    sent,
    logs: sink.lines,
    mesh,
    baseUrl,
    ingestUrl: `http://127.0.0.1:${ingest.addr.port}`,
    clock,
    async post(m) {
      const headers: Record<string, string> = {
        "X-Validated-Sender": m.validatedSender ?? m.sender,
        "X-Signal-Sender-Hash": "0".repeat(64),
        "X-Config-Hash": hash,
      };
      if (!m.omitChannel) headers["X-Validated-Channel"] = m.channel;
      const r = await mesh.request("POST", "/api/v1/message/inbound", inboundBody(m), headers);
      const env = r.envelope as { data?: Record<string, unknown>; error?: { code: string } };
      return { status: r.status, data: env.data, code: env.error?.code };
    },
    async settle() {
      for (let i = 0; i < 5; i++) {
        await conv.agent.idle();
        clock.now += 6_000; // past the owner DM cooldown
        await services.outbox.pump();
      }
    },
    async close() {
      await server.shutdown();
      await ingest.shutdown();
      await joi.close();
      await llm.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}
