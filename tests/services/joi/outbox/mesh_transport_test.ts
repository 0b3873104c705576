import assert from "node:assert/strict";
import { httpMeshTransport } from "../../../../services/joi/outbox/mesh_transport.ts";

function recordingFetch(seen: Headers[]): typeof fetch {
  return ((_url: string | URL | Request, init?: RequestInit) => {
    seen.push(new Headers(init?.headers));
    return Promise.resolve(
      new Response(
        JSON.stringify({
          status: "ok",
          request_id: "r",
          timestamp: new Date().toISOString(),
          data: {
            message_id: "m",
            transport: "signal",
            sent_at: new Date().toISOString(),
            delivered: false,
          },
        }),
        { status: 200, headers: { "content-type": "application/json" } },
      ),
    );
  }) as typeof fetch;
}

const body = {
  transport: "signal",
  recipient: { id: "owner" },
  priority: "normal",
  delivery: { target: "direct" },
  content: { type: "text", text: "hi" },
  escalated: false,
  voice_response: false,
} as unknown as Parameters<ReturnType<typeof httpMeshTransport>["send"]>[0];

Deno.test("mesh transport sends the current identities hash as X-Config-Hash (config sync)", async () => {
  const seen: Headers[] = [];
  let hash = "a".repeat(64);
  const t = httpMeshTransport({
    baseUrl: "http://127.0.0.1:1",
    fetch: recordingFetch(seen),
    configHash: () => hash,
  });
  await t.send(body, crypto.randomUUID());
  hash = "b".repeat(64); // a revocation changed the identities: the next request says so
  await t.send(body, crypto.randomUUID());
  assert.deepEqual(seen.map((h) => h.get("x-config-hash")), ["a".repeat(64), "b".repeat(64)]);
});

Deno.test("mesh transport omits X-Config-Hash when joi has no identities hash", async () => {
  const seen: Headers[] = [];
  const t = httpMeshTransport({ baseUrl: "http://127.0.0.1:1", fetch: recordingFetch(seen) });
  await t.send(body, crypto.randomUUID());
  assert.equal(seen[0]!.get("x-config-hash"), null);
});
