/**
 * The link watch's check, the same at both ends: one signed round trip
 * (`POST /api/v1/link/ping`, signed with the caller's direction key, so only
 * the real peer can answer it meaningfully) with a deadline. A check
 * succeeds when the peer answered 2xx in time; its answer carries the peer's
 * clock, which gives the offset between the two clocks (NTP's midpoint rule).
 *
 * @module
 */
import type { WireRequester, WireResponse } from "../wire/client.ts";

/** The path of the link check on joi (8443) and the mesh (8444). */
export const LINK_PING_PATH = "/api/v1/link/ping";

/** Anything that sends one signed request (the wire's `SignedClient`). */
export type LinkRequester = WireRequester;

/** An offset measurement: the peer's clock minus ours. */
export interface ClockSample {
  /** ms; positive when the peer is ahead. */
  offsetMs: number;
  /** Round trip (ms); the offset's uncertainty is half of it. */
  rttMs: number;
  /** When it was taken (our clock). */
  at: number;
}

/** The outcome of one check. */
export type PingOutcome =
  | { ok: true; at: number; clock: ClockSample | null; data: Record<string, unknown> }
  | { ok: false; at: number; error: string; status: number | null; clock: ClockSample | null };

/** The offset from a server clock seen between `sent` and `received` (ms). */
export function clockSample(serverMs: number, sent: number, received: number): ClockSample {
  return {
    offsetMs: Math.round(serverMs - (sent + received) / 2),
    rttMs: Math.max(0, received - sent),
    at: received,
  };
}

/** Sends one check through `client`; never throws. */
export async function linkPing(
  client: LinkRequester,
  body: Record<string, unknown>,
  now: () => number,
): Promise<PingOutcome> {
  const sent = now();
  let r: WireResponse;
  try {
    r = await client.request("POST", LINK_PING_PATH, body);
  } catch (e) {
    return {
      ok: false,
      at: now(),
      error: (e as Error).message.slice(0, 300),
      status: null,
      clock: null,
    };
  }
  const received = now();
  const server = Date.parse(r.envelope.timestamp);
  const clock = Number.isFinite(server) ? clockSample(server, sent, received) : null;
  if (r.status >= 200 && r.status < 300 && r.envelope.status === "ok") {
    const data = r.envelope.data;
    return {
      ok: true,
      at: received,
      clock,
      data: data !== null && typeof data === "object" ? data as Record<string, unknown> : {},
    };
  }
  const why = r.envelope.status === "error"
    ? `${r.envelope.error.code}: ${r.envelope.error.message}`
    : `HTTP ${r.status}`;
  return { ok: false, at: received, error: why.slice(0, 300), status: r.status, clock };
}
