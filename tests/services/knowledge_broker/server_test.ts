import assert from "node:assert/strict";
import { createLogger, memorySink } from "../../../services/common/log.ts";
import { denoRunArgs, localLayout, programSpec } from "../../../services/common/permissions/mod.ts";
import { socketSlot } from "../../_helpers/sockets.ts";
import type { RetrieveOutcome } from "../../../services/joi/knowledge/caller.ts";
import { KnowledgeClient } from "../../../services/joi/knowledge/broker_client.ts";
import { type Retriever, serveKnowledge } from "../../../services/knowledge_broker/server.ts";

const ROOT = new URL("../../../", import.meta.url).pathname;
const SOCK = socketSlot(12);

const ok = (title: string): RetrieveOutcome => ({
  status: "ok",
  truncated: false,
  results: [{
    id: "0b7e1c52-6d1e-4c3a-9f3e-2a1b3c4d5e6f",
    title,
    snippet: "s",
    source: "shared/common/a.md",
    accessed_as: "joi-family",
    category: "general",
    updated_at: "2026-11-22T00:00:00.000Z",
    folder: "shared/common",
  }],
});

async function rawExchange(line: string): Promise<string> {
  const conn = await Deno.connect({ transport: "unix", path: SOCK });
  try {
    await conn.write(new TextEncoder().encode(line));
    const buf = new Uint8Array(65536);
    let text = "";
    while (!text.includes("\n")) {
      const n = await conn.read(buf);
      if (n === null) break;
      text += new TextDecoder().decode(buf.subarray(0, n));
    }
    return text.trim();
  } finally {
    conn.close();
  }
}

Deno.test("broker answers requests by id, refuses malformed and oversized lines", async () => {
  const sink = memorySink();
  const seen: unknown[] = [];
  const retriever: Retriever = {
    retrieve(channel, type, query) {
      seen.push({ channel, type, query });
      return Promise.resolve(ok(`for ${channel}`));
    },
  };
  const server = await serveKnowledge({
    socketPath: SOCK,
    retriever: () => retriever,
    logger: createLogger("knowledge", { quiet: true, sinks: [sink] }),
  });
  try {
    const client = new KnowledgeClient({ socketPath: SOCK });
    const r = await client.retrieve("family_group", "search", { q: "boiler", limit: 3 });
    assert.equal(r.status, "ok");
    assert.equal(r.status === "ok" && r.results[0]!.title, "for family_group");
    assert.deepEqual(seen, [{
      channel: "family_group",
      type: "search",
      query: { q: "boiler", limit: 3 },
    }]);

    for (
      const bad of [
        "not json\n",
        '{"id":1}\n',
        '{"id":1,"channel":"Family Group","type":"search","query":{}}\n',
        '{"id":1,"channel":"family_group","type":"search","query":{},"path":"/etc/shadow"}\n',
      ]
    ) {
      const answer = JSON.parse(await rawExchange(bad));
      assert.deepEqual(answer, {
        id: null,
        outcome: { status: "error", results: [], reason: "invalid_query" },
      }, bad);
    }
    const huge = JSON.parse(await rawExchange("x".repeat(20_000)));
    assert.equal(huge.outcome.reason, "invalid_query");
    assert.equal(seen.length, 1, "no malformed request reached the retriever");
    assert.ok(
      sink.lines.some((l) => l.event === "knowledge_request_too_large" && l.level === "security"),
    );
  } finally {
    await server.close();
  }
});

Deno.test("broker runs at most maxConcurrent retrievals at once", async () => {
  let inFlight = 0;
  let peak = 0;
  const retriever: Retriever = {
    async retrieve() {
      inFlight++;
      peak = Math.max(peak, inFlight);
      await new Promise((r) => setTimeout(r, 30));
      inFlight--;
      return ok("x");
    },
  };
  const server = await serveKnowledge({
    socketPath: SOCK,
    retriever: () => retriever,
    logger: createLogger("knowledge", { quiet: true }),
    maxConcurrent: 2,
  });
  try {
    const client = new KnowledgeClient({ socketPath: SOCK });
    const all = await Promise.all(
      Array.from(
        { length: 8 },
        () => client.retrieve("owner_private_dm", "list", { category: "general" }),
      ),
    );
    assert.ok(all.every((r) => r.status === "ok"));
    assert.equal(peak, 2);
  } finally {
    await server.close();
  }
});

