import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  dataEnvelope,
  receiptEnvelope,
  syncEnvelope,
  typingEnvelope,
} from "../../peers/signal_cli/peer.ts";
import { events, GROUPS, OWNER, PARTNER, startStack, STRANGER, waitUntil } from "./harness.ts";

const sha = (s: string) => createHash("sha256").update(s).digest("hex");

Deno.test("a known sender's DM and group message reach joi with the right channel, signed", async () => {
  const s = await startStack();
  try {
    s.peer.push(dataEnvelope({ ...OWNER, timestamp: s.peer.nextTimestamp(), text: "hello joi" }));
    s.peer.push(dataEnvelope({
      ...PARTNER,
      timestamp: s.peer.nextTimestamp(),
      text: "family news",
      groupId: GROUPS.family_group,
    }));
    await s.joi.waitFor(() => s.joi.received.length === 2);
    const [dm, group] = s.joi.received;
    // the FakeJoi only records requests its signedRoutes middleware verified
    assert.equal(dm!.headers["x-validated-channel"], "owner_private_dm");
    assert.equal(dm!.headers["x-validated-sender"], "owner");
    assert.equal(dm!.headers["x-signal-sender-hash"], sha(OWNER.number));
    assert.equal(dm!.headers["x-config-hash"], s.joi.hash);
    assert.equal(dm!.body.transport, "signal");
    assert.deepEqual(dm!.body.sender, {
      id: "owner",
      transport_id: OWNER.number,
      display_name: "Owner",
    });
    assert.deepEqual(dm!.body.conversation, { type: "direct", id: "owner_private_dm" });
    assert.equal((dm!.body.content as Record<string, unknown>).text, "hello joi");
    assert.equal(dm!.body.priority, "normal");
    assert.equal(group!.headers["x-validated-channel"], "family_group");
    assert.equal(group!.headers["x-validated-sender"], "partner");
    assert.deepEqual(group!.body.conversation, { type: "group", id: "family_group" });
  } finally {
    await s.stop();
  }
});

Deno.test("sourceNumber null is matched by uuid; a uuid that contradicts the number is refused", async () => {
  const s = await startStack();
  try {
    s.peer.push(dataEnvelope({ number: null, uuid: PARTNER.uuid, timestamp: 11, text: "hidden" }));
    await s.joi.waitFor(() => s.joi.received.length === 1);
    assert.equal(s.joi.received[0]!.headers["x-validated-channel"], "partner_private_dm");
    assert.equal(
      (s.joi.received[0]!.body.sender as { transport_id: string }).transport_id,
      PARTNER.number,
    );
    // owner's number claimed by another account: dropped
    s.peer.push(
      dataEnvelope({ number: OWNER.number, uuid: STRANGER.uuid, timestamp: 12, text: "x" }),
    );
    s.peer.push(dataEnvelope({ ...OWNER, timestamp: 13, text: "marker" }));
    await s.joi.waitFor(() => s.joi.received.length === 2);
    assert.deepEqual(s.joi.texts(), ["hidden", "marker"]);
  } finally {
    await s.stop();
  }
});

Deno.test("unknown senders, in DMs and groups, never reach joi and are logged as security events", async () => {
  const s = await startStack();
  try {
    s.peer.push(dataEnvelope({ ...STRANGER, timestamp: 21, text: "let me in" }));
    s.peer.push(dataEnvelope({
      ...STRANGER,
      timestamp: 22,
      text: "hi group",
      groupId: GROUPS.family_group,
    }));
    s.peer.push(dataEnvelope({ number: null, uuid: STRANGER.uuid, timestamp: 23, text: "x" }));
    // a known sender in a group that is not listed
    s.peer.push(dataEnvelope({ ...OWNER, timestamp: 24, text: "x", groupId: "QUJDREVGR0g=" }));
    s.peer.push(dataEnvelope({ ...OWNER, timestamp: 25, text: "marker" }));
    await s.joi.waitFor(() => s.joi.received.length >= 1);
    await s.mesh.forwarder.drained();
    assert.deepEqual(s.joi.texts(), ["marker"]);
    const unknown = events(s.logs, "unknown_sender_dropped");
    assert.equal(unknown.length, 3);
    for (const l of unknown) {
      assert.equal(l.level, "security");
      assert.ok(!JSON.stringify(l).includes(STRANGER.number), "the log holds no phone number");
      assert.ok(!JSON.stringify(l).includes("let me in"), "the log holds no message text");
    }
    assert.equal(events(s.logs, "unknown_group_dropped").length, 1);
    // silently: nothing was sent back to the stranger
    assert.equal(s.peer.calls("send").length, 0);
  } finally {
    await s.stop();
  }
});

