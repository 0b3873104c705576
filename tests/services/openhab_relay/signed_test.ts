/**
 * openHAB -> joi signatures: with the openhab_to_joi key provisioned (as in
 * production), joi's ingest accepts only events the relay signed; the same
 * request replayed is refused; a relay without the key is refused.
 */
import assert from "node:assert/strict";
import { signedHeaders } from "../../../services/common/wire/sign.ts";
import { importWireKey } from "../../../services/common/wire/keys.ts";
import { itemChange, startOpenhabSse } from "../../peers/openhab_sse.ts";
import { randomKeyBytes } from "../../peers/mesh_peer.ts";
import { startHarness } from "../joi/harness.ts";
import { relayFor, until } from "./relay_helpers.ts";

const TOKEN = "oh.test-token-0123456789";

Deno.test("signed ingest: the relay's signed smoke alarm gets through; unsigned and replayed posts do not", async () => {
  const ingestKeyBytes = randomKeyBytes();
  const h = await startHarness({ ingestKeyBytes, clock: { t: Date.now() } });
  const sse = startOpenhabSse(TOKEN);
  const signed = relayFor(sse.url, h.url, TOKEN, {
    signingKey: await importWireKey(ingestKeyBytes, "openhab_to_joi"),
  });
  try {
    // an unsigned contract-format event: refused before it is handled
    const body = {
      event_id: crypto.randomUUID(),
      event_type: "alert",
      timestamp: Date.now(),
      source: "openhab.homelab.example",
      priority: "high",
      data: { alert_type: "smoke", title: "Smoke", message: "kitchen" },
    };
    const unsigned = await h.post("/api/v1/openhab/alert", body);
    assert.equal(unsigned.status, 401);
    assert.equal((unsigned.json.error as { code: string }).code, "auth_failed");

    // the relay signs: its smoke alarm reaches the critical group
    const running = signed.relay.run();
    await sse.waitConnections(1);
    for (const ev of itemChange("Kitchen_Smoke", "OnOff", "ON", "OFF")) sse.push(ev);
    await until(() => signed.relay.stats.forwarded > 0, "the relay to forward");
    await h.settle();
    await until(() => h.mesh.received.some((m) => m.body.priority === "critical"), "the alert");

    // a correctly signed request, replayed byte for byte, is refused
    const raw = new TextEncoder().encode(
      JSON.stringify({ ...body, event_id: crypto.randomUUID() }),
    );
    const { headers } = signedHeaders({
      key: (await importWireKey(ingestKeyBytes, "openhab_to_joi")).request,
      direction: "openhab_to_joi",
      method: "POST",
      path: "/api/v1/openhab/alert",
      body: raw,
      headers: { "content-type": "application/json", "x-request-id": crypto.randomUUID() },
    });
    const first = await fetch(`${h.url}/api/v1/openhab/alert`, {
      method: "POST",
      headers,
      body: raw,
    });
    await first.body?.cancel();
    const again = await fetch(`${h.url}/api/v1/openhab/alert`, {
      method: "POST",
      headers,
      body: raw,
    });
    await again.body?.cancel();
    assert.deepEqual([first.status, again.status], [200, 409]);

    // signed with the mesh's key (another direction): refused
    const wrong = signedHeaders({
      key: (await importWireKey(h.keyBytes, "joi_to_mesh")).request,
      direction: "joi_to_mesh",
      method: "POST",
      path: "/api/v1/openhab/alert",
      body: raw,
      headers: { "content-type": "application/json", "x-request-id": crypto.randomUUID() },
    }).headers;
    const other = await fetch(`${h.url}/api/v1/openhab/alert`, {
      method: "POST",
      headers: wrong,
      body: raw,
    });
    await other.body?.cancel();
    assert.equal(other.status, 401);
    signed.relay.stop();
    await running;
  } finally {
    await sse.close();
    await h.close();
  }
});

Deno.test("signed ingest: a relay without the key is refused and says so", async () => {
  const h = await startHarness({ ingestKeyBytes: randomKeyBytes(), clock: { t: Date.now() } });
  const sse = startOpenhabSse(TOKEN);
  const plain = relayFor(sse.url, h.url, TOKEN);
  try {
    const running = plain.relay.run();
    await sse.waitConnections(1);
    for (const ev of itemChange("Hall_Motion", "OnOff", "ON", "OFF")) sse.push(ev);
    await until(() => plain.logs.some((l) => l.event === "relay_batch_refused"), "the refusal");
    assert.equal(plain.logs.find((l) => l.event === "relay_batch_refused")?.status, 401);
    assert.equal(plain.relay.stats.forwarded, 0);
    plain.relay.stop();
    await running;
  } finally {
    await sse.close();
    await h.close();
  }
});
