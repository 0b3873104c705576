/**
 * Signal as people use it, through real processes: joi and the mesh started
 * with their manifest flags (the alarm tests' stack, `tests/alarms/stack.ts`),
 * the signal-cli stand-in on a Unix socket and the Ollama stand-in. What the household sees is what signal-cli is asked to do:
 *
 * - a slow answer (a CPU-bound model) is framed by `sendTyping` start,
 *   refreshes and stop, after a `sendReceipt` for the DM;
 * - in the mention-gated family group an unmentioned line gets no answer and
 *   a line that addresses joi gets one, quoting it (`quoteTimestamp`,
 *   `quoteAuthor`);
 * - a known person writing in a group they are not a member of is dropped at
 *   the mesh (security log) and joi never sees it;
 * - the owner's DM is answered by the model while the family group floods the
 *   LLM budget;
 * - URGENT in the owner's private DM puts no private text in the critical
 *   group, only where to look;
 * - a voice note (real AAC through Debian's ffmpeg, the whisper.cpp stand-in)
 *   is answered in text and then as a spoken Ogg/Opus voice note (the piper
 *   stand-in, ffmpeg); one whisper cannot transcribe gets the architecture's
 *   reply.
 *
 * Runs unprivileged on loopback (about 30 s).
 */
import assert from "node:assert/strict";
import { LlmTestServer } from "../peers/llm_server.ts";
import {
  dataEnvelope,
  dataUriBytes,
  type RecordedRequest,
  SignalCliPeer,
  voiceAttachment,
} from "../peers/signal_cli/peer.ts";
import { makeVoiceNote } from "../peers/signal_cli/voice_note.ts";
import { GROUPS, OWNER, PARTNER } from "../services/mesh/harness.ts";
import { startStack } from "../alarms/stack.ts";
import { logEvents, waitUntil } from "./process.ts";

const SECRET = "the spare key is in the blue flowerpot, alarm code 4711";

/** The Ollama stand-in's answers: slow for "slow", URGENT with a secret for "gas". */
function answer(r: { messages: { content: string }[] }): string {
  const q = r.messages.at(-1)!.content;
  if (q.includes("gas")) return `URGENT: Leave the house now. By the way, ${SECRET}.`;
  if (q.includes("slow")) return "Here is the slow answer.";
  return `answer: ${q}`;
}

const sends = (peer: SignalCliPeer): RecordedRequest[] => peer.calls("send");
const toGroup = (peer: SignalCliPeer, id: string) =>
  sends(peer).filter((s) => s.params.groupId === id);
const toOwner = (peer: SignalCliPeer) =>
  sends(peer).filter((s) => JSON.stringify(s.params.recipient) === JSON.stringify([OWNER.number]));

