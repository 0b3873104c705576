/**
 * Long texts both ways and presence cues, at the mesh, against the
 * signal-cli stand-in: a `text/x-signal-plain` attachment is read as the body;
 * a text over joi's limit is cut and its sender told where (quoted in a
 * group); a reply over Signal's body limit goes out as signal-cli sends one
 * (2,000-byte body plus the whole text attached); read receipts for DMs;
 * typing from joi's acceptance to its answer; a group answer quotes the
 * message it answers.
 */
import assert from "node:assert/strict";
import { dataEnvelope, dataUriBytes, longTextAttachment } from "../../peers/signal_cli/peer.ts";
import {
  events,
  FAST_MESH_YAML,
  GROUPS,
  outboundBody,
  OWNER,
  PARTNER,
  startStack,
  waitUntil,
} from "./harness.ts";

const encoder = new TextEncoder();

async function attachmentsStack(meshYaml = FAST_MESH_YAML) {
  const att = await Deno.makeTempDir({ prefix: "mesh-att-" });
  const s = await startStack({ meshYaml, attachmentsDir: att });
  return {
    s,
    att,
    async stop() {
      await s.stop();
      await Deno.remove(att, { recursive: true });
    },
  };
}

Deno.test("a long text's text/x-signal-plain attachment is read as the body, then deleted", async () => {
  const { s, att, stop } = await attachmentsStack();
  try {
    const full = "Dlhá správa o kúrení. ".repeat(140); // 3,080 characters, ~3,500 bytes
    await Deno.writeTextFile(`${att}/long1.txt`, full);
    const body = new TextDecoder().decode(encoder.encode(full).slice(0, 2000)).replace(
      /\uFFFD$/,
      "",
    );
    s.peer.push(dataEnvelope({
      ...OWNER,
      timestamp: 70,
      text: body,
      attachments: [longTextAttachment("long1.txt", encoder.encode(full).length)],
    }));
    await s.joi.waitFor(() => s.joi.received.length === 1);
    const c = s.joi.received[0]!.body.content as Record<string, unknown>;
    assert.equal(c.type, "text", "a long text is text, not a file");
    assert.equal(c.text, full);
    await waitUntil(() => [...Deno.readDirSync(att)].length === 0);
    assert.equal(s.peer.calls("send").length, 0, "not cut: nothing to tell");
  } finally {
    await stop();
  }
});

Deno.test("above joi's limit a text is cut and the sender told where: in the DM, quoted in a group", async () => {
  const { s, att, stop } = await attachmentsStack();
  try {
    const words = Array.from({ length: 1200 }, (_, i) => `w${i}`).join(" "); // 6,089 characters
    await Deno.writeTextFile(`${att}/long2.txt`, words);
    s.peer.push(dataEnvelope({
      ...OWNER,
      timestamp: 80,
      text: words.slice(0, 2000),
      attachments: [longTextAttachment("long2.txt", words.length)],
    }));
    s.peer.push(dataEnvelope({
      ...PARTNER,
      timestamp: 81,
      text: `Joi, ${words}`,
      groupId: GROUPS.family_group,
    }));
    await s.joi.waitFor(() => s.joi.received.length === 2);
    const got = s.joi.texts();
    assert.equal(Array.from(got[0]!).length, 4096, "policy.yaml content.max_inbound_chars");
    assert.ok(words.startsWith(got[0]!));
    await s.peer.waitFor(() => s.peer.calls("send").length === 2);
    const [dm, group] = s.peer.calls("send").map((c) => c.params);
    assert.deepEqual(dm!.recipient, [OWNER.number]);
    assert.match(String(dm!.message), /6,089 characters and I read only the first 4,096/);
    assert.ok(String(dm!.message).includes(`${got[0]!.trimEnd().slice(-30)}”`), "says where");
    assert.equal(group!.groupId, GROUPS.family_group);
    assert.equal(group!.quoteTimestamp, 81);
    assert.equal(group!.quoteAuthor, PARTNER.number);
  } finally {
    await stop();
  }
});