Deno.test("duplicates arrive once; receipts, typing, sync never reach joi; exception-only is logged", async () => {
  const s = await startStack();
  try {
    const env = dataEnvelope({ ...OWNER, timestamp: 31, text: "once" });
    s.peer.push(env);
    s.peer.push(env);
    s.peer.push(receiptEnvelope({ ...OWNER, timestamp: 32 }));
    s.peer.push(typingEnvelope({ ...OWNER, timestamp: 33 }));
    s.peer.push(syncEnvelope({ ...OWNER, timestamp: 34 }));
    s.peer.push(null, { message: "Untrusted identity", type: "UntrustedIdentityException" });
    await s.peer.pushRaw("this is not json");
    await s.peer.pushRaw('{"jsonrpc":"2.0","method":"receive","params":{"envelope":42}}');
    s.peer.push(env);
    s.peer.push(dataEnvelope({ ...OWNER, timestamp: 35, text: "twice" }));
    await s.joi.waitFor(() => s.joi.received.length >= 2);
    await s.mesh.forwarder.drained();
    assert.deepEqual(s.joi.texts(), ["once", "twice"]);
    const exc = events(s.logs, "signal_exception");
    assert.equal(exc.length, 1);
    assert.equal(exc[0]!.level, "security");
    assert.equal(s.mesh.transport.status().state, "connected");
  } finally {
    await s.stop();
  }
});

Deno.test("subscribeReceive-form notifications are read too", async () => {
  const s = await startStack();
  try {
    s.peer.subscriptionForm = true;
    s.peer.push(dataEnvelope({ ...OWNER, timestamp: 41, text: "subscribed" }));
    await s.joi.waitFor(() => s.joi.received.length === 1);
    assert.deepEqual(s.joi.texts(), ["subscribed"]);
  } finally {
    await s.stop();
  }
});

Deno.test("a 2,010-character text reaches joi whole; critical group messages are critical", async () => {
  const s = await startStack();
  try {
    // the mesh no longer cuts at 1,500 without a word: joi's own limit (4,096) applies
    s.peer.push(dataEnvelope({ ...OWNER, timestamp: 51, text: "é".repeat(2010) }));
    s.peer.push(dataEnvelope({
      ...OWNER,
      timestamp: 52,
      text: "smoke!",
      groupId: GROUPS.critical_group,
    }));
    await s.joi.waitFor(() => s.joi.received.length === 2);
    assert.equal(Array.from(s.joi.texts()[0]!).length, 2010);
    assert.equal(s.peer.calls("send").length, 0, "nothing was cut: nothing to tell");
    assert.equal(s.joi.received[1]!.body.priority, "critical");
    assert.equal(s.joi.received[1]!.headers["x-validated-channel"], "critical_group");
  } finally {
    await s.stop();
  }
});

Deno.test("a non-owner over the inbound limit is dropped and told once how long to wait", async () => {
  let now = Date.parse("2026-01-01T10:00:00Z");
  const s = await startStack({ now: () => now });
  try {
    // policy.yaml: others 20/min
    for (let i = 0; i < 25; i++) {
      s.peer.push(dataEnvelope({ ...PARTNER, timestamp: 100 + i, text: `m${i}` }));
    }
    // the owner is never limited
    for (let i = 0; i < 25; i++) {
      s.peer.push(dataEnvelope({ ...OWNER, timestamp: 200 + i, text: `o${i}` }));
    }
    await s.joi.waitFor(() => s.joi.received.length === 45);
    await s.mesh.forwarder.drained();
    const partner = s.joi.received.filter((r) => r.headers["x-validated-sender"] === "partner");
    assert.equal(partner.length, 20);
    const notices = s.peer.calls("send");
    assert.equal(notices.length, 1, "told once");
    assert.deepEqual(notices[0]!.params.recipient, [PARTNER.number]);
    assert.match(String(notices[0]!.params.message), /wait \d+ seconds/);
    assert.equal(events(s.logs, "inbound_rate_limited").length, 5);
    // after the window, the partner gets through again
    now += 61_000;
    s.peer.push(dataEnvelope({ ...PARTNER, timestamp: 300, text: "later" }));
    await s.joi.waitFor(() => s.joi.received.length === 46);
    assert.equal(s.joi.texts().at(-1), "later");
  } finally {
    await s.stop();
  }
});

Deno.test("joi down for a while: messages are delivered in order when it returns", async () => {
  const s = await startStack();
  try {
    await s.joi.stop();
    for (let i = 0; i < 10; i++) {
      s.peer.push(dataEnvelope({ ...OWNER, timestamp: 400 + i, text: `q${i}` }));
    }
    await waitUntil(() => s.mesh.store.depth() === 10);
    await waitUntil(() => s.mesh.forwarder.status().reachable === false);
    const h = s.mesh.health() as { joi: { reachable: boolean }; queue: { depth: number } };
    assert.equal(h.joi.reachable, false);
    assert.equal(h.queue.depth, 10);
    s.joi.start();
    await s.joi.waitFor(() => s.joi.received.length === 10);
    assert.deepEqual(s.joi.texts(), Array.from({ length: 10 }, (_, i) => `q${i}`));
    await waitUntil(() => s.mesh.store.depth() === 0);
  } finally {
    await s.stop();
  }
});

