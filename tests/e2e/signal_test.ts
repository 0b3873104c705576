/**
 * Signal as people use it, through real processes: joi and the mesh started
 * with their manifest flags, the signal-cli stand-in on a Unix socket and the
 * Ollama stand-in. What the household sees is what signal-cli is asked to do:
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
import {
  denoRunArgs,
  type Layout,
  localLayout,
  programSpec,
} from "../../services/common/permissions/mod.ts";
import { generateMemoryKeyFile } from "../../services/joi/memory/crypto.ts";
import { LlmTestServer } from "../peers/llm_server.ts";
import {
  dataEnvelope,
  dataUriBytes,
  type RecordedRequest,
  SignalCliPeer,
  voiceAttachment,
} from "../peers/signal_cli/peer.ts";
import { FFMPEG, makeVoiceNote } from "../peers/signal_cli/voice_note.ts";
import {
  claimSocket,
  expectedGroups,
  FAST_MESH_YAML,
  freePort,
  GROUPS,
  makeKeys,
  meshHealth,
  OWNER,
  PARTNER,
  writeConfigDir,
} from "../services/mesh/harness.ts";
import { Child, logEvents, waitUntil } from "./process.ts";

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
    const dir = await Deno.makeTempDir({ prefix: "joi-e2e-signal-" });
    const sock = await claimSocket();
    const llm = await LlmTestServer.start({
      reply: answer,
      delayMs: (r) => (r.messages.at(-1)!.content.includes("slow") ? 3_500 : 0),
    });
    const peer = SignalCliPeer.start({ path: sock.path });
    peer.groups = expectedGroups();
    const children: Child[] = [];
    try {
      await makeKeys(`${dir}/secrets`);
      await generateMemoryKeyFile(`${dir}/secrets/memory.key`);
      // joi's policies: the shipped ones, with a small LLM budget so a flood is quick to show
      await Deno.mkdir(`${dir}/joi-config`);
      for await (const e of Deno.readDir("policies")) {
        if (e.isFile) await Deno.copyFile(`policies/${e.name}`, `${dir}/joi-config/${e.name}`);
      }
      const policy = `${dir}/joi-config/policy.yaml`;
      Deno.writeTextFileSync(
        policy,
        Deno.readTextFileSync(policy).replace("calls_per_hour: 120", "calls_per_hour: 10"),
      );
      // voice: Debian's ffmpeg, the whisper.cpp and piper stand-ins (their real command lines)
      const bin = Deno.realPathSync("tests/peers/signal_cli/bin");
      const attachments = `${dir}/signal-cli/attachments`;
      await Deno.mkdir(attachments, { recursive: true });
      for (const f of ["ggml-medium.bin", "en_US-lessac-medium.onnx"]) {
        await Deno.writeTextFile(`${dir}/${f}`, "model");
      }
      const voice = {
        whisper: { bin: `${bin}/whisper-cli`, model: `${dir}/ggml-medium.bin` },
        ffmpeg: { bin: FFMPEG },
        piper: { bin: `${bin}/piper`, voices: { en: `${dir}/en_US-lessac-medium.onnx` } },
      };
      await writeConfigDir(
        `${dir}/mesh-config`,
        `${FAST_MESH_YAML}presence: { typing_refresh_seconds: 1 }\nvoice: ${
          JSON.stringify(voice)
        }\n`,
      );
      const layout: Layout = {
        ...localLayout({ varDir: dir }),
        joiConfigDir: `${dir}/joi-config`,
        joiStateDir: `${dir}/joi`,
        meshConfigDir: `${dir}/mesh-config`,
        meshStateDir: `${dir}/mesh`,
        logDir: `${dir}/log`,
        secretsDir: () => `${dir}/secrets`,
        joiInbound: { host: "127.0.0.1", port: freePort() },
        joiIngest: { host: "127.0.0.1", port: freePort() },
        meshOutbound: { host: "127.0.0.1", port: freePort() },
        llm: { host: "127.0.0.1", port: Number(new URL(llm.origin).port) },
        signal: { kind: "socket", path: sock.path },
        signalAttachmentsDir: attachments,
        meshVoice: { whisperBin: voice.whisper.bin, ffmpegBin: FFMPEG, piperBin: voice.piper.bin },
        knowledgeSocket: `${dir}/knowledge.sock`,
      };
      for (const name of ["joi", "mesh"] as const) {
        children.push(
          new Child(name, "deno", denoRunArgs(programSpec(name, layout)), {
            env: { NO_COLOR: "1" },
          }),
        );
      }
      const until = (what: string, cond: () => boolean | Promise<boolean>) =>
        waitUntil(what, cond, 60_000, children);
      await until(
        "joi to listen",
        async () => (await meshHealth(layout.joiInbound.port)) !== null,
      );
      await until("the mesh to reach signal-cli", async () => {
        const m = await meshHealth(layout.meshOutbound.port);
        return (m?.signal as { state?: string } | undefined)?.state === "connected";
      });
      const joiLog = `${dir}/log/joi.log`;
      const meshSecurity = `${dir}/log/mesh-security.log`;
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
        Deno.readTextFileSync(`${dir}/en_US-lessac-medium.onnx.spoken`).trim(),
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
      await Promise.all(children.map((c) => c.stop("SIGTERM")));
      await peer.stop();
      await llm.close();
      sock.release();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