Deno.test("a reply over Signal's body limit goes out as signal-cli sends one: never cut", async () => {
  const { s, stop } = await attachmentsStack();
  try {
    const reply = "Áno, všetko je v poriadku. ".repeat(75).trim(); // 2,024 characters, ~2,400 bytes
    const r = await s.joi.outbound(s.url, outboundBody("owner", reply));
    assert.equal(r.status, 200);
    const p = s.peer.calls("send")[0]!.params;
    const bodyBytes = encoder.encode(String(p.message)).length;
    assert.ok(bodyBytes <= 2000 && bodyBytes > 1990, `body ${bodyBytes} bytes`);
    assert.ok(reply.startsWith(String(p.message)), "the body is the text's beginning");
    const att = (p.attachment as string[])[0]!;
    assert.match(att, /^data:text\/x-signal-plain;filename=message\.txt;base64,/);
    assert.equal(
      new TextDecoder().decode(dataUriBytes(att)),
      reply,
      "the whole text travels in the attachment",
    );
    const short = await s.joi.outbound(s.url, outboundBody("partner", "short"));
    assert.equal(short.status, 200);
    assert.equal(s.peer.calls("send")[1]!.params.attachment, undefined);
  } finally {
    await stop();
  }
});

Deno.test("presence: read receipt for a DM, typing while joi works, stopped by the answer", async () => {
  const yaml = `${FAST_MESH_YAML}presence: { typing_refresh_seconds: 0.2 }\n`;
  const { s, stop } = await attachmentsStack(yaml);
  try {
    s.peer.push(dataEnvelope({ ...OWNER, timestamp: 90, text: "how warm is it?" }));
    await s.joi.waitFor(() => s.joi.received.length === 1);
    const messageId = s.joi.received[0]!.body.message_id as string;
    await s.peer.waitFor(() => s.peer.calls("sendTyping").length >= 3, 10_000);
    const receipt = s.peer.calls("sendReceipt");
    assert.deepEqual(receipt.map((c) => c.params), [{
      recipient: OWNER.number,
      targetTimestamp: [90],
      type: "read",
    }]);
    const r = await s.joi.outbound(
      s.url,
      outboundBody("owner", "21 degrees.", { reply_to: messageId }),
    );
    assert.equal(r.status, 200);
    const typing = s.peer.calls("sendTyping").map((c) => c.params);
    assert.ok(typing.slice(0, -1).every((p) => p.stop === false));
    assert.deepEqual(typing.at(-1), { recipient: [OWNER.number], stop: true });
    const order = s.peer.requests.map((q) => q.method).filter((m) => m !== "listGroups");
    assert.ok(order.lastIndexOf("send") < order.lastIndexOf("sendTyping"), "stop after the answer");
    const n = s.peer.calls("sendTyping").length;
    await new Promise((res) => setTimeout(res, 500));
    assert.equal(s.peer.calls("sendTyping").length, n, "no refresh after the answer");
    assert.deepEqual(s.mesh.presence.typing, []);
  } finally {
    await stop();
  }
});

Deno.test("presence: no typing when joi will not answer; typing_max_seconds ends a forgotten one", async () => {
  const yaml =
    `${FAST_MESH_YAML}presence: { typing_refresh_seconds: 0.1, typing_max_seconds: 0.5, read_receipts: false }\n`;
  const { s, stop } = await attachmentsStack(yaml);
  try {
    s.joi.willRespond = false;
    s.peer.push(dataEnvelope({ ...OWNER, timestamp: 95, text: "just so you know" }));
    await s.joi.waitFor(() => s.joi.received.length === 1);
    await s.mesh.forwarder.drained();
    assert.equal(s.peer.calls("sendTyping").length, 0);
    assert.equal(s.peer.calls("sendReceipt").length, 0, "read_receipts: false");
    s.joi.willRespond = true;
    s.peer.push(dataEnvelope({ ...OWNER, timestamp: 96, text: "and this?" }));
    await s.peer.waitFor(
      () => s.peer.calls("sendTyping").some((c) => c.params.stop === true),
      10_000,
    );
    assert.deepEqual(s.mesh.presence.typing, []);
  } finally {
    await stop();
  }
});

