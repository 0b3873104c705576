import assert from "node:assert/strict";
import { criticalTexts, directTexts, startHarness, stateEvent } from "../harness.ts";

Deno.test("pwned smoke sensor flips 1,000 times in a minute: at most 3 alerts and one malfunction warning; a real alarm still gets through", async () => {
  const h = await startHarness(); // shipped policy.yaml figures, including the state rate limit
  try {
    const pwned = "Attic_Smoke";
    let realAlarmAt = -1;
    for (let i = 0; i < 1000; i++) {
      h.clock.t += 60; // 1,000 events within 60 s
      const r = await h.post(
        "/api/v1/openhab/state",
        stateEvent(pwned, i % 2 === 0 ? "ON" : "OFF", h.now()),
      );
      assert.ok(r.status === 200, `flood event ${i} answered ${r.status}`);
      if (i === 500) {
        const before = h.mesh.received.length;
        const real = await h.post(
          "/api/v1/openhab/state",
          stateEvent("Kitchen_Smoke", "ON", h.now()),
        );
        assert.equal(real.status, 200);
        await h.settle();
        assert.equal(h.mesh.received.length, before + 1, "the real alarm is sent at once");
        realAlarmAt = h.mesh.received.length - 1;
      }
    }
    await h.settle();
    const crit = criticalTexts(h.mesh);
    const fromPwned = crit.filter((t) => t.includes(pwned));
    assert.ok(fromPwned.length <= 3, `pwned device got ${fromPwned.length} critical alerts`);
    assert.ok(fromPwned.length >= 1, "its first alarm is still reported");
    assert.equal(crit.filter((t) => t.includes("Kitchen_Smoke")).length, 1);
    assert.match(h.mesh.received[realAlarmAt]!.body.content.text, /Smoke by Kitchen_Smoke/);
    const malfunction = directTexts(h.mesh).filter((t) =>
      t.includes("Possible sensor malfunction")
    );
    assert.equal(malfunction.length, 1, "exactly one malfunction warning");
    assert.match(
      malfunction[0]!,
      new RegExp(`^Possible sensor malfunction: ${pwned} changed state 7 times`),
    );
    assert.equal(h.mesh.received.length, fromPwned.length + 1 + 1, "nothing else was sent");
    const dev = h.services.guard.device(pwned)!;
    assert.equal(dev.flapping, true);
    assert.equal(dev.suppressed, true);
    assert.ok(
      h.logs.some((l) => l.level === "security" && l.event === "iot_device_suppressed"),
      "suppression is logged as a security event",
    );
    // the loop of the pwned device stays silent
    for (let i = 0; i < 4; i++) await h.advance(5 * 60_000);
    assert.equal(criticalTexts(h.mesh).filter((t) => t.includes(pwned)).length, fromPwned.length);
  } finally {
    await h.close();
  }
});

Deno.test("a flapping door contact: the endpoint limit answers 429, one malfunction warning, silence until the hour passes", async () => {
  const h = await startHarness();
  try {
    const statuses: number[] = [];
    for (let i = 0; i < 200; i++) {
      h.clock.t += 300;
      const r = await h.post(
        "/api/v1/openhab/state",
        stateEvent("FrontDoor_Contact", i % 2 === 0 ? "OPEN" : "CLOSED", h.now()),
      );
      statuses.push(r.status);
      if (r.status === 429) {
        const err = r.json.error as { code: string; retry_after: number };
        assert.equal(err.code, "rate_limited");
        assert.ok(err.retry_after > 0);
      }
    }
    assert.equal(statuses.filter((s) => s === 200).length, h.policy.rate_limits.openhab.state);
    assert.equal(
      statuses.filter((s) => s === 429).length,
      200 - h.policy.rate_limits.openhab.state,
    );
    await h.settle();
    const direct = directTexts(h.mesh);
    assert.equal(direct.length, 1);
    assert.match(direct[0]!, /FrontDoor_Contact changed state 7 times within 60 minutes/);
    assert.equal(criticalTexts(h.mesh).length, 0);
    // an hour later the device has settled; a single change is ordinary context again
    await h.advance(61 * 60_000);
    const r = await h.post(
      "/api/v1/openhab/state",
      stateEvent("FrontDoor_Contact", "OPEN", h.now()),
    );
    assert.equal(r.status, 200);
    assert.equal(h.services.guard.device("FrontDoor_Contact")!.flapping, false);
    await h.settle();
    assert.equal(h.mesh.received.length, 1);
  } finally {
    await h.close();
  }
});