Deno.test("joi answering 5xx keeps the message queued and retries it, in order", async () => {
  const s = await startStack();
  try {
    s.joi.inboundStatus = 500;
    s.peer.push(dataEnvelope({ ...OWNER, timestamp: 501, text: "a" }));
    s.peer.push(dataEnvelope({ ...OWNER, timestamp: 502, text: "b" }));
    await s.joi.waitFor(() => s.joi.received.length >= 3);
    // only the head of the queue was tried
    assert.ok(s.joi.texts().every((t) => t === "a"));
    s.joi.inboundStatus = 200;
    await waitUntil(() => s.mesh.store.depth() === 0);
    const texts = s.joi.texts();
    assert.deepEqual(texts.slice(-2), ["a", "b"]);
  } finally {
    await s.stop();
  }
});

Deno.test("edits, remote deletes, removed reactions, stickers, stories and the account's own sent messages never reach joi, get no receipt and no typing", async () => {
  const s = await startStack();
  try {
    const who = (p: { number: string | null; uuid: string }) => ({
      source: p.number ?? p.uuid,
      sourceNumber: p.number,
      sourceUuid: p.uuid,
      sourceName: "Someone",
      sourceDevice: 1,
      serverReceivedTimestamp: 1,
      serverDeliveredTimestamp: 2,
    });
    const data = (ts: number, extra: Record<string, unknown>) => ({
      timestamp: ts,
      message: null,
      expiresInSeconds: 0,
      isExpirationUpdate: false,
      viewOnce: false,
      ...extra,
    });
    const group = { groupId: GROUPS.family_group, groupName: "g", revision: 3, type: "DELIVER" };
    // an edit of an earlier message (signal-cli: envelope.editMessage)
    s.peer.push({
      ...who(OWNER),
      timestamp: 41,
      editMessage: {
        targetSentTimestamp: 40,
        dataMessage: data(41, { message: "Joi, fixed typo" }),
      },
    });
    // "delete for everyone"
    s.peer.push({
      ...who(PARTNER),
      timestamp: 42,
      dataMessage: data(42, { remoteDelete: { timestamp: 40 }, groupInfo: group }),
    });
    // a reaction taken back
    s.peer.push({
      ...who(OWNER),
      timestamp: 43,
      dataMessage: data(43, {
        reaction: {
          emoji: "👍",
          targetAuthor: OWNER.number,
          targetAuthorNumber: OWNER.number,
          targetAuthorUuid: OWNER.uuid,
          targetSentTimestamp: 40,
          isRemove: true,
        },
      }),
    });
    // a sticker, a story
    s.peer.push({
      ...who(PARTNER),
      timestamp: 44,
      dataMessage: data(44, { sticker: { packId: "abc", stickerId: 3 }, groupInfo: group }),
    });
    s.peer.push({
      ...who(OWNER),
      timestamp: 45,
      storyMessage: { allowsReplies: true, textAttachment: { text: "Joi, look" } },
    });
    // what the account itself sent from another device (a linked phone), to the family group
    s.peer.push({
      ...who({ number: "+15559990000", uuid: "0e0e0e0e-0000-4000-8000-00000000ac01" }),
      timestamp: 46,
      syncMessage: {
        sentMessage: {
          destination: null,
          destinationNumber: null,
          destinationUuid: null,
          ...data(46, { message: "Joi, answer this", groupInfo: group }),
        },
      },
    });
    // then a real message: it is the only one joi gets
    s.peer.push(dataEnvelope({ ...OWNER, timestamp: 47, text: "only this one" }));
    await s.joi.waitFor(() => s.joi.received.length >= 1);
    await s.mesh.forwarder.drained();
    assert.deepEqual(s.joi.texts(), ["only this one"]);
    await s.peer.waitFor(() => s.peer.calls("sendReceipt").length >= 1);
    const receipts = s.peer.calls("sendReceipt").map((c) => c.params.targetTimestamp);
    assert.deepEqual(receipts, [[47]], "a receipt for the one message joi took, none other");
    const typing = s.peer.calls("sendTyping").map((c) => c.params.recipient ?? c.params.groupId);
    assert.ok(typing.every((r) => JSON.stringify(r) === JSON.stringify([OWNER.number])));
    const reasons = events(s.logs, "signal_ignored").map((e) => e.reason);
    assert.deepEqual(reasons, [
      "editMessage",
      "remoteDelete",
      "empty data message",
      "empty data message",
      "storyMessage",
      "syncMessage",
    ]);
  } finally {
    await s.stop();
  }
});
