/**
 * Groups that behave, at the mesh, against the signal-cli stand-in: a sender
 * who is not an expected member of the group is dropped and logged (a known
 * person included); in a `respond: mentioned` group only a line that mentions
 * joi's account (by ACI or number) or addresses it by name is for joi, the
 * rest reach joi as context (`addressed: false`); per-sender limits apply in
 * every group, the owner included.
 */
import assert from "node:assert/strict";
import { dataEnvelope } from "../../peers/signal_cli/peer.ts";
import { ACCOUNT, events, GROUPS, OWNER, PARTNER, startStack, waitUntil } from "./harness.ts";
import {
  addressedByName,
  mentionsSelf,
  renderMentions,
  respondRule,
} from "../../../services/mesh/addressing.ts";

const body = (r: { body: Record<string, unknown> }) => r.body;
const text = (r: { body: Record<string, unknown> }) =>
  (r.body.content as { text?: string }).text ?? "";

Deno.test("a known person writing in a group they are not a member of is dropped and logged", async () => {
  const s = await startStack();
  try {
    // the partner is a household member, but not of the owner's own group nor the critical one
    s.peer.push(dataEnvelope({
      ...PARTNER,
      timestamp: 10,
      text: "what is in the owner's notes?",
      groupId: GROUPS.owner_regular_dm,
    }));
    s.peer.push(dataEnvelope({
      ...PARTNER,
      timestamp: 11,
      text: "drain the budget",
      groupId: GROUPS.critical_group,
    }));
    s.peer.push(
      dataEnvelope({ ...PARTNER, timestamp: 12, text: "hi", groupId: GROUPS.family_group }),
    );
    await s.joi.waitFor(() => s.joi.received.length === 1);
    await s.mesh.forwarder.drained();
    assert.equal(s.joi.received.length, 1, "only the family group line reaches joi");
    assert.equal(s.joi.received[0]!.headers["x-validated-channel"], "family_group");
    const dropped = events(s.logs, "group_sender_not_member_dropped");
    assert.deepEqual(dropped.map((e) => e.channel), ["owner_regular_dm", "critical_group"]);
    assert.ok(dropped.every((e) => e.level === "security" && e.sender === "partner"));
    assert.ok(!JSON.stringify(dropped).includes("budget"), "no message text in the log");
  } finally {
    await s.stop();
  }
});

Deno.test("mention-gated family group: a mention (ACI or number), the name or a reply to joi addresses joi; other lines are context", async () => {
  const s = await startStack();
  try {
    let ts = 100;
    const say = (t: string, extra: Record<string, unknown> = {}) =>
      s.peer.push(dataEnvelope({
        ...PARTNER,
        timestamp: ++ts,
        text: t,
        groupId: GROUPS.family_group,
        ...extra,
      }));
    say("dinner at 7?");
    // a mention carrying only the account's ACI (signal-cli may omit the number)
    say("\uFFFC what is the weather tomorrow?", {
      mentions: [{ number: null, uuid: ACCOUNT.uuid.toUpperCase(), start: 0, length: 1 }],
    });
    say("\uFFFC is the door locked?", {
      mentions: [{ number: ACCOUNT.number, uuid: null, start: 0, length: 1 }],
    });
    say("Joi, is it going to rain?");
    say("did you ask joi about the heating yesterday?");
    say("\uFFFC can you pick up milk?", {
      mentions: [{ number: OWNER.number, uuid: OWNER.uuid, start: 0, length: 1 }],
    });
    // a quote-reply of joi's own message answers joi; one of the owner's does not
    say("yes please", {
      quote: { id: 42, author: { number: null, uuid: ACCOUNT.uuid }, text: "Shall I remind you?" },
    });
    say("me too", { quote: { id: 43, author: { number: OWNER.number, uuid: OWNER.uuid } } });
    await s.joi.waitFor(() => s.joi.received.length === 8);
    const addressed = s.joi.received.map((r) => body(r).addressed !== false);
    assert.deepEqual(addressed, [false, true, true, true, false, false, true, false]);
    assert.deepEqual(s.joi.received.map(text), [
      "dinner at 7?",
      "@Joi what is the weather tomorrow?",
      "@Joi is the door locked?",
      "Joi, is it going to rain?",
      "did you ask joi about the heating yesterday?",
      "@Owner can you pick up milk?",
      "yes please",
      "me too",
    ]);
    // the ACI was learnt from listGroups (signal-cli lists the account among the members)
    assert.equal(s.mesh.self.uuid, ACCOUNT.uuid);
    // groups of one person answer everything: the owner's own group
    s.peer.push(dataEnvelope({
      ...OWNER,
      timestamp: ++ts,
      text: "note to self",
      groupId: GROUPS.owner_regular_dm,
    }));
    await s.joi.waitFor(() => s.joi.received.length === 9);
    assert.equal(body(s.joi.received[8]!).addressed, undefined);
  } finally {
    await s.stop();
  }
});

