/**
 * Acknowledgement that means it, through the real relay, joi and mesh
 * processes and the signal-cli stand-in (issue 13, breakage 4: any "ok"
 * anywhere used to stop every active alarm):
 *
 * - "ok" in the family group, "ok" in the owner's DM and a voice note
 *   transcribed "Okay." in the DM acknowledge nothing;
 * - a quote-reply of an alert in the critical group acknowledges exactly that
 *   alarm, a 👍 reaction to an alert exactly that one, "ok 👍" typed in the
 *   critical group the rest; each answer names the alarms (device and time).
 *
 * The mesh maps the quoted or reacted-to Signal timestamp back to joi's id of
 * the alert it sent; joi's `/health` shows how many alarms still alert.
 */
import assert from "node:assert/strict";
import { stateChanged } from "../peers/openhab_sse.ts";
import { dataEnvelope, voiceAttachment } from "../peers/signal_cli/peer.ts";
import { makeVoiceNote } from "../peers/signal_cli/voice_note.ts";
import { GROUPS, OWNER } from "../services/mesh/harness.ts";
import { type Stack, startStack } from "./stack.ts";

async function until(pred: () => boolean | Promise<boolean>, what: string, limitMs = 30_000) {
  const end = Date.now() + limitMs;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Alarms joi still alerts about (active, unacknowledged), from its /health. */
async function alerting(s: Stack): Promise<number> {
  const r = await fetch(`http://127.0.0.1:${s.layout.joiIngest.port}/health`);
  const body = await r.json();
  return (body.data.devices as { alerting: number }).alerting;
}

/** Messages joi took from the mesh so far (to answer, or as a group's context only). */
function accepted(s: Stack): number {
  return s.logs("joi").filter((l) =>
    l.event === "inbound_accepted" || l.event === "inbound_context"
  ).length;
}

/** Sends to the critical group whose text starts with `prefix`. */
function critical(s: Stack, prefix: string) {
  return s.criticalSends().filter((r) => String(r.params.message).startsWith(prefix));
}

Deno.test({
  name: "acknowledgement: ok in the family group or DM and a voice 'Okay.' do not ack; " +
    "a quote-reply and a 👍 of an alert do, each only its alarm",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const s = await startStack({ voice: true });
    let ts = 1_800_000_000_000;
    const say = async (envelope: Record<string, unknown>) => {
      const before = accepted(s);
      s.peer.push(envelope);
      await until(
        () => accepted(s) > before,
        `joi to accept ${JSON.stringify(envelope).slice(0, 300)}; mesh: ${
          s.logs("mesh").filter((l) => String(l.event).startsWith("signal_")).slice(-6)
            .map((l) => JSON.stringify(l)).join("\n")
        }`,
      );
    };
    try {
      for (const device of ["Kitchen_Smoke", "Garage_CO_Detector", "Bath_WaterLeak"]) {
        s.push(stateChanged(device, "OnOff", "ON", { oldValue: "OFF" }));
      }
      await until(() => critical(s, "ALERT:").length === 3, "three alerts");
      await until(async () => (await alerting(s)) === 3, "three alarms alerting");
      const alertOf = (device: string) =>
        critical(s, "ALERT:").find((r) => String(r.params.message).includes(`by ${device} `))!;
      const stampOf = (device: string) =>
        (alertOf(device).result as { timestamp: number }).timestamp;
      /** The owner's reaction in the critical group to the message joi sent at `target`. */
      const react = (emoji: string, target: number) =>
        dataEnvelope({
          ...OWNER,
          timestamp: ++ts,
          groupId: GROUPS.critical_group,
          reaction: {
            emoji,
            author: { number: s.peer.account, uuid: s.peer.accountUuid },
            targetSentTimestamp: target,
          },
        });

      // not acknowledgements: the family group, the DM, a voice note
      await say(
        dataEnvelope({ ...OWNER, timestamp: ++ts, text: "ok", groupId: GROUPS.family_group }),
      );
      await say(dataEnvelope({ ...OWNER, timestamp: ++ts, text: "ok" }));
      const size = await makeVoiceNote(`${s.attachments}/voice1`, 1, "SAY Okay.");
      await say(dataEnvelope({
        ...OWNER,
        timestamp: ++ts,
        attachments: [voiceAttachment("voice1", size)],
      }));
      assert.ok(
        s.logs("joi").some((l) =>
          l.event === "inbound_accepted" && l.content_type === "voice" &&
          l.channel === "owner_private_dm"
        ),
        "the voice note reached joi",
      );
      assert.equal(await alerting(s), 3, "nothing was acknowledged");
      assert.equal(critical(s, "Acknowledged").length, 0);

      // a quote-reply of the smoke alert: that alarm only
      await say(dataEnvelope({
        ...OWNER,
        timestamp: ++ts,
        text: "on my way",
        groupId: GROUPS.critical_group,
        quote: {
          id: stampOf("Kitchen_Smoke"),
          author: { number: s.peer.account, uuid: s.peer.accountUuid },
          text: "ALERT: Smoke by Kitchen_Smoke",
        },
      }));
      await until(() => critical(s, "Acknowledged").length === 1, "the quote's acknowledgement");
      assert.match(
        String(critical(s, "Acknowledged")[0]!.params.message),
        /^Acknowledged alarm: Smoke at Kitchen_Smoke \(raised at \d\d:\d\d\)/,
      );
      assert.equal(await alerting(s), 2);

      // a 👍 reaction to the CO alert: that alarm only
      await say(react("👍🏽", stampOf("Garage_CO_Detector")));
      await until(() => critical(s, "Acknowledged").length === 2, "the reaction's acknowledgement");
      assert.match(
        String(critical(s, "Acknowledged")[1]!.params.message),
        /^Acknowledged alarm: Carbon monoxide at Garage_CO_Detector \(raised /,
      );
      assert.equal(await alerting(s), 1);

      // a reaction to something that is not an alert acknowledges nothing
      await say(react("👍", 1_234));
      assert.equal(await alerting(s), 1);

      // "ok 👍" typed in the critical group: the rest
      await say(dataEnvelope({
        ...OWNER,
        timestamp: ++ts,
        text: "ok 👍",
        groupId: GROUPS.critical_group,
      }));
      await until(() => critical(s, "Acknowledged").length === 3, "the words' acknowledgement");
      assert.match(
        String(critical(s, "Acknowledged")[2]!.params.message),
        /^Acknowledged alarm: Water leak at Bath_WaterLeak \(raised /,
      );
      assert.equal(await alerting(s), 0);
    } finally {
      await s.close();
    }
  },
});
