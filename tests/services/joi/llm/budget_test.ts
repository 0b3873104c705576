/**
 * The LLM budget's fair share: a flooding group never starves the owner's DM,
 * no channel takes more than its share while another waits, and a lone
 * channel is not held back.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { LlmCallBudget } from "../../../../services/joi/llm/budget.ts";
import { openDb } from "../../../../services/common/db.ts";

const OWNER = "owner_private_dm";
const policy = { calls_per_hour: 120, pause_minutes: 5 };

function takeN(b: LlmCallBudget, channel: string, n: number): number {
  let ok = 0;
  for (let i = 0; i < n; i++) if (b.take(channel).allowed) ok++;
  return ok;
}

Deno.test("fair budget: a flooding group takes at most its share; the owner's DM keeps the rest", () => {
  let now = 0;
  const b = new LlmCallBudget(policy, { ownerChannel: OWNER, now: () => now });
  assert.equal(takeN(b, "family_group", 500), 60, "half of 120 while the owner's DM is owed half");
  const refused = b.take("family_group");
  assert.equal(refused.allowed, false);
  assert.equal(refused.retryAfterSeconds, 300, "the refused group pauses 5 minutes");
  assert.equal(takeN(b, OWNER, 60), 60, "the owner's DM is answered while the group floods");
  assert.equal(b.take(OWNER).allowed, false, "120 in the hour: spent");
  now += 3_600_000; // the hour rolls
  assert.equal(b.take(OWNER).allowed, true);
});

Deno.test("fair budget: shares follow the active channels; a lone channel is not held back", () => {
  let now = 0;
  const b = new LlmCallBudget(policy, { ownerChannel: OWNER, now: () => now });
  assert.equal(takeN(b, OWNER, 200), 120, "alone, the owner's DM may use the whole budget");
  now += 3_600_000;
  const c = new LlmCallBudget(policy, { ownerChannel: OWNER, now: () => now });
  assert.equal(takeN(c, "family_group", 10), 10);
  assert.equal(takeN(c, "partner_private_dm", 10), 10);
  // three active: 40 each; the family group may reach 40, no further while others are owed
  assert.equal(takeN(c, "family_group", 100), 30);
  assert.equal(takeN(c, "partner_private_dm", 100), 30);
  assert.equal(takeN(c, OWNER, 100), 40);
  assert.deepEqual(c.usage().calls, { family_group: 40, partner_private_dm: 40, [OWNER]: 40 });
});

Deno.test("fair budget, property: never over budget; a channel under its share is refused only when all is spent (or, for another channel, what is left is the owner's); one over it never takes what others are owed", () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.record({
          who: fc.constantFrom(OWNER, "family_group", "partner_private_dm", "critical_group"),
          dt: fc.integer({ min: 0, max: 120_000 }),
        }),
        { maxLength: 400 },
      ),
      fc.integer({ min: 1, max: 200 }),
      (asks, limit) => {
        let now = 0;
        const b = new LlmCallBudget(
          { calls_per_hour: limit, pause_minutes: 5 },
          { ownerChannel: OWNER, now: () => now },
        );
        const pausedUntil = new Map<string, number>();
        for (const a of asks) {
          now += a.dt;
          const before = b.usage().calls;
          const v = b.take(a.who);
          const after = b.usage().calls;
          const total = Object.values(after).reduce((x, y) => x + y, 0);
          if (total > limit) return false; // never more than the budget in a rolling hour
          const active = new Set([...Object.keys(before), OWNER, a.who]);
          const share = Math.floor(limit / active.size);
          const used = before[a.who] ?? 0;
          const spent = Object.values(before).reduce((x, y) => x + y, 0) >= limit;
          const ownerOwed = Math.max(0, share - (before[OWNER] ?? 0));
          const total0 = Object.values(before).reduce((x, y) => x + y, 0);
          if (!v.allowed && now >= (pausedUntil.get(a.who) ?? 0)) {
            // refused outside a pause of its own: at or over its share, or nothing left at
            // all, or (another channel) what is left is the owner's DM's unused share
            const ownersDue = a.who !== OWNER && limit - total0 - 1 < ownerOwed;
            if (used < share && !spent && !ownersDue) return false;
            pausedUntil.set(a.who, now + 5 * 60_000);
          }
          // no other channel's call ever eats into the owner's DM's unused share
          if (v.allowed && a.who !== OWNER && limit - total < ownerOwed) return false;
          if (v.allowed && used >= share) {
            // over its share: the budget left still covers what every other channel is owed
            let owed = 0;
            for (const c of active) {
              if (c !== a.who) owed += Math.max(0, share - (before[c] ?? 0));
            }
            if (limit - total < owed) return false;
          }
        }
        return true;
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("fair budget: groups flooding one after another never take the owner's DM's share", () => {
  let now = 0;
  const b = new LlmCallBudget(policy, { ownerChannel: OWNER, now: () => now });
  const flood = (channel: string, n: number) => {
    let ok = 0;
    for (let i = 0; i < n; i++) {
      now += 1_000;
      if (b.take(channel).allowed) ok++;
    }
    now += 6 * 60_000; // past its pause
    return ok;
  };
  assert.equal(flood("family_group", 500), 60, "alone with the owner's DM: half");
  // a second group joins: shares are now 40; the family group's 20 beyond it come
  // out of the newcomer's share, never out of the owner's
  assert.equal(flood("critical_group", 500), 20);
  assert.equal(flood(OWNER, 500), 40, "the owner's DM keeps its third");
  assert.deepEqual(b.usage().calls, { family_group: 60, critical_group: 20, [OWNER]: 40 });
});

Deno.test("fair budget: a restart of joi (same joi.db) neither refills the hour nor lifts a pause", async () => {
  const dir = await Deno.makeTempDir({ prefix: "llm-budget-" });
  try {
    let now = 1_000_000;
    const open = () => {
      const db = openDb(`${dir}/joi.db`);
      return { db, b: new LlmCallBudget(policy, { ownerChannel: OWNER, now: () => now, db }) };
    };
    const first = open();
    assert.equal(takeN(first.b, "family_group", 500), 60);
    first.db.close(); // joi stops (or is killed: every call is written when taken)
    now += 60_000;
    const second = open();
    const refused = second.b.take("family_group");
    assert.equal(refused.allowed, false, "the family group's pause outlives the restart");
    assert.equal(refused.retryAfterSeconds, 240);
    now += 5 * 60_000;
    assert.equal(takeN(second.b, "family_group", 100), 0, "its share is still spent");
    assert.equal(takeN(second.b, OWNER, 200), 60, "the owner's DM: its half, not a fresh hour");
    assert.deepEqual(second.b.usage().calls, { family_group: 60, [OWNER]: 60 });
    now += 3_600_000; // the hour rolls: calls older than it are forgotten, on disk too
    assert.equal(takeN(second.b, "family_group", 1), 1);
    const rows = second.db.prepare("SELECT COUNT(*) AS n FROM llm_calls").get() as { n: number };
    assert.equal(rows.n, 1);
    second.db.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
