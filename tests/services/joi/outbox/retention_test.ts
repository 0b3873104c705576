/**
 * What joi said in a channel is kept no longer than that channel's memory
 * (`memory.retention_days`): joi's daily retention run deletes finished
 * outbox rows past it, keeps younger ones, other channels' and anything still
 * queued.
 */
import assert from "node:assert/strict";
import { startJoi } from "../inbound/harness.ts";

const DAY = 86_400_000;

function count(j: Awaited<ReturnType<typeof startJoi>>, channel: string, status?: string): number {
  const sql = status === undefined
    ? "SELECT count(*) AS n FROM outbox WHERE channel = ?"
    : "SELECT count(*) AS n FROM outbox WHERE channel = ? AND status = ?";
  const args = status === undefined ? [channel] : [channel, status];
  const row = j.services.db.prepare(sql).get(...args) as { n: number };
  return Number(row.n);
}

Deno.test("outbox retention: a channel's finished messages go with its memory retention; queued ones stay", async () => {
  const j = await startJoi({ llm: { reply: () => "Dinner is at seven." } });
  try {
    // family_group keeps 90 days, owner_private_dm 365 (policies/policy.yaml)
    const retention = j.services.config.current().policies.policy.memory.retention_days;
    assert.equal(retention["family_group"], 90);
    assert.equal(retention["owner_private_dm"], 365);
    await j.post({ sender: "partner", channel: "family_group", text: "joi, when is dinner?" });
    await j.post({ sender: "owner", channel: "owner_private_dm", text: "when is dinner?" });
    await j.settle();
    assert.equal(count(j, "family_group", "sent"), 1);
    assert.equal(count(j, "owner_private_dm", "sent"), 1);
    j.clock.now += 91 * DAY;
    // a message that is still waiting for the mesh is never deleted, however old
    j.services.outbox.store.insert({
      channel: "family_group",
      recipient: "family_group",
      text: "still waiting",
      priority: "normal",
      kind: "reply",
      createdAt: j.clock.now - 200 * DAY,
      ttlMs: null,
      template: false,
      replyTo: null,
      conversationId: null,
      voiceResponse: false,
    }, j.clock.now + DAY);
    j.services.start({ tickMs: 3_600_000 }); // the retention run is part of start, then daily
    await waitFor(() => j.logs.some((l) => l.event === "outbox_pruned"));
    const line = j.logs.find((l) => l.event === "outbox_pruned")!;
    assert.deepEqual((line.deleted as Record<string, number>)["family_group"], 1);
    assert.equal(count(j, "family_group", "sent"), 0, "91 days > family_group's 90");
    assert.equal(count(j, "family_group", "queued"), 1, "queued: kept");
    assert.equal(count(j, "owner_private_dm", "sent"), 1, "91 days < owner_private_dm's 365");
  } finally {
    await j.close();
  }
});

async function waitFor(ok: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !ok(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(ok(), "timed out");
}