Deno.test("a group answer quotes the message it answers; typing shows in the group", async () => {
  const { s, stop } = await attachmentsStack();
  try {
    s.peer.push(dataEnvelope({
      ...PARTNER,
      timestamp: 120,
      text: "Joi, when is the bin collected?",
      groupId: GROUPS.family_group,
    }));
    await s.joi.waitFor(() => s.joi.received.length === 1);
    await s.peer.waitFor(() => s.peer.calls("sendTyping").length >= 1);
    assert.deepEqual(s.peer.calls("sendTyping")[0]!.params, {
      groupId: GROUPS.family_group,
      stop: false,
    });
    assert.equal(s.peer.calls("sendReceipt").length, 0, "receipts are for DMs");
    const r = await s.joi.outbound(s.url, {
      ...outboundBody("family_group", "On Thursday."),
      delivery: { target: "group", group_id: "family_group" },
      reply_to: s.joi.received[0]!.body.message_id,
    });
    assert.equal(r.status, 200);
    const p = s.peer.calls("send")[0]!.params;
    assert.equal(p.groupId, GROUPS.family_group);
    assert.equal(p.quoteTimestamp, 120);
    assert.equal(p.quoteAuthor, PARTNER.number);
    assert.equal(events(s.logs, "send_audit").at(-1)!.quoted, true);
    // a DM answer does not quote
    s.peer.push(dataEnvelope({ ...OWNER, timestamp: 121, text: "thanks" }));
    await s.joi.waitFor(() => s.joi.received.length === 2);
    await s.joi.outbound(
      s.url,
      outboundBody("owner", "You're welcome.", { reply_to: s.joi.received[1]!.body.message_id }),
    );
    assert.equal(s.peer.calls("send")[1]!.params.quoteTimestamp, undefined);
  } finally {
    await stop();
  }
});

const graphemes = (t: string) =>
  Array.from(new Intl.Segmenter("en", { granularity: "grapheme" }).segment(t), (g) => g.segment);

/** True when `prefix` ends between two of `whole`'s graphemes. */
function onGraphemeBoundary(whole: string, prefix: string): boolean {
  let at = 0;
  for (const g of graphemes(whole)) {
    if (at === prefix.length) return true;
    at += g.length;
  }
  return at === prefix.length;
}

Deno.test("emoji, ZWJ sequences and combining marks: a text over joi's limit is cut between graphemes, never inside one", async () => {
  const { s, stop } = await attachmentsStack();
  try {
    // 3,900 code points (4,200 UTF-16 units): within joi's limit, which counts code points
    const smiles = "Dobré ráno 🙂 ".repeat(300);
    // a family emoji (7 code points, 11 units) and a decomposed č straddle the limit
    const family = "a".repeat(4090) + "👨‍👩‍👧‍👦" + "b";
    const nfd = "x".repeat(4095) + "c\u030C" + "y";
    let ts = 200;
    for (const text of [smiles, family, nfd]) {
      s.peer.push(dataEnvelope({ ...OWNER, timestamp: ++ts, text }));
    }
    await s.joi.waitFor(() => s.joi.received.length === 3);
    await s.mesh.forwarder.drained();
    assert.deepEqual(s.joi.refused.map((r) => r.reason), [], "joi refuses none of them");
    const got = s.joi.texts();
    assert.equal(got[0], smiles, "within the limit: whole");
    for (const [i, full] of [smiles, family, nfd].entries()) {
      const t = got[i]!;
      assert.ok([...t].length <= 4096, `message ${i}: ${[...t].length} code points`);
      assert.ok(full.startsWith(t), `message ${i} is the text's beginning`);
      assert.ok(onGraphemeBoundary(full, t), `message ${i} is cut between graphemes`);
    }
    assert.equal(got[1], "a".repeat(4090), "the family emoji is not split");
    assert.equal(got[2], "x".repeat(4095), "č is not split from its caron");
    // the senders of the cut ones are told
    await s.peer.waitFor(() => s.peer.calls("send").length === 2);
    for (const c of s.peer.calls("send")) {
      assert.match(String(c.params.message), /^Your message was too long for me/);
    }
  } finally {
    await stop();
  }
});

Deno.test("a long text whose attachment cannot be read (missing, not UTF-8) is not cut silently: the sender is told", async () => {
  const { s, att, stop } = await attachmentsStack();
  try {
    const full = "Príliš dlhá správa o záhrade. ".repeat(100); // 3,000 characters
    const body = prefixOf(full, 2000);
    // the same text with two bytes that are not UTF-8 after the body's part
    const bad = new Uint8Array([...encoder.encode(full), 0xff, 0xfe]);
    await Deno.writeFile(`${att}/bad.txt`, bad);
    s.peer.push(dataEnvelope({
      ...OWNER,
      timestamp: 300,
      text: body,
      attachments: [longTextAttachment("gone.txt", encoder.encode(full).length)],
    }));
    s.peer.push(dataEnvelope({
      ...PARTNER,
      timestamp: 301,
      text: `Joi, ${body}`,
      groupId: GROUPS.family_group,
      attachments: [longTextAttachment("bad.txt", bad.length)],
    }));
    await s.joi.waitFor(() => s.joi.received.length === 2);
    assert.deepEqual(s.joi.texts(), [body, `Joi, ${body}`], "the body is what there is");
    await s.peer.waitFor(() => s.peer.calls("send").length === 2, 10_000);
    const [dm, group] = s.peer.calls("send").map((c) => c.params);
    assert.deepEqual(dm!.recipient, [OWNER.number]);
    assert.match(String(dm!.message), /only the first part of your long message/);
    assert.ok(String(dm!.message).includes(`${body.trimEnd().slice(-25)}”`), "says where");
    assert.equal(group!.groupId, GROUPS.family_group);
    assert.equal(group!.quoteTimestamp, 301);
    await waitUntil(() => [...Deno.readDirSync(att)].length === 0);
  } finally {
    await stop();
  }
});

