import assert from "node:assert/strict";
import {
  type BreakerState,
  CircuitBreaker,
  CircuitOpenError,
} from "../../../services/common/circuit_breaker.ts";

function setup() {
  let now = 1_000_000;
  const changes: string[] = [];
  const breaker = new CircuitBreaker({
    failures: 3,
    openSeconds: 30,
    now: () => now,
    onStateChange: (a: BreakerState, b: BreakerState) => changes.push(`${a}->${b}`),
  });
  return { breaker, changes, advance: (ms: number) => (now += ms) };
}

Deno.test("circuit breaker: opens after N consecutive failures, not before", () => {
  const { breaker } = setup();
  breaker.failure();
  breaker.failure();
  assert.equal(breaker.state, "closed");
  breaker.success();
  breaker.failure();
  breaker.failure();
  assert.equal(breaker.state, "closed");
  breaker.failure();
  assert.equal(breaker.state, "open");
  assert.equal(breaker.allow(), false);
  assert.equal(breaker.retryAfterMs(), 30_000);
});

Deno.test("circuit breaker: half-open lets one probe; success closes", () => {
  const { breaker, changes, advance } = setup();
  for (let i = 0; i < 3; i++) breaker.failure();
  advance(29_999);
  assert.equal(breaker.allow(), false);
  advance(1);
  assert.equal(breaker.state, "half_open");
  assert.equal(breaker.allow(), true);
  assert.equal(breaker.allow(), false, "second concurrent probe refused");
  breaker.success();
  assert.equal(breaker.state, "closed");
  assert.deepEqual(changes, ["closed->open", "open->half_open", "half_open->closed"]);
});

Deno.test("circuit breaker: a failed probe reopens for a full period", () => {
  const { breaker, advance } = setup();
  for (let i = 0; i < 3; i++) breaker.failure();
  advance(30_000);
  assert.equal(breaker.allow(), true);
  breaker.failure();
  assert.equal(breaker.state, "open");
  advance(29_000);
  assert.equal(breaker.allow(), false);
  advance(1_000);
  assert.equal(breaker.allow(), true);
});

Deno.test("circuit breaker: call() wraps and refuses with CircuitOpenError", async () => {
  const { breaker } = setup();
  for (let i = 0; i < 3; i++) {
    await assert.rejects(breaker.call(() => Promise.reject(new Error("down"))), /down/);
  }
  await assert.rejects(breaker.call(() => Promise.resolve(1)), CircuitOpenError);
});

Deno.test("circuit breaker: invalid options are refused with the field named", () => {
  assert.throws(() => new CircuitBreaker({ failures: 0, openSeconds: 1 }), /failures/);
  assert.throws(() => new CircuitBreaker({ failures: 1, openSeconds: 0 }), /openSeconds/);
});