Deno.test({
  name:
    "e2e Signal: typing around a slow answer, receipts, voice both ways, quotes, mention gating, members only, fair budget, no disclosure",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const llm = await LlmTestServer.start({
      reply: answer,
      delayMs: (r) => (r.messages.at(-1)!.content.includes("slow") ? 3_500 : 0),
    });
    // the shipped policies with a small LLM budget so a flood is quick to show; voice both
    // ways (Debian's ffmpeg, the whisper.cpp and piper stand-ins with their real command lines)
    const stack = await startStack({
      policy: (doc) => doc.setIn(["rate_limits", "llm", "calls_per_hour"], 10),
      voice: true,
      speak: true,
      meshYaml: "presence: { typing_refresh_seconds: 1 }\n",
      llmPort: Number(new URL(llm.origin).port),
    }).catch(async (e) => {
      await llm.close();
      throw e;
    });
    const { dir, peer, attachments, layout } = stack;
    try {
      const until = (what: string, cond: () => boolean | Promise<boolean>) =>
        waitUntil(what, cond, 60_000, [stack.joi, stack.mesh]);
      const joiLog = `${layout.logDir}/joi.log`;
      const meshSecurity = `${layout.logDir}/mesh-security.log`;
      let ts = 5_000;
      const say = (who: typeof OWNER, text: string, groupId?: string) => {
        const t = ++ts;
        peer.push(dataEnvelope({ ...who, timestamp: t, text, ...(groupId ? { groupId } : {}) }));
        return t;
      };

      // 1. a slow answer in the owner's DM: receipt, typing start and refreshes, answer, stop
      const slow = say(OWNER, "a slow question");
      await until("the slow answer", () => toOwner(peer).length === 1);
      await until(
        "typing to stop",
        () => peer.calls("sendTyping").some((c) => c.params.stop === true),
      );
      const methods = peer.requests.map((r) => r.method)
        .filter((m) => ["send", "sendTyping", "sendReceipt"].includes(m));
      const firstSend = methods.indexOf("send");
      const starts = methods.slice(0, firstSend).filter((m) => m === "sendTyping").length;
      assert.ok(starts >= 3, `typing started and refreshed while joi thought (${starts} x)`);
      assert.equal(methods.indexOf("sendTyping", firstSend + 1) > firstSend, true, "stopped after");
      const typing = peer.calls("sendTyping").map((c) => c.params);
      assert.deepEqual(typing[0], { recipient: [OWNER.number], stop: false });
      assert.deepEqual(typing.at(-1), { recipient: [OWNER.number], stop: true });
      assert.deepEqual(peer.calls("sendReceipt")[0]!.params, {
        recipient: OWNER.number,
        targetTimestamp: [slow],
        type: "read",
      });
      assert.equal(toOwner(peer)[0]!.params.message, "Here is the slow answer.");

      // 2. the family group is mention-gated: chatter gets nothing; addressing joi gets a quote
      say(PARTNER, "dinner at seven?", GROUPS.family_group);
      await until(
        "joi to keep the chatter as context",
        () => logEvents(joiLog, "inbound_context").length === 1,
      );
      const asked = say(PARTNER, "Joi, what is on the menu?", GROUPS.family_group);
      await until(
        "the answer in the family group",
        () => toGroup(peer, GROUPS.family_group).length === 1,
      );
      const quoted = toGroup(peer, GROUPS.family_group)[0]!.params;
      assert.equal(quoted.message, "answer: Joi, what is on the menu?");
      assert.equal(quoted.quoteTimestamp, asked);
      assert.equal(quoted.quoteAuthor, PARTNER.number);
      assert.ok(!sends(peer).some((s) => String(s.params.message).includes("dinner")));

      // 3. a household member writing in the critical group (not a member) is dropped at the mesh
      say(PARTNER, "let me in", GROUPS.critical_group);
      await until(
        "the mesh to drop the non-member",
        () => logEvents(meshSecurity, "group_sender_not_member_dropped").length === 1,
      );
      assert.ok(
        !logEvents(joiLog, "inbound_accepted").some((e) => e.channel === "critical_group"),
        "joi never saw it",
      );

      // 4. the family group floods a budget of 10 calls an hour; the owner's DM keeps its share
      for (let i = 0; i < 8; i++) say(PARTNER, `Joi, flood ${i}?`, GROUPS.family_group);
      await until(
        "every flood line to be answered or refused",
        () => toGroup(peer, GROUPS.family_group).length === 9,
      );
      const family = toGroup(peer, GROUPS.family_group).map((s) => String(s.params.message));
      assert.equal(family.filter((t) => t.startsWith("answer:")).length, 5, "its half of 10");
      assert.ok(family.some((t) => t.startsWith("I need a moment")));
      say(OWNER, "are you there?");
      await until("the owner's answer", () => toOwner(peer).length === 2);
      assert.equal(toOwner(peer)[1]!.params.message, "answer: are you there?");

      // 5. URGENT in the owner's private DM: the critical group learns where, never what
      say(OWNER, "I smell gas");
      await until("the urgent notice", () => toGroup(peer, GROUPS.critical_group).length === 1);
      await until("the owner's urgent answer", () => toOwner(peer).length === 3);
      assert.ok(String(toOwner(peer)[2]!.params.message).includes("4711"));
      const notice = String(toGroup(peer, GROUPS.critical_group)[0]!.params.message);
      assert.equal(
        notice,
        "Something urgent was raised in owner's private chat with Joi. Check your DM with Joi.",
      );
      for (const word of ["4711", "flowerpot", "spare key", "Leave"]) {
        assert.ok(!notice.includes(word), `"${word}" stays in the private DM`);
      }

      // 6. voice both ways, in the partner's DM (still under its share of the budget): a note
      //    is answered in text, then spoken
      const toPartner = () =>
        sends(peer).filter((x) =>
          JSON.stringify(x.params.recipient) === JSON.stringify([PARTNER.number])
        );
      const note = async (id: string, marker: string) => {
        const size = await makeVoiceNote(`${attachments}/${id}`, 1, marker);
        peer.push(dataEnvelope({
          ...PARTNER,
          timestamp: ++ts,
          text: null,
          attachments: [voiceAttachment(id, size)],
        }));
      };
      await note("v1", "SAY what time is it");
      await until("the spoken answer", () => toPartner().length === 2);
      const [textReply, spoken] = toPartner().map((x) => x.params);
      assert.equal(textReply!.message, "answer: what time is it");
      assert.equal(spoken!.voiceNote, true);
      const ogg = new TextDecoder("latin1").decode(
        dataUriBytes((spoken!.attachment as string[])[0]!),
      );
      assert.ok(ogg.startsWith("OggS") && ogg.includes("OpusHead"), "an Ogg/Opus voice note");
      assert.equal(
        Deno.readTextFileSync(`${dir}/voice.onnx.spoken`).trim(),
        "answer: what time is it",
      );
      await note("v2", "FAIL");
      await until("the failed transcription's reply", () => toPartner().length === 3);
      assert.equal(
        toPartner()[2]!.params.message,
        "I received your voice message but couldn't transcribe it. Could you send that as text?",
      );
      assert.deepEqual([...Deno.readDirSync(attachments)], [], "the notes were deleted");
    } finally {
      await stack.close();
      await llm.close();
    }
  },
});
