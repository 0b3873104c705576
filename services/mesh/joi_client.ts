/**
 * The mesh's view of joi: a signed request function. In production it is
 * the wire module's `SignedClient` (mesh->joi key); its retries are turned
 * off because the forwarder paces retries itself and keeps order.
 *
 * @module
 */
import type { WireResponse } from "../common/wire/client.ts";

/** Anything that sends a signed request to joi and returns its envelope. */
export interface JoiClient {
  request(
    method: string,
    path: string,
    body?: unknown,
    headers?: Record<string, string>,
  ): Promise<WireResponse>;
}
