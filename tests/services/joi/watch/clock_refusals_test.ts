/**
 * The clock watch through joi's real signed routes: requests from the mesh
 * whose timestamps are beyond the tolerance are refused (401) by
 * signedRoutes, whose `onTimestamp` hook feeds the clock watch; after
 * `watch.timestamp_refusals.count` of them the owner is told, naming the
 * peer, once.
 */
import assert from "node:assert/strict";
import { loadWireKey, SignedClient } from "../../../../services/common/wire/mod.ts";
import { LINK_PING_PATH } from "../../../../services/common/watch/link_ping.ts";
import { startJoi } from "../inbound/harness.ts";

Deno.test("clock watch (joi's signed routes): a burst of requests refused for their time tells the owner, naming the mesh", async () => {
  const j = await startJoi();
  try {
    // a mesh whose clock is 7 minutes behind joi's (tolerance 5 min)
    const key = await loadWireKey(`${j.dir}/secrets`, "mesh_to_joi");
    const late = new SignedClient({
      baseUrl: j.baseUrl,
      key,
      direction: "mesh_to_joi",
      maxRetries: 0,
      now: () => j.clock.now - 7 * 60_000,
    });
    const refusedOnce = async () => {
      const r = await late.request("POST", LINK_PING_PATH, {}).catch((e) => e);
      assert.equal(r.status, 401, String(r));
    };
    await refusedOnce();
    await refusedOnce();
    await j.settle();
    const told = () =>
      j.sent.filter((m) => m.content.text.startsWith("joi refused") && m.recipient.id === "owner");
    assert.equal(
      told().length,
      0,
      "two refusals are not a burst (watch.timestamp_refusals.count 3)",
    );
    await refusedOnce();
    await refusedOnce();
    await j.settle();
    assert.equal(told().length, 1);
    assert.match(
      told()[0]!.content.text,
      /^joi refused 3 requests from the mesh VM in the last 10 min because their time was 7 min behind joi's clock: messages between joi and Signal are not getting through\./,
    );
    assert.equal(told()[0]!.priority, "critical");
    // the owner's request with a good clock still passes
    const ok = await j.mesh.request("POST", LINK_PING_PATH, {});
    assert.equal(ok.status, 200);
  } finally {
    await j.close();
  }
});
