/**
 * Who is calling: the peer address of a request, and the allowlist it is
 * checked against (the signed routes' first check; the ingest app's too).
 *
 * **Starting the server.** The peer address is what the server passes as
 * the handler's second argument; Hono exposes it as `c.env` (read through
 * `getConnInfo` of `hono/deno`). Serve apps with `serveGuarded(app, ...)`
 * (serve.ts) or `Deno.serve(options, app.fetch)`, never with a wrapper such
 * as `(req) => app.fetch(req)`, which drops it: without a peer address every
 * signed request is refused with 403 and an error is logged. In-process tests
 * pass it explicitly: `app.request(path, init, { remoteAddr: {...} })`.
 *
 * @module
 */
import type { Context } from "hono";
import { getConnInfo } from "hono/deno";
import { peerOf } from "./connection.ts";

const IPV4 =
  /^(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}$/;

/** The canonical form of an IP literal (lowercase, IPv4-mapped IPv6 unwrapped). */
export function normalizeAddress(address: string): string {
  let a = address.trim().toLowerCase();
  if (a.startsWith("[") && a.endsWith("]")) a = a.slice(1, -1);
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  return mapped ? mapped[1]! : a;
}

/**
 * The set of allowed peers in canonical form; throws naming an entry that is
 * not an IP literal (or `unix`, which admits Unix-socket peers).
 */
export function checkSources(sources: readonly string[], who = "signedRoutes"): Set<string> {
  const set = new Set<string>();
  for (const s of sources) {
    const n = normalizeAddress(s);
    const isV6 = n.includes(":") && /^[0-9a-f:.]+$/.test(n);
    if (n !== "unix" && !IPV4.test(n) && !isV6) {
      throw new TypeError(
        `${who}: allowed source "${s}" is not an IP address literal (or "unix"); ` +
          `list the peer's address as it connects, e.g. its Nebula IP 10.42.0.1`,
      );
    }
    set.add(n);
  }
  return set;
}

/** The peer of this request: an IP, `unix`, or undefined when the server hides it. */
export function peerAddress(c: Context): string | undefined {
  const known = peerOf(c.req.raw); // the guarded server read it once per connection
  if (known !== undefined) return known;
  let info;
  try {
    info = getConnInfo(c);
  } catch {
    return undefined;
  }
  if ((info.remote.transport as string | undefined) === "unix") return "unix";
  return info.remote.address === undefined ? undefined : normalizeAddress(info.remote.address);
}