Deno.test("client: a missing broker, a stalled one and a garbage answer are error outcomes", async () => {
  const client = new KnowledgeClient({ socketPath: SOCK, timeoutMs: 200 });
  try {
    await Deno.remove(SOCK);
  } catch { /* absent */ }
  assert.deepEqual(await client.retrieve("family_group", "search", { q: "x" }), {
    status: "error",
    results: [],
    reason: "failed",
  });

  const stall = Deno.listen({ transport: "unix", path: SOCK });
  const held: Deno.Conn[] = [];
  (async () => {
    for await (const c of stall) held.push(c);
  })();
  assert.deepEqual(await client.retrieve("family_group", "search", { q: "x" }), {
    status: "error",
    results: [],
    reason: "timeout",
  });
  for (const c of held) c.close();
  stall.close();
  await Deno.remove(SOCK).catch(() => {}); // Deno unlinks a closed listener's socket

  const liar = Deno.listen({ transport: "unix", path: SOCK });
  (async () => {
    for await (const c of liar) {
      await c.write(
        new TextEncoder().encode('{"id":999,"outcome":{"status":"ok","results":[]}}\n'),
      );
      c.close();
    }
  })();
  assert.deepEqual(await client.retrieve("family_group", "search", { q: "x" }), {
    status: "error",
    results: [],
    reason: "invalid_output",
  });
  liar.close();
});

Deno.test("broker process: manifest flags, default deny, reload when channel_users.yaml changes", async () => {
  const varDir = await Deno.makeTempDir({ prefix: "joi-kb-" });
  const configDir = `${varDir}/policies`;
  await Deno.mkdir(configDir);
  for (const f of Deno.readDirSync(`${ROOT}policies`)) {
    await Deno.copyFile(`${ROOT}policies/${f.name}`, `${configDir}/${f.name}`);
  }
  await Deno.mkdir(`${varDir}/log`);
  const layout = { ...localLayout({ varDir }), joiConfigDir: configDir, knowledgeSocket: SOCK };
  const [run, ...rest] = denoRunArgs(programSpec("knowledge", layout));
  const child = new Deno.Command("deno", {
    args: [run, "--frozen", ...rest],
    cwd: ROOT,
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const logs: string[] = [];
  const pump = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      logs.push(...chunk.split("\n"));
    }
  })();
  try {
    const until = async (f: () => boolean) => {
      for (let i = 0; i < 300 && !f(); i++) await new Promise((r) => setTimeout(r, 20));
      assert.ok(f(), logs.join("\n"));
    };
    await until(() => logs.some((l) => l.includes("knowledge_broker_listening")));
    const client = new KnowledgeClient({ socketPath: SOCK });
    const denied = await client.retrieve("burglar_dm", "search", { q: "keys" });
    assert.deepEqual(denied, { status: "error", results: [], reason: "denied" });
    await until(() => logs.some((l) => l.includes('"channel not in allowed_channel_users"')));

    // A broken channel file is refused (old config kept); a valid edit is applied.
    await Deno.writeTextFile(`${configDir}/channel_users.yaml`, "allowed_channel_users: [oops\n");
    await client.retrieve("family_group", "search", { q: "x" });
    await until(() => logs.some((l) => l.includes("knowledge_config_refused")));
    child.kill("SIGHUP");
    const text = await Deno.readTextFile(`${ROOT}policies/channel_users.yaml`);
    await Deno.writeTextFile(`${configDir}/channel_users.yaml`, text);
    await client.retrieve("family_group", "search", { q: "x" });
    await until(() => logs.some((l) => l.includes("knowledge_config_reloaded")));
  } finally {
    child.kill("SIGTERM");
    await child.status;
    await pump;
    await Deno.remove(varDir, { recursive: true });
  }
});
