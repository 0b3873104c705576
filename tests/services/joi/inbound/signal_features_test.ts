/**
 * joi's side of Signal as people use it: the failed-transcription reply, a
 * spoken answer to a voice note, escalation that names a channel but carries
 * nothing of it, reactions and pictures that are not messages, group lines
 * that are context only, answers longer than one message, and the LLM budget
 * shared fairly (the owner's DM answered while a group floods).
 */
import assert from "node:assert/strict";
import { NOTICES } from "../../../../services/joi/agent/mod.ts";
import { startJoi } from "./harness.ts";

const voice = (transcription: string | null, reason?: string) => ({
  type: "voice",
  voice_transcription: transcription,
  voice_transcription_failed: transcription === null,
  ...(reason ? { voice_failure_reason: reason } : {}),
  voice_duration_ms: 4000,
});

Deno.test("a voice note whisper could not transcribe gets the architecture's reply, no LLM call", async () => {
  const j = await startJoi();
  try {
    const r = await j.post({
      sender: "owner",
      channel: "owner_private_dm",
      text: "",
      content: voice(null, "transcription_timeout"),
    });
    assert.deepEqual(r.data, { received: true, will_respond: true });
    await j.settle();
    assert.deepEqual(j.sent.map((m) => m.content.text), [
      "I received your voice message but couldn't transcribe it. Could you send that as text?",
    ]);
    assert.equal(j.sent[0]!.reply_to !== undefined, true);
    assert.equal(j.llm.requests.length, 0);
  } finally {
    await j.close();
  }
});

Deno.test("a transcribed voice note is answered with a spoken reply requested", async () => {
  const j = await startJoi({ llm: { reply: () => "The heating is on." } });
  try {
    await j.post({
      sender: "owner",
      channel: "owner_private_dm",
      text: "",
      content: voice("is the heating on?"),
    });
    await j.post({ sender: "partner", channel: "partner_private_dm", text: "and typed?" });
    await j.settle();
    const byRecipient = Object.fromEntries(j.sent.map((m) => [m.recipient.id, m]));
    assert.equal(byRecipient.owner!.voice_response, true, "spoken to, it speaks back");
    assert.equal(byRecipient.partner!.voice_response, false, "typed to, it types");
  } finally {
    await j.close();
  }
});

Deno.test("URGENT in the owner's private DM puts no private text in the critical group", async () => {
  const secret = "The spare key is under the blue flowerpot; alarm code 4711.";
  const j = await startJoi({
    llm: { reply: () => `URGENT: ${secret} Leave the house now, there is gas.` },
    retrieve: () => Promise.resolve([{ title: "Private notes", text: secret }]),
  });
  try {
    await j.post({ sender: "owner", channel: "owner_private_dm", text: "I smell gas" });
    await j.settle();
    const dm = j.sent.filter((m) => m.delivery.target === "direct");
    const critical = j.sent.filter((m) => m.priority === "critical");
    assert.equal(dm.length, 1);
    assert.ok(dm[0]!.content.text.includes("4711"), "the owner's own DM gets the answer");
    assert.equal(critical.length, 1);
    assert.deepEqual(critical[0]!.delivery, { target: "group", group_id: "critical_group" });
    assert.equal(
      critical[0]!.content.text,
      "Something urgent was raised in owner's private chat with Joi. Check your DM with Joi.",
    );
    for (const word of ["4711", "flowerpot", "spare key", "gas", "Leave"]) {
      assert.ok(!critical[0]!.content.text.includes(word), `no "${word}" in the critical group`);
    }
    assert.equal(critical[0]!.escalated, true);
  } finally {
    await j.close();
  }
});

Deno.test("reactions and pictures without words are not messages: no reply, no LLM, will_respond false", async () => {
  const j = await startJoi();
  try {
    const reaction = await j.post({
      sender: "owner",
      channel: "owner_private_dm",
      text: "",
      content: { type: "reaction", reaction: "❤️", voice_transcription_failed: false },
    });
    const picture = await j.post({
      sender: "partner",
      channel: "family_group",
      text: "",
      content: { type: "image", voice_transcription_failed: false },
    });
    assert.equal(reaction.data?.will_respond, false);
    assert.equal(picture.data?.will_respond, false);
    await j.settle();
    assert.equal(j.sent.length, 0);
    assert.equal(j.llm.requests.length, 0);
  } finally {
    await j.close();
  }
});

