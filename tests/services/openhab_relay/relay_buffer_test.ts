/**
 * The relay's buffer while a post is in flight: overflow trims the oldest
 * events (some of them part of the batch being posted); when the post then
 * succeeds, only what is left of that batch leaves the buffer. No event that
 * was never sent may be removed as "sent".
 */
import assert from "node:assert/strict";
import { okEnvelope, relayFor, until } from "./relay_helpers.ts";

Deno.test("relay: overflow during an in-flight post never discards unsent events", async () => {
  const posted: string[][] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let first = true;
  const fakeFetch = (async (input: string | URL | Request, init?: RequestInit) => {
    const url = String(input instanceof Request ? input.url : input);
    if (url.includes("/rest/events")) {
      // an open event stream that stays quiet (events are fed through accept())
      // (closed by the relay's abort, as a real connection is)
      const stream = new ReadableStream({
        start(c) {
          init?.signal?.addEventListener(
            "abort",
            () => c.error(new DOMException("aborted", "AbortError")),
          );
        },
      });
      return new Response(stream, {
        headers: { "content-type": "text/event-stream" },
      });
    }
    const body = JSON.parse(new TextDecoder().decode(init!.body as Uint8Array));
    posted.push(body.events.map((e: { topic: string }) => e.topic));
    if (first) {
      first = false;
      await gate; // the first post stays in flight until the buffer has overflowed
    }
    return okEnvelope({});
  }) as typeof fetch;
  const { relay } = relayFor("http://127.0.0.1:1", "http://127.0.0.1:2", "token-0123456789", {
    fetch: fakeFetch,
    bufferMax: 5,
    maxBatch: 3,
  });
  const event = (i: number) =>
    JSON.stringify({
      topic: `openhab/items/Item${i}/statechanged`,
      payload: JSON.stringify({ type: "OnOff", value: "ON", oldType: "OnOff", oldValue: "OFF" }),
      type: "ItemStateChangedEvent",
    });
  const running = relay.run();
  try {
    for (let i = 1; i <= 3; i++) relay.accept(event(i));
    await until(() => posted.length === 1, "the first post");
    // while [1,2,3] is in flight, 4..7 arrive: the buffer (max 5) trims 1 and 2
    for (let i = 4; i <= 7; i++) relay.accept(event(i));
    assert.equal(relay.stats.dropped, 2);
    release();
    await until(() => relay.stats.buffered === 0, "the buffer to drain");
    const sent = new Set(posted.flat().map((t) => Number(t.match(/Item(\d+)/)![1])));
    for (let i = 3; i <= 7; i++) assert.ok(sent.has(i), `event ${i} was never sent: ${[...sent]}`);
  } finally {
    relay.stop();
    await running;
  }
});
