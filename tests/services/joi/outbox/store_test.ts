/** The outbox table of an older joi.db gains the columns added since, at open, keeping its rows. */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { OutboxStore } from "../../../../services/joi/outbox/store.ts";

const OLD_SCHEMA = `CREATE TABLE outbox (
  id INTEGER PRIMARY KEY AUTOINCREMENT, delivery_id TEXT NOT NULL UNIQUE, channel TEXT NOT NULL,
  recipient TEXT NOT NULL, text TEXT NOT NULL,
  priority TEXT NOT NULL CHECK (priority IN ('normal', 'critical')), kind TEXT NOT NULL,
  created_at INTEGER NOT NULL, ttl_ms INTEGER, template INTEGER NOT NULL DEFAULT 0,
  reply_to TEXT, conversation_id TEXT, voice_response INTEGER NOT NULL DEFAULT 0,
  status TEXT NOT NULL DEFAULT 'queued', attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER NOT NULL, last_error TEXT, sent_at INTEGER)`;

Deno.test("outbox store: a joi.db from before the delayed column opens, keeps its rows, counts delayed sends", () => {
  const db = new DatabaseSync(":memory:");
  try {
    db.exec(OLD_SCHEMA);
    db.prepare(`INSERT INTO outbox (delivery_id, channel, recipient, text, priority, kind,
      created_at, next_attempt_at) VALUES ('d1', 'critical_group', 'critical_group', 'ALERT',
      'critical', 'event_critical', 1000, 1000)`).run();
    const store = new OutboxStore(db);
    assert.equal(store.get(1)?.text, "ALERT");
    store.markSent(1, 90_000, true);
    const { id } = store.insert({
      channel: "critical_group",
      recipient: "critical_group",
      text: "ALERT 2",
      priority: "critical",
      kind: "event_critical",
      createdAt: 80_000,
      ttlMs: null,
      template: true,
      replyTo: null,
      conversationId: null,
      voiceResponse: false,
    }, 80_000);
    store.markSent(id, 80_500); // sent at once: not late
    const held = store.insert({
      channel: "critical_group",
      recipient: "critical_group",
      text: "ALERT 3",
      priority: "critical",
      kind: "event_critical",
      createdAt: 40_000, // raised at the device's time; another node held it 42 s
      ttlMs: null,
      template: true,
      replyTo: null,
      conversationId: null,
      voiceResponse: false,
    }, 82_000);
    store.markSent(held.id, 82_100);
    assert.equal(
      store.windowCounts(10_000, 85_000, 30_000).criticalDelivered,
      2,
      "the one marked delayed and the one held 42 s, not the one sent at once",
    );
    new OutboxStore(db); // opening again changes nothing
  } finally {
    db.close();
  }
});
