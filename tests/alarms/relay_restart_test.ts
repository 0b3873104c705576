/**
 * A relay killed (SIGKILL) while it holds an alarm joi has not taken (joi is
 * down) posts it when it starts again: openHAB never replays it. Real relay,
 * joi and mesh processes; the alarm must reach the critical group exactly once.
 */
import assert from "node:assert/strict";
import { stateChanged } from "../peers/openhab_sse.ts";
import { startStack } from "./stack.ts";

async function until(pred: () => boolean, what: string, limitMs = 30_000): Promise<void> {
  const end = Date.now() + limitMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

Deno.test({
  name:
    "relay: kill -9 while it holds an alarm joi has not taken; the alarm arrives after both return, once",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const s = await startStack();
    try {
      await s.stopJoi("SIGTERM");
      s.push(stateChanged("Attic_Smoke", "OnOff", "ON", { oldValue: "OFF" }));
      // the relay has it and cannot post it: joi is away
      await until(
        () =>
          s.logs("relay").some((l) => l.event === "relay_joi_unreachable" && l.lane === "critical"),
        "the relay to try and fail",
      );
      await s.stopRelay("SIGKILL");
      await s.startJoi();
      await s.startRelay();
      await until(
        () => s.criticalSends().some((r) => String(r.params.message).includes("by Attic_Smoke ")),
        "the alarm after the relay's restart",
      );
      assert.ok(s.logs("relay").some((l) => l.event === "relay_critical_resumed"));
      await new Promise((r) => setTimeout(r, 1_000));
      assert.equal(
        s.criticalSends().filter((r) => String(r.params.message).includes("by Attic_Smoke "))
          .length,
        1,
      );
    } finally {
      await s.close();
    }
  },
});

Deno.test({
  name: "relay: an alarm raised while the relay was down is read back from openHAB when it starts",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const s = await startStack();
    try {
      s.push(stateChanged("Garage_CO_Detector", "OnOff", "OFF"));
      await until(
        () => s.logs("relay").some((l) => l.event === "relay_critical_forwarded"),
        "the detector's clear state",
      );
      await s.stopRelay("SIGKILL");
      // nobody listens: openHAB's stream loses it, its item state keeps it
      s.push(stateChanged("Garage_CO_Detector", "OnOff", "ON", { oldValue: "OFF" }));
      await s.startRelay();
      await until(
        () =>
          s.criticalSends().some((r) =>
            String(r.params.message).includes("by Garage_CO_Detector ")
          ),
        "the alarm read back at the relay's start",
      );
      assert.ok(s.logs("relay").some((l) => l.event === "relay_resynced"));
    } finally {
      await s.close();
    }
  },
});