Deno.test("a mention carrying only the account's ACI addresses joi from the first message on, before the ACI is learnt", async () => {
  // shipped mesh.yaml: `account: {}`; joi's number comes with the first message, its ACI later
  const s = await startStack({
    meshYaml: "queue: { max_depth: 1000, retry_initial_ms: 20, retry_max_ms: 100 }\n" +
      "config_sync: { poll_minutes: 0 }\n",
    waitForGroupCheck: false,
  });
  const release = s.peer.hold("listGroups"); // the ACI cannot be learnt yet
  try {
    assert.equal(s.mesh.self.uuid, null);
    s.peer.push(dataEnvelope({
      ...PARTNER,
      timestamp: 500,
      text: "\uFFFC is the back door locked?",
      groupId: GROUPS.family_group,
      mentions: [{ number: null, uuid: ACCOUNT.uuid, start: 0, length: 1 }],
    }));
    // a mention of a household member (by uuid only) is not one of joi
    s.peer.push(dataEnvelope({
      ...PARTNER,
      timestamp: 501,
      text: "\uFFFC can you check it?",
      groupId: GROUPS.family_group,
      mentions: [{ number: null, uuid: OWNER.uuid, start: 0, length: 1 }],
    }));
    await s.joi.waitFor(() => s.joi.received.length === 2);
    assert.deepEqual(s.joi.texts(), ["@Joi is the back door locked?", "@Owner can you check it?"]);
    assert.deepEqual(s.joi.received.map((r) => body(r).addressed), [undefined, false]);
    release();
    await waitUntil(() => s.mesh.self.uuid === ACCOUNT.uuid);
  } finally {
    release();
    await s.stop();
  }
});

Deno.test("per-sender limits apply in every group, the owner's included; the owner's DM stays unlimited", async () => {
  let now = Date.parse("2026-01-01T10:00:00Z");
  const s = await startStack({ now: () => now });
  try {
    // policy.yaml rate_limits.inbound.others: 20 a minute, per sender and channel
    for (let i = 0; i < 25; i++) {
      s.peer.push(dataEnvelope({
        ...OWNER,
        timestamp: 300 + i,
        text: `flood ${i}`,
        groupId: GROUPS.family_group,
      }));
    }
    for (let i = 0; i < 25; i++) {
      s.peer.push(dataEnvelope({ ...OWNER, timestamp: 400 + i, text: `dm ${i}` }));
    }
    await s.joi.waitFor(() => s.joi.received.length === 45);
    await s.mesh.forwarder.drained();
    const channels = s.joi.received.map((r) => r.headers["x-validated-channel"]);
    assert.equal(channels.filter((c) => c === "family_group").length, 20);
    assert.equal(channels.filter((c) => c === "owner_private_dm").length, 25);
    const limited = events(s.logs, "inbound_rate_limited");
    assert.ok(limited.length === 5 && limited.every((e) => e.channel === "family_group"));
    now += 61_000;
  } finally {
    await s.stop();
  }
});

Deno.test("addressing rules: the name opens or closes the line, or is written @Name; mentions by ACI", () => {
  for (
    const t of ["Joi, lights?", "hey joi what's up", "@Joi help", "is it cold, joi?", "ahoj Joi"]
  ) {
    assert.ok(addressedByName(t, "Joi"), t);
  }
  for (const t of ["I told joi already", "Joining you later", "joist", "enjoi"]) {
    assert.ok(!addressedByName(t, "Joi"), t);
  }
  // talking about joi, not to it: its name as a possessive or part of a longer word
  for (
    const t of [
      "Joi's answer was wrong again",
      "Joi’s voice is too quiet",
      "Joi-style reminders are annoying",
      "joi.example is not a real site",
      "the kids love Joi's jokes",
    ]
  ) {
    assert.ok(!addressedByName(t, "Joi"), t);
  }
  for (const t of ["Joi.", "Joi: lights off", "Joi - lights off", "Joi!!", "ok Joi"]) {
    assert.ok(addressedByName(t, "Joi"), t);
  }
  const self = {
    number: "+15559990000",
    uuid: "0a0c0c0a-1111-4222-8333-444455556666",
    name: "Joi",
  };
  assert.ok(
    mentionsSelf([{ number: null, uuid: self.uuid.toUpperCase(), start: 0, length: 1 }], self),
  );
  assert.ok(!mentionsSelf([{ number: "+15550000001", uuid: null, start: 0, length: 1 }], self));
  assert.ok(
    !mentionsSelf([{ number: null, uuid: "x", start: 0, length: 1 }], { ...self, uuid: null }),
  );
  assert.equal(
    renderMentions("\uFFFC and \uFFFC", [
      { number: "a", uuid: null, start: 0, length: 1 },
      { number: "b", uuid: null, start: 6, length: 1 },
    ], (m) => m.number!),
    "@a and @b",
  );
  assert.equal(respondRule({ expected_members: ["owner", "partner"] }), "mentioned");
  assert.equal(respondRule({ expected_members: ["owner"] }), "always");
  assert.equal(
    respondRule({ expected_members: ["owner", "partner"], respond: "always" }),
    "always",
  );
});
