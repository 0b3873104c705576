/**
 * Shared scaffolding of the relay tests: a {@link Relay} with the test
 * policy's item lists and short backoffs, its log lines captured, and a
 * polling wait.
 *
 * @module
 */
import { createLogger, type Fields, memorySink } from "../../../services/common/log.ts";
import { Relay, type RelayOptions } from "../../../services/openhab_relay/relay.ts";

/**
 * A relay from `openhabUrl` to `joiUrl` authenticating with `token`;
 * `extra` overrides any option (e.g. `keepAliveMs`, `signingKey`).
 */
export function relayFor(
  openhabUrl: string,
  joiUrl: string,
  token: string,
  extra: Partial<RelayOptions> = {},
): { relay: Relay; logs: Fields[] } {
  const sink = memorySink();
  const relay = new Relay({
    openhabUrl,
    joiUrl,
    token,
    source: "openhab.homelab.example",
    items: { allow: ["*"], block: ["*_password*", "*_secret*", "*_key*", "*_token*"] },
    maxBatch: 50,
    maxEventBytes: 10_240,
    maxBodyBytes: 65_536,
    criticalTypes: ["smoke", "fire", "co", "gas", "water_leak", "security_breach"],
    keepAliveMs: 10_000,
    backoffMinMs: 20,
    backoffMaxMs: 200,
    log: createLogger("relay-test", { quiet: true, sinks: [sink] }),
    ...extra,
  });
  return { relay, logs: sink.lines };
}

/** Polls `pred` every 10 ms; throws naming `what` after `timeoutMs`. */
export async function until(
  pred: () => boolean,
  what: string,
  timeoutMs = 10_000,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A stand-in joi's answer: the contract's envelope (the relay acts only on one it can parse). */
export function okEnvelope(data: Record<string, unknown>): Response {
  return Response.json({
    status: "ok",
    request_id: crypto.randomUUID(),
    timestamp: new Date().toISOString(),
    data,
  });
}
