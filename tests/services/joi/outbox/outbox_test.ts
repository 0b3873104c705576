import assert from "node:assert/strict";
import { criticalTexts, startHarness, stateEvent } from "../harness.ts";

const MIN = 60_000;

Deno.test("mesh unreachable: critical alerts arrive afterwards marked delayed, stale chatter is dropped", async () => {
  const h = await startHarness();
  try {
    await h.mesh.stop();
    const ob = h.services.outbox;
    const chatter = ob.enqueue({
      channel: "owner_private_dm",
      text: "The living room is a bit warm.",
      priority: "normal",
      kind: "proactive",
    });
    const reply = ob.enqueue({
      channel: "owner_private_dm",
      text: "Dinner is at 7.",
      priority: "normal",
      kind: "reply",
    });
    assert.ok(chatter.accepted && reply.accepted);
    const r = await h.post("/api/v1/openhab/state", stateEvent("Kitchen_Smoke", "ON", h.now()));
    assert.equal(r.status, 200, "the event is accepted while the mesh is down");
    await h.settle();
    assert.equal(h.mesh.received.length, 0);
    // retries with backoff while down; the breaker opens for ordinary traffic
    for (let i = 0; i < 10; i++) await h.advance(5_000);
    assert.equal(ob.breaker.state === "open" || ob.breaker.state === "half_open", true);
    assert.ok(ob.store.get(1)!.attempts >= 1);
    // 40 minutes of outage: the proactive message (ttl 30 min) is stale, the reply (60) is not
    await h.advance(40 * MIN);
    h.mesh.start();
    await h.advance(60_000);
    await h.advance(60_000);
    const crit = criticalTexts(h.mesh);
    assert.equal(crit.length, 1 + 1, "the alarm plus its 5-minute reminder, both delivered");
    assert.match(
      crit[0]!,
      /^\[delayed; first raised at 14:00\] ALERT: Smoke by Kitchen_Smoke/,
    );
    const texts = h.mesh.received.map((m) => m.body.content.text);
    assert.ok(texts.includes("Dinner is at 7."), "a fresh reply is delivered");
    assert.ok(!texts.some((t) => t.includes("bit warm")), "stale chatter is not delivered");
    assert.equal(ob.store.get(chatter.id)!.status, "dropped");
    assert.ok(h.logs.some((l) => l.event === "outbound_dropped_stale"));
    assert.equal(ob.breaker.state, "closed");
  } finally {
    await h.close();
  }
});

Deno.test("outbound rate limits: owner DM cooldown, other DM per-minute cap defer, never drop; event-critical bypasses", async () => {
  const h = await startHarness();
  try {
    const ob = h.services.outbox;
    for (let i = 0; i < 25; i++) {
      ob.enqueue({
        channel: "owner_private_dm",
        text: `reply ${i}`,
        priority: "normal",
        kind: "reply",
      });
    }
    await h.settle();
    assert.equal(h.mesh.received.length, 1, "5 s cooldown per conversation");
    for (let i = 0; i < 12; i++) await h.advance(5_000);
    assert.equal(h.mesh.received.length, 13, "one per cooldown period");
    assert.equal(ob.store.depth().queued, 12, "deferred messages stay queued");
    const texts = h.mesh.received.map((m) => m.body.content.text);
    assert.deepEqual(texts, Array.from({ length: 13 }, (_, i) => `reply ${i}`), "in order");

    // partner DM: 10 per minute, no cooldown
    for (let i = 0; i < 15; i++) {
      ob.enqueue({
        channel: "partner_private_dm",
        text: `p ${i}`,
        priority: "normal",
        kind: "reply",
      });
    }
    await h.settle();
    const toPartner = () => h.mesh.received.filter((m) => m.body.recipient.id === "partner").length;
    assert.equal(toPartner(), 10);
    assert.equal(h.mesh.received.at(-1)!.body.delivery.target, "direct");

    // critical alerts are not held by any limit
    await h.post("/api/v1/openhab/state", stateEvent("Hall_Gas", "ON", h.now()));
    await h.settle();
    assert.equal(criticalTexts(h.mesh).length, 1);
    await h.advance(60_000);
    assert.equal(toPartner(), 15, "the rest after the minute");
  } finally {
    await h.close();
  }
});

Deno.test("outbound content rules: URL, prompt markers, code blocks in proactive, length, unprintable are refused and logged", async () => {
  const h = await startHarness();
  try {
    const ob = h.services.outbox;
    const refuse = (text: string, kind: "reply" | "proactive" = "reply") =>
      ob.enqueue({ channel: "owner_private_dm", text, priority: "normal", kind });
    const cases: [string, string, "reply" | "proactive"][] = [
      ["see https://example.com", "external_url", "reply"],
      ["ｈｔｔｐｓ://fullwidth.example", "external_url", "reply"], // NFKC first
      ["<|im_start|>system", "system_prompt_marker", "reply"],
      ["```rm -rf /```", "code_block", "proactive"],
      ["x".repeat(h.policy.content.max_outbound_chars + 1), "max_outbound_chars", "reply"],
      ["bell\u0007", "printable", "reply"],
      ["   ", "empty", "reply"],
    ];
    for (const [text, rule, kind] of cases) {
      const r = refuse(text, kind);
      assert.equal(r.accepted, false, `${rule} accepted`);
      if (!r.accepted) assert.equal(r.rule, rule);
    }
    assert.equal(refuse("```code``` in a reply is fine").accepted, true);
    assert.equal(
      h.logs.filter((l) => l.level === "security" && l.event === "outbound_refused").length,
      cases.length,
    );
    assert.ok(!JSON.stringify(h.logs).includes("rm -rf"), "message text never reaches the log");
  } finally {
    await h.close();
  }
});

Deno.test("mesh 5xx is retried with exponential backoff, then delivered marked delayed", async () => {
  const h = await startHarness();
  try {
    const ob = h.services.outbox;
    h.mesh.failNext(3);
    const r = ob.enqueue({
      channel: "critical_group",
      text: "ALERT: test",
      priority: "critical",
      kind: "event_critical",
      template: true,
    });
    assert.ok(r.accepted);
    await h.settle();
    const m1 = ob.store.get(r.id)!;
    assert.equal(m1.attempts, 1);
    assert.equal(m1.nextAttemptAt - h.now(), 1000, "first retry after initial_seconds");
    await h.advance(1000);
    assert.equal(ob.store.get(r.id)!.nextAttemptAt - h.now(), 2000, "then doubled");
    await h.advance(2000);
    await h.advance(4000);
    assert.equal(ob.store.get(r.id)!.status, "sent");
    assert.equal(criticalTexts(h.mesh).length, 1);
    assert.match(criticalTexts(h.mesh)[0]!, /^\[delayed; first raised at/);
  } finally {
    await h.close();
  }
});
