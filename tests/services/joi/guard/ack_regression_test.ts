/**
 * Issue 13, breakage 4: "ok" anywhere (the owner writing about dinner in the
 * family group, a voice note transcribed "Okay.") stopped the repeat alerts of
 * every active life-safety alarm. Real joi over HTTP (ingest, guard, inbound
 * app, agent, outbox) with the test clock driving the confirmation loop. The
 * same through the real processes and the mesh's quote/reaction plumbing is in
 * tests/alarms/ack_test.ts.
 */
import assert from "node:assert/strict";
import { inboundBody, type JoiTest, startJoi } from "../inbound/harness.ts";

const MIN = 60_000;

function alerts(j: JoiTest): string[] {
  return j.sent.filter((m) => m.priority === "critical" && m.content.text.includes("ALERT:"))
    .map((m) => m.content.text);
}

async function advance(j: JoiTest, ms: number): Promise<void> {
  j.clock.now += ms;
  j.services.tick(j.clock.now);
  await j.services.outbox.pump();
}

Deno.test("regression 4: ok in the family group, OK in a DM, a voice 'Okay.' and the partner's ok stop no alarm", async () => {
  const j = await startJoi();
  try {
    const r = await fetch(`${j.ingestUrl}/api/v1/openhab/events`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        topic: "openhab/items/Kitchen_Smoke/statechanged",
        payload: JSON.stringify({ type: "OnOff", value: "ON", oldType: "OnOff", oldValue: "OFF" }),
        type: "ItemStateChangedEvent",
      }),
    });
    assert.equal(r.status, 200, await r.text());
    await j.services.outbox.pump();
    assert.equal(alerts(j).length, 1);

    assert.equal(
      (await j.post({ sender: "owner", channel: "family_group", text: "ok" })).status,
      200,
    );
    assert.equal(
      (await j.post({ sender: "owner", channel: "owner_private_dm", text: "OK" })).status,
      200,
    );
    assert.equal(
      (await j.post({ sender: "partner", channel: "critical_group", text: "ok" })).status,
      200,
    );
    const voice = inboundBody({ sender: "owner", channel: "owner_private_dm", text: "" });
    voice.content = {
      type: "voice",
      voice_transcription: "Okay.",
      voice_transcription_failed: false,
      voice_duration_ms: 900,
    };
    const v = await j.mesh.request("POST", "/api/v1/message/inbound", voice, {
      "X-Validated-Channel": "owner_private_dm",
      "X-Validated-Sender": "owner",
      "X-Signal-Sender-Hash": "0".repeat(64),
    });
    assert.equal(v.status, 200);
    await j.conv.agent.idle();
    assert.ok(!j.sent.some((m) => m.content.text.startsWith("Acknowledged")));

    await advance(j, 5 * MIN);
    assert.equal(alerts(j).length, 2, "the repeat alert still comes");
    assert.match(alerts(j)[1]!, /Alert 2 of 3/);

    // the owner's reply in the critical group does stop it
    assert.equal(
      (await j.post({ sender: "owner", channel: "critical_group", text: "ok" })).status,
      200,
    );
    await j.conv.agent.idle();
    await j.services.outbox.pump();
    assert.ok(
      j.sent.some((m) => m.content.text.startsWith("Acknowledged alarm: Smoke at Kitchen_Smoke")),
    );
    await advance(j, 10 * MIN);
    assert.equal(alerts(j).length, 2, "no alert 3 after the acknowledgement");
  } finally {
    await j.close();
  }
});