Deno.test("group lines not addressed to joi are context only: no answer, no LLM, then in <group_chat>", async () => {
  const j = await startJoi({ llm: { reply: () => "Pasta sounds good." } });
  try {
    const chat = await j.post({
      sender: "partner",
      channel: "family_group",
      text: "shall we cook pasta tonight?",
      addressed: false,
    });
    assert.deepEqual(chat.data, { received: true, will_respond: false });
    await j.settle();
    assert.equal(j.llm.requests.length, 0);
    assert.equal(j.sent.length, 0);
    await j.post({ sender: "owner", channel: "family_group", text: "Joi, what do you think?" });
    await j.settle();
    assert.equal(j.llm.requests.length, 1);
    const system = j.llm.requests[0]!.messages[0]!.content;
    assert.match(
      system,
      /<group_chat>\ntoday at 13:00 partner: shall we cook pasta tonight\?\n<\/group_chat>/,
    );
    const turns = j.llm.requests[0]!.messages.slice(1).map((m) => m.content);
    assert.deepEqual(turns, ["Joi, what do you think?"], "never a user turn");
    // context stays in its channel
    await j.post({ sender: "owner", channel: "owner_private_dm", text: "hi" });
    await j.settle();
    assert.doesNotMatch(j.llm.requests[1]!.messages[0]!.content, /pasta/);
  } finally {
    await j.close();
  }
});

Deno.test("an answer longer than max_outbound_chars is cut at a sentence, saying so, not refused", async () => {
  const long = "This is a sentence about the weather. ".repeat(80); // 3,040 characters
  const j = await startJoi({ llm: { reply: () => long } });
  try {
    await j.post({ sender: "owner", channel: "owner_private_dm", text: "tell me everything" });
    await j.settle();
    assert.equal(j.sent.length, 1);
    const text = j.sent[0]!.content.text;
    assert.ok(Array.from(text).length <= 2048);
    assert.ok(text.endsWith(NOTICES.cut));
    assert.match(text, /weather\. \[…\]/);
  } finally {
    await j.close();
  }
});

Deno.test("the owner's DM is answered while the family group floods the LLM budget", async () => {
  const j = await startJoi({
    llm: { reply: (r) => `answer ${r.messages.at(-1)!.content}` },
    editPolicies: async (dir) => {
      const p = `${dir}/policy.yaml`;
      const text = await Deno.readTextFile(p);
      await Deno.writeTextFile(p, text.replace("calls_per_hour: 120", "calls_per_hour: 10"));
    },
  });
  try {
    for (let i = 0; i < 12; i++) {
      await j.post({ sender: "partner", channel: "family_group", text: `Joi, question ${i}?` });
    }
    await j.settle();
    const group = j.sent.filter((m) => m.delivery.target === "group");
    const answered = group.filter((m) => m.content.text.startsWith("answer"));
    assert.equal(answered.length, 5, "half of 10: the owner's DM is owed the other half");
    assert.ok(group.some((m) => m.content.text.startsWith("I need a moment")));
    for (let i = 0; i < 5; i++) {
      await j.post({ sender: "owner", channel: "owner_private_dm", text: `mine ${i}` });
      await j.settle();
    }
    const mine = j.sent.filter((m) => m.delivery.target === "direct");
    assert.deepEqual(
      mine.map((m) => m.content.text),
      [0, 1, 2, 3, 4].map((i) => `answer mine ${i}`),
    );
  } finally {
    await j.close();
  }
});

Deno.test("every message joi said it would answer gets an answer (ends the typing): a model reply that is only a directive, or nothing", async () => {
  const replies = ["REMEMBER: the spare key is with the neighbour", "   \n  ", "URGENT:"];
  const j = await startJoi({ llm: { reply: () => replies.shift() ?? "fine" } });
  try {
    const ids = ["sig-empty-1", "sig-empty-2", "sig-empty-3"];
    for (const [i, text] of ["remember: spare key at the neighbour's", "hm", "hello?"].entries()) {
      const r = await j.post({
        sender: "owner",
        channel: "owner_private_dm",
        text,
        messageId: ids[i]!,
      });
      assert.equal(r.data?.will_respond, true);
      await j.settle();
    }
    assert.deepEqual(
      j.sent.map((m) => m.reply_to),
      ids,
      "one answer to each, quoting it (so the mesh stops typing)",
    );
    assert.equal(j.sent[0]!.content.text, NOTICES.noted);
    assert.equal(j.sent[1]!.content.text, NOTICES.empty);
    assert.equal(j.sent[2]!.content.text, NOTICES.empty);
    assert.ok(j.sent.every((m) => m.priority === "normal"), "an empty URGENT escalates nothing");
  } finally {
    await j.close();
  }
});

Deno.test("URGENT raised in a group: the critical group is pointed to that group, not to a DM", async () => {
  const j = await startJoi({ llm: { reply: () => "URGENT: the freezer is open." } });
  try {
    await j.post({ sender: "owner", channel: "family_group", text: "Joi, is the freezer ok?" });
    await j.settle();
    const critical = j.sent.filter((m) => m.priority === "critical");
    assert.equal(critical.length, 1);
    assert.equal(
      critical[0]!.content.text,
      "Something urgent was raised in the family group. Check the family group.",
    );
    assert.ok(!critical[0]!.content.text.includes("freezer"));
  } finally {
    await j.close();
  }
});
