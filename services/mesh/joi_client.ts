/**
 * The mesh's view of joi: a signed request function. In production it is
 * the wire module's `SignedClient` (mesh->joi key), which returns only
 * answers it verified (a forged or altered answer throws, `kind:
 * "unverified"`); its retries are turned off because the forwarder paces
 * retries itself and keeps order.
 *
 * @module
 */
import type { PeerClock, WireRequester } from "../common/wire/mod.ts";

/** Anything that sends a signed request to joi and returns its envelope. */
export interface JoiClient extends WireRequester {
  /** joi's clock offset, from its last signed answer (the SignedClient's). */
  readonly clock?: PeerClock | undefined;
}
