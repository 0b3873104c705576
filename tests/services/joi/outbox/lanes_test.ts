/**
 * The outbox's two lanes: a critical alert is handed to the mesh while an
 * ordinary message's send is still in flight (a slow signal-cli answer to a
 * family reply can never hold an alarm back).
 */
import assert from "node:assert/strict";
import { openDb } from "../../../../services/common/db.ts";
import { LocalTime } from "../../../../services/common/local_time.ts";
import { createLogger } from "../../../../services/common/log.ts";
import { householdRoles } from "../../../../services/common/policy/household.ts";
import { loadPolicies } from "../../../../services/common/policy/mod.ts";
import type { MeshOutboundBody } from "../../../../services/joi/outbox/message.ts";
import { Outbox } from "../../../../services/joi/outbox/outbox.ts";

Deno.test("outbox: a critical alert overtakes an ordinary send still in flight", async () => {
  const policies = loadPolicies("policies");
  const db = openDb(":memory:");
  const handed: string[] = [];
  let release!: () => void;
  const slow = new Promise<void>((r) => (release = r));
  const outbox = new Outbox({
    db,
    policy: policies.policy,
    roles: householdRoles(policies.recipients),
    time: new LocalTime("UTC"),
    log: createLogger("outbox-test", { quiet: true }),
    transport: {
      async send(body: MeshOutboundBody) {
        handed.push(body.content.text);
        if (body.priority !== "critical") await slow; // signal-cli takes its time
        return { ok: true };
      },
    },
  });
  try {
    outbox.enqueue({
      channel: "family_group",
      text: "Dinner is at 7.",
      priority: "normal",
      kind: "reply",
    });
    const ordinary = outbox.pump();
    await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(handed, ["Dinner is at 7."], "the ordinary send is in flight");
    outbox.enqueue({
      channel: "critical_group",
      text: "ALERT: Smoke by Kitchen_Smoke",
      priority: "critical",
      kind: "event_critical",
      template: true,
    });
    outbox.kick(); // pump() would also wait for the ordinary lane, still held
    for (let i = 0; i < 500 && handed.length < 2; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.deepEqual(handed, ["Dinner is at 7.", "ALERT: Smoke by Kitchen_Smoke"]);
    release();
    await ordinary;
    assert.equal(outbox.store.depth().queued, 0);
  } finally {
    release();
    db.close();
  }
});
