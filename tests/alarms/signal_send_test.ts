/**
 * signal-cli refusing or failing the critical group's `send` never loses the
 * alert: the real relay, joi and mesh processes with the signal-cli stand-in
 * answering as signal-cli does when nothing was delivered (signal-cli.md):
 * error `-1`/`-3` with every member's `NETWORK_FAILURE` in
 * `error.data.response`, or `-5` with `retryAfterSeconds`. The alert must be
 * sent again until a send succeeds, once, also when the mesh is restarted
 * while it waits; never reported to joi as sent while nobody got it.
 */
import assert from "node:assert/strict";
import { stateChanged } from "../peers/openhab_sse.ts";
import type { RecordedRequest, SendOutcome } from "../peers/signal_cli/peer.ts";
import { type Stack, startStack } from "./stack.ts";

async function until(pred: () => boolean, what: string, limitMs = 30_000): Promise<void> {
  const end = Date.now() + limitMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A send signal-cli answered with a result in which somebody got it. */
function delivered(r: RecordedRequest): boolean {
  const results = (r.result as { results?: { type?: string }[] } | undefined)?.results ?? [];
  return results.some((x) => x.type === "SUCCESS");
}

function alertsOf(s: Stack, device: string): RecordedRequest[] {
  return s.criticalSends().filter((r) => String(r.params.message).includes(`by ${device} `));
}

/** The critical group's sends fail `n` times with `failure`, then succeed. */
function failCritical(s: Stack, n: number, failure: (p: Record<string, unknown>) => SendOutcome) {
  let failed = 0;
  s.peer.onSend = (p) => {
    if (s.isCriticalSend({ method: "send", params: p, id: 0, at: 0 }) && failed < n) {
      failed++;
      return failure(p);
    }
    return { result: s.peer.successResult(p) };
  };
}

function everyMember(s: Stack, p: Record<string, unknown>, type: string, extra = {}) {
  return s.peer.addressesOf(p).map((a) => ({ recipientAddress: a, type, ...extra }));
}

Deno.test({
  name: "signal-cli: a critical send that reached nobody (-1, NETWORK_FAILURE) is sent again",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const s = await startStack();
    try {
      failCritical(s, 2, (p) => ({
        error: {
          code: -1,
          message: "Failed to send message",
          data: { response: { timestamp: 1, results: everyMember(s, p, "NETWORK_FAILURE") } },
        },
      }));
      s.push(stateChanged("Kitchen_Smoke", "OnOff", "ON", { oldValue: "OFF" }));
      await until(
        () => alertsOf(s, "Kitchen_Smoke").some(delivered),
        "the alert to reach the critical group after signal-cli's failures",
      );
      const sends = alertsOf(s, "Kitchen_Smoke");
      assert.equal(sends.filter(delivered).length, 1, "delivered once");
      assert.equal(sends.length, 3, "two failed tries, then the one that got through");
    } finally {
      await s.close();
    }
  },
});

Deno.test({
  name:
    "signal-cli: a rate-limited critical send (-5) arrives after retryAfterSeconds, across a mesh restart",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const s = await startStack();
    try {
      failCritical(s, 1, (p) => ({
        error: {
          code: -5,
          message: "Rate limit exceeded",
          data: {
            response: {
              timestamp: 1,
              results: everyMember(s, p, "RATE_LIMIT_FAILURE", { retryAfterSeconds: 3 }),
            },
          },
        },
      }));
      s.push(stateChanged("Hall_CO_Detector", "OnOff", "ON", { oldValue: "OFF" }));
      await until(() => alertsOf(s, "Hall_CO_Detector").length === 1, "the rate-limited try");
      // the mesh goes away while the alert waits for signal-cli's rate limit
      await s.stopMesh("SIGKILL");
      await s.startMesh();
      await until(
        () => alertsOf(s, "Hall_CO_Detector").some(delivered),
        "the alert after the rate limit and the mesh's restart",
      );
      const sends = alertsOf(s, "Hall_CO_Detector");
      assert.equal(sends.filter(delivered).length, 1, "delivered once");
      const wait = sends.find(delivered)!.at - sends[0]!.at;
      assert.ok(wait >= 3_000, `sent again ${wait} ms after the refusal, before retryAfterSeconds`);
    } finally {
      await s.close();
    }
  },
});