Deno.test("a long text's attachment over the reading cap is read up to joi's limit and the sender told", async () => {
  const { s, att, stop } = await attachmentsStack();
  try {
    const full = "Veľmi dlhý text. ".repeat(5000); // 85,000 characters, ~95 KB
    await Deno.writeTextFile(`${att}/huge.txt`, full);
    s.peer.push(dataEnvelope({
      ...OWNER,
      timestamp: 310,
      text: prefixOf(full, 2000),
      attachments: [longTextAttachment("huge.txt", encoder.encode(full).length)],
    }));
    await s.joi.waitFor(() => s.joi.received.length === 1);
    const got = s.joi.texts()[0]!;
    assert.equal(got.length, 4096, "joi's limit, from the attachment (not the 2,000-byte body)");
    assert.ok(full.startsWith(got));
    await s.peer.waitFor(() => s.peer.calls("send").length === 1, 10_000);
    assert.match(String(s.peer.calls("send")[0]!.params.message), /^Your message was too long/);
    await waitUntil(() => [...Deno.readDirSync(att)].length === 0);
  } finally {
    await stop();
  }
});

Deno.test("a reply over Signal's body limit is split between graphemes (ZWJ emoji, combining marks)", async () => {
  const { s, stop } = await attachmentsStack();
  try {
    const family = "👨‍👩‍👧‍👦"; // 25 bytes
    const replies = [
      "a".repeat(1990) + family.repeat(4),
      "b".repeat(1999) + "c\u030C".repeat(10),
      "Ahoj 🇸🇰 ".repeat(200),
    ];
    const to = [
      outboundBody("owner", replies[0]!),
      outboundBody("partner", replies[1]!),
      { ...outboundBody("family_group", replies[2]!), delivery: { target: "group" } },
    ];
    for (const body of to) assert.equal((await s.joi.outbound(s.url, body)).status, 200);
    for (const [i, c] of s.peer.calls("send").entries()) {
      const reply = replies[i]!;
      const body = String(c.params.message);
      assert.ok(encoder.encode(body).length <= 2000, `reply ${i}: body within Signal's limit`);
      assert.ok(reply.startsWith(body), `reply ${i}: the body is the text's beginning`);
      assert.ok(onGraphemeBoundary(reply, body), `reply ${i}: body ends between graphemes`);
      const att = (c.params.attachment as string[])[0]!;
      assert.equal(new TextDecoder().decode(dataUriBytes(att)), reply, "whole text attached");
    }
  } finally {
    await stop();
  }
});

/** The longest prefix of `text` within `bytes` UTF-8 bytes (what an old client puts in the body). */
function prefixOf(text: string, bytes: number): string {
  return new TextDecoder().decode(encoder.encode(text).slice(0, bytes)).replace(/\uFFFD$/, "");
}

Deno.test("a reply at joi's max_outbound_chars with emoji is taken: the mesh counts characters (code points) as joi's rules do", async () => {
  const { s, stop } = await attachmentsStack();
  try {
    // joi's content rules count code points (max_outbound_chars 2048); emoji are two UTF-16 units
    const reply = "Dobrú noc 🌙 ".repeat(170) + "Koniec."; // 2,047 code points, 2,217 units
    assert.equal([...reply].length, 2047);
    const r = await s.joi.outbound(s.url, outboundBody("owner", reply));
    assert.equal(r.status, 200, JSON.stringify(r.envelope));
    const att = (s.peer.calls("send")[0]!.params.attachment as string[])[0]!;
    assert.equal(new TextDecoder().decode(dataUriBytes(att)), reply, "sent whole");
    const over = await s.joi.outbound(s.url, outboundBody("partner", "x".repeat(2049)));
    assert.equal(over.status, 400, "over the limit is still refused");
  } finally {
    await stop();
  }
});
