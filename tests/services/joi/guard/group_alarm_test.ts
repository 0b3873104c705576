/**
 * One physical device, one alarm: a smoke detector that is a member of an
 * openHAB group item produces its own ItemStateChangedEvent and the group's
 * GroupItemStateChangedEvent (`openhab/items/<group>/<member>/statechanged`).
 * They used to raise two confirmation loops (double alerts, an inflated
 * acknowledgement count).
 */
import assert from "node:assert/strict";
import { stateChanged } from "../../../peers/openhab_sse.ts";
import { busBatch, criticalTexts, type Harness, startHarness } from "../harness.ts";

const MIN = 60_000;

const own = (item: string, value = "ON") => stateChanged(item, "OnOff", value);
const viaGroup = (group: string, item: string, value = "ON") =>
  stateChanged(item, "OnOff", value, { group });

async function post(h: Harness, events: unknown[]) {
  const r = await h.post("/api/v1/openhab/events", busBatch(events, h.now()));
  assert.equal(r.status, 200, JSON.stringify(r.json));
  assert.deepEqual((r.json.data as { refused: unknown[] }).refused, []);
  await h.settle();
}

for (
  const [name, order] of [
    ["member first", (g: string, m: string) => [own(m), viaGroup(g, m)]],
    ["group first", (g: string, m: string) => [viaGroup(g, m), own(m)]],
  ] as const
) {
  Deno.test(`group item: a member and its group are one alarm (${name}, same and separate batches)`, async () => {
    const h = await startHarness();
    try {
      await post(h, order("gSmoke", "Kitchen_Smoke"));
      const [a, b] = order("gSmoke", "Hall_Smoke");
      await post(h, [a]);
      await post(h, [b]);
      const texts = criticalTexts(h.mesh);
      assert.equal(texts.length, 2, texts.join("\n"));
      assert.equal(texts.filter((t) => t.includes("by Kitchen_Smoke ")).length, 1);
      assert.equal(texts.filter((t) => t.includes("by Hall_Smoke ")).length, 1);
      assert.equal(h.services.guard.device("gSmoke"), undefined, "the group is no device");
      await h.advance(5 * MIN);
      assert.equal(criticalTexts(h.mesh).length, 4, "one second alert per device");
      const acked = h.services.acknowledge({
        channel: "critical_group",
        sender: "owner",
        text: "ok",
        voice: false,
      });
      assert.deepEqual(acked.map((x) => x.device).sort(), ["Hall_Smoke", "Kitchen_Smoke"]);
    } finally {
      await h.close();
    }
  });
}

Deno.test("group item: a member whose name tells no class alarms through its smoke group, once", async () => {
  const h = await startHarness();
  try {
    // its own event first: a plain switch as far as its name goes
    await post(h, [own("Kitchen_Detector")]);
    assert.equal(criticalTexts(h.mesh).length, 0);
    await post(h, [viaGroup("gSmokeDetectors", "Kitchen_Detector")]);
    await post(h, [own("Kitchen_Detector")]);
    const texts = criticalTexts(h.mesh);
    assert.equal(texts.length, 1, texts.join("\n"));
    assert.match(texts[0]!, /^ALERT: Smoke by Kitchen_Detector \(state ON\)/);
    // the class learned from the group sticks: the member's own clear clears it
    await post(h, [own("Kitchen_Detector", "OFF")]);
    assert.equal(h.services.guard.device("Kitchen_Detector")?.alerting, false);
  } finally {
    await h.close();
  }
});

Deno.test("group item: a group alarm whose members are unknown alerts once, and covers them later", async () => {
  const h = await startHarness();
  try {
    await post(h, [own("gSmoke")]);
    assert.equal(criticalTexts(h.mesh).length, 1, "the group's own event alerts");
    await post(h, [own("gSmoke")]);
    assert.equal(criticalTexts(h.mesh).length, 1, "its repeat does not");
    // now a member reports through the group: the same fire, no second loop
    await post(h, [viaGroup("gSmoke", "Attic_Detector")]);
    await post(h, [own("Attic_Detector")]);
    assert.equal(criticalTexts(h.mesh).length, 1, criticalTexts(h.mesh).join("\n"));
  } finally {
    await h.close();
  }
});
