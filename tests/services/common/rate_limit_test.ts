import assert from "node:assert/strict";
import fc from "fast-check";
import { RateLimiter } from "../../../services/common/rate_limit.ts";

const T0 = Date.UTC(2026, 0, 1);

Deno.test("rate limit: per_minute refuses the extra hit and says when to retry", () => {
  const rl = new RateLimiter({ per_minute: 3 });
  for (let i = 0; i < 3; i++) assert.equal(rl.check("a", T0 + i * 1000).allowed, true);
  const v = rl.check("a", T0 + 3000);
  assert.equal(v.allowed, false);
  assert.equal(v.reason, "per_minute");
  // the first hit (T0) leaves the window at T0 + 60 s: 57 s from now
  assert.equal(v.retryAfterSeconds, 57);
  assert.equal(rl.check("a", T0 + 59_999).allowed, false);
  assert.equal(rl.check("a", T0 + 60_001).allowed, true);
});

Deno.test("rate limit: keys are independent", () => {
  const rl = new RateLimiter({ per_hour: 1 });
  assert.equal(rl.check("a", T0).allowed, true);
  assert.equal(rl.check("b", T0).allowed, true);
  assert.equal(rl.check("a", T0 + 1).allowed, false);
});

Deno.test("rate limit: cooldown between hits", () => {
  const rl = new RateLimiter({ per_hour: 120, per_minute: 20, cooldown_seconds: 5 });
  assert.equal(rl.check("owner", T0).allowed, true);
  const v = rl.check("owner", T0 + 1200);
  assert.deepEqual(v, { allowed: false, retryAfterSeconds: 4, reason: "cooldown" });
  assert.equal(rl.check("owner", T0 + 5000).allowed, true);
});

Deno.test("rate limit: per_hour slides rather than resetting on the hour", () => {
  const rl = new RateLimiter({ per_hour: 4 });
  const at = [0, 10, 20, 30].map((m) => T0 + m * 60_000);
  for (const t of at) assert.equal(rl.check("k", t).allowed, true);
  const refused = rl.check("k", T0 + 59 * 60_000);
  assert.equal(refused.allowed, false);
  assert.equal(refused.reason, "per_hour");
  assert.equal(refused.retryAfterSeconds, 60);
  assert.equal(rl.check("k", T0 + 60 * 60_000 + 1).allowed, true);
  assert.equal(rl.check("k", T0 + 60 * 60_000 + 2).allowed, false);
});

Deno.test("rate limit: refused hits are not recorded; peek records nothing", () => {
  const rl = new RateLimiter({ per_minute: 1 });
  assert.equal(rl.check("k", T0).allowed, true);
  for (let i = 1; i < 1000; i++) rl.check("k", T0 + i);
  assert.equal(rl.count("k", T0 + 1000), 1);
  assert.equal(rl.check("k", T0 + 60_001).allowed, true);
  assert.equal(rl.peek("z", T0).allowed, true);
  assert.equal(rl.count("z", T0), 0);
});

Deno.test("rate limit: injected clock is used when no time is passed", () => {
  let now = T0;
  const rl = new RateLimiter({ per_day: 2 }, { now: () => now });
  assert.equal(rl.check("p").allowed, true);
  assert.equal(rl.check("p").allowed, true);
  assert.equal(rl.check("p").allowed, false);
  now += 24 * 3600_000 + 1;
  assert.equal(rl.check("p").allowed, true);
});

Deno.test("rate limit: bad figures are refused with the field named", () => {
  assert.throws(() => new RateLimiter({ per_hour: -1 }), /per_hour must be a non-negative/);
  assert.throws(
    () => new RateLimiter({ cooldown_seconds: Number.NaN }),
    /cooldown_seconds/,
  );
});

Deno.test("rate limit: idle keys are pruned", () => {
  const rl = new RateLimiter({ per_minute: 1 }, { maxIdleKeys: 10 });
  for (let i = 0; i < 10; i++) rl.check(`k${i}`, T0);
  assert.equal(rl.keys, 10);
  rl.check("late", T0 + 120_000);
  assert.equal(rl.keys, 1);
});

Deno.test("rate limit: property — never more than the limit in any window", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 8 }),
      fc.array(fc.integer({ min: 0, max: 5_000 }), { minLength: 1, maxLength: 300 }),
      (perMinute, gaps) => {
        const rl = new RateLimiter({ per_minute: perMinute });
        const accepted: number[] = [];
        let t = T0;
        for (const g of gaps) {
          t += g;
          const v = rl.check("x", t);
          if (v.allowed) accepted.push(t);
          else {
            assert.ok(v.retryAfterSeconds >= 1);
            // retrying at the advertised time succeeds
            assert.equal(rl.peek("x", t + v.retryAfterSeconds * 1000).allowed, true);
          }
        }
        for (let i = 0; i + perMinute < accepted.length; i++) {
          assert.ok(accepted[i + perMinute]! - accepted[i]! >= 60_000);
        }
      },
    ),
  );
});

Deno.test("rate limit: take(n) counts every event of a batch and grants what fits", () => {
  const l = new RateLimiter({ per_hour: 10 });
  const t0 = 1_000_000;
  assert.deepEqual(l.take("events", 4, t0), { granted: 4, allowed: true, retryAfterSeconds: 0 });
  const v = l.take("events", 8, t0 + 1_000);
  assert.equal(v.granted, 6, "only what is left of the hour");
  assert.equal(v.allowed, false);
  assert.equal(v.retryAfterSeconds, 3599);
  assert.equal(l.take("events", 1, t0 + 2_000).granted, 0);
  assert.equal(l.count("events", t0 + 2_000), 10, "a batch of 50 is 50, never 1");
  assert.equal(l.take("events", 4, t0 + 3_600_001).granted, 4, "the first four left the window");
});
