import assert from "node:assert/strict";
import fc from "fast-check";
import { isVoiceNote, parseNotification } from "../../../../services/mesh/signal/envelope.ts";
import {
  dataEnvelope,
  receiptEnvelope,
  syncEnvelope,
  typingEnvelope,
  voiceAttachment,
} from "../../../peers/signal_cli/peer.ts";
import { OWNER } from "../harness.ts";

const recv = (envelope: unknown, extra: Record<string, unknown> = {}) =>
  parseNotification("receive", { envelope, account: "+1", ...extra });

Deno.test("parseNotification never throws, whatever signal-cli (or an attacker on the socket) sends", () => {
  fc.assert(
    fc.property(fc.string(), fc.jsonValue(), (method, params) => {
      const r = parseNotification(method, params);
      assert.ok(["message", "ignored", "exception", "malformed"].includes(r.kind));
    }),
    { numRuns: 2000 },
  );
  fc.assert(
    fc.property(fc.dictionary(fc.string(), fc.jsonValue()), (envelope) => {
      recv(envelope);
      recv({ ...envelope, dataMessage: envelope });
    }),
    { numRuns: 2000 },
  );
});

Deno.test("non-conversation envelopes are ignored; exception-only is an exception", () => {
  const base = { ...OWNER, timestamp: 5 };
  assert.equal(recv(receiptEnvelope(base)).kind, "ignored");
  assert.equal(recv(typingEnvelope(base)).kind, "ignored");
  assert.equal(recv(syncEnvelope(base)).kind, "ignored");
  assert.equal(
    recv({ ...receiptEnvelope(base), receiptMessage: undefined, storyMessage: {} }).kind,
    "ignored",
  );
  const e = parseNotification("receive", {
    account: "+1",
    exception: { message: "m", type: "UntrustedIdentityException" },
  });
  assert.deepEqual(e, { kind: "exception", type: "UntrustedIdentityException", message: "m" });
  // empty text, no attachment: not conversation
  assert.equal(recv(dataEnvelope({ ...base, text: null })).kind, "ignored");
});

Deno.test("data messages: null sourceNumber, groups, voice notes", () => {
  const m = recv(dataEnvelope({ number: null, uuid: OWNER.uuid, timestamp: 9, text: "hi" }));
  assert.equal(m.kind, "message");
  if (m.kind !== "message") return;
  assert.equal(m.senderNumber, null);
  assert.equal(m.senderUuid, OWNER.uuid);
  assert.equal(m.groupId, null);
  const g = recv(dataEnvelope({ ...OWNER, timestamp: 9, text: "x", groupId: "QUJD" }));
  assert.equal(g.kind === "message" && g.groupId, "QUJD");
  const v = recv(dataEnvelope({
    ...OWNER,
    timestamp: 9,
    text: null,
    attachments: [voiceAttachment("abc", 10)],
  }));
  assert.ok(v.kind === "message" && isVoiceNote(v.attachments[0]!));
  const file = { ...voiceAttachment("abc", 10), filename: "song.aac" };
  const f = recv(dataEnvelope({ ...OWNER, timestamp: 9, text: null, attachments: [file] }));
  assert.ok(f.kind === "message" && !isVoiceNote(f.attachments[0]!), "a named audio file");
  assert.equal(
    recv({ ...dataEnvelope({ ...OWNER, timestamp: 9, text: "x" }), timestamp: -1 }).kind,
    "malformed",
  );
});
