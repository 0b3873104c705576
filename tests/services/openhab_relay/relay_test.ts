import assert from "node:assert/strict";
import { parseSse } from "../../../services/openhab_relay/sse.ts";
import { readTokenFile } from "../../../services/openhab_relay/service.ts";
import { itemChange, startOpenhabSse, stateChanged } from "../../peers/openhab_sse.ts";
import { criticalTexts, startHarness } from "../joi/harness.ts";
import { okEnvelope, relayFor, until } from "./relay_helpers.ts";

const TOKEN = "oh.joirelay.0123456789abcdef";

Deno.test("SSE parser: fields, multi-line data, comments, CRLF, split chunks", async () => {
  const text =
    ": hello\r\nevent: alive\r\ndata: {}\r\n\r\nevent: message\ndata: a\ndata: b\n\ndata: c\n\n";
  const bytes = new TextEncoder().encode(text);
  const stream = new ReadableStream<Uint8Array>({
    start(c) {
      for (let i = 0; i < bytes.length; i += 7) c.enqueue(bytes.slice(i, i + 7));
      c.close();
    },
  });
  const out = [];
  for await (const e of parseSse(stream)) out.push(e);
  assert.deepEqual(out, [
    { event: "alive", data: "{}" },
    { event: "message", data: "a\nb" },
    { event: "message", data: "c" },
  ]);
});

Deno.test("SSE parser: an over-long line or event is skipped with its size and topic; the rest is read", async () => {
  const big = JSON.stringify({
    topic: "openhab/items/Door_Camera/statechanged",
    payload: JSON.stringify({ type: "Raw", value: "A".repeat(300_000) }),
    type: "ItemStateChangedEvent",
  });
  const text = `event: message\ndata: ${big}\n\n` +
    `event: message\ndata: {"topic":"openhab/items/Multi/state",\n` +
    `data: ${"B".repeat(600)}\ndata: ${"C".repeat(600)}\n\n` +
    `event: message\ndata: after\n\n`;
  const bytes = new TextEncoder().encode(text);
  const stream = new ReadableStream<Uint8Array>({
    start(c) {
      for (let i = 0; i < bytes.length; i += 4096) c.enqueue(bytes.slice(i, i + 4096));
      c.close();
    },
  });
  const skips: unknown[] = [];
  const out = [];
  for await (
    const e of parseSse(stream, {
      maxLineBytes: 1024,
      maxEventBytes: 1024,
      onSkip: (s) => skips.push(s),
    })
  ) out.push(e);
  assert.deepEqual(out, [{ event: "message", data: "after" }]);
  assert.deepEqual(skips, [
    {
      bytes: new TextEncoder().encode(`data: ${big}`).length,
      limit: 1024,
      what: "line",
      topic: "openhab/items/Door_Camera/statechanged",
    },
    { bytes: 38 + 601 + 601, limit: 1024, what: "event", topic: "openhab/items/Multi/state" },
  ]);
});

Deno.test("relay: openHAB stream -> joi, keep-alives, filtering, a dropped connection reconnects", async () => {
  const sse = startOpenhabSse(TOKEN);
  const h = await startHarness();
  const { relay } = relayFor(sse.url, h.url, TOKEN);
  const running = relay.run();
  try {
    await sse.waitConnections(1);
    assert.equal(sse.lastTopics, "openhab/items/*,openhab/things/*,openhab/channels/*");
    sse.alive();
    for (const ev of itemChange("Living_Temperature", "Quantity", "21.5 °C", "21.0 °C")) {
      sse.push(ev);
    }
    for (const ev of itemChange("Router_Password", "String", "hunter2", "x")) sse.push(ev);
    sse.push({
      topic: "openhab/things/zwave:device:c:node5/statuschanged",
      payload: JSON.stringify([{ status: "OFFLINE", statusDetail: "NONE" }, {
        status: "ONLINE",
        statusDetail: "NONE",
      }]),
      type: "ThingStatusInfoChangedEvent",
    });
    await until(() => relay.stats.forwarded === 2, "two forwarded events");
    const batched = h.services.pipeline.batcher.flush(h.now(), true);
    assert.match(batched.find((b) => b.device === "Living_Temperature")!.summary, /last 21\.5 °C/);
    assert.equal(h.services.guard.device("zwave:device:c:node5")?.state, "OFFLINE");
    assert.equal(
      h.services.guard.device("Router_Password"),
      undefined,
      "blocked item never left the relay",
    );
    assert.equal(relay.stats.filtered, 2 + 3, "state/stateupdated fan-out and the blocked item");

    sse.dropAll();
    await sse.waitConnections(2);
    for (const ev of itemChange("Kitchen_Smoke", "OnOff", "ON", "OFF")) sse.push(ev);
    await h.mesh.waitFor((r) => r.length === 1);
    assert.match(h.mesh.received[0]!.body.content.text, /Smoke by Kitchen_Smoke/);
  } finally {
    relay.stop();
    await running;
    await sse.close();
    await h.close();
  }
});

Deno.test("relay: a silent stream (no keep-alive for 3 periods) is reconnected by the watchdog", async () => {
  const sse = startOpenhabSse(TOKEN);
  const h = await startHarness();
  const { relay, logs } = relayFor(sse.url, h.url, TOKEN, { keepAliveMs: 40 });
  const running = relay.run();
  try {
    await sse.waitConnections(1);
    await sse.waitConnections(2);
    assert.ok(relay.stats.watchdogReconnects >= 1);
    assert.ok(logs.some((l) => l.event === "relay_stream_silent"));
  } finally {
    relay.stop();
    await running;
    await sse.close();
    await h.close();
  }
});

Deno.test("relay: a wrong token is refused by openHAB and never connects", async () => {
  const sse = startOpenhabSse("another-token-value");
  const h = await startHarness();
  const { relay, logs } = relayFor(sse.url, h.url, TOKEN);
  const running = relay.run();
  try {
    await until(() => sse.unauthorized >= 2, "repeated 401s");
    assert.equal(sse.connections, 0);
    assert.ok(
      logs.some((l) => l.event === "relay_stream_failed" && String(l.error).includes("401")),
    );
    assert.ok(!JSON.stringify(logs).includes(TOKEN), "the token is never logged");
  } finally {
    relay.stop();
    await running;
    await sse.close();
    await h.close();
  }
});

Deno.test("relay: buffers while joi is unreachable and delivers when it is back", async () => {
  const sse = startOpenhabSse(TOKEN);
  const h = await startHarness();
  let up = false;
  let refusedWhileDown = 0;
  const gate = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    if (!up) {
      refusedWhileDown++;
      await req.body?.cancel();
      return new Response("down", { status: 503 });
    }
    const u = new URL(req.url);
    return await fetch(h.url + u.pathname, {
      method: req.method,
      headers: req.headers,
      body: await req.arrayBuffer(),
    });
  });
  const { relay } = relayFor(sse.url, `http://127.0.0.1:${gate.addr.port}`, TOKEN);
  const running = relay.run();
  try {
    await sse.waitConnections(1);
    for (const ev of itemChange("Hall_Light", "OnOff", "ON", "OFF")) sse.push(ev);
    for (const ev of itemChange("Bath_WaterLeak", "OnOff", "ON", "OFF")) sse.push(ev);
    await until(() => refusedWhileDown >= 2, "retries while joi is down");
    // the water leak waits in the critical lane (maybe twice: its event, and its state
    // read back at connect), the light in the ordinary buffer
    assert.equal(relay.stats.buffered, 1);
    assert.ok(relay.stats.criticalPending >= 1);
    assert.equal(relay.stats.forwarded, 0);
    up = true;
    await until(() => relay.stats.buffered === 0 && relay.stats.criticalPending === 0, "delivery");
    await h.mesh.waitFor((r) => r.length === 1);
    await h.settle();
    assert.equal(h.mesh.received.length, 1, "one alert, whatever the relay read twice");
    assert.equal(h.services.guard.device("Hall_Light")?.state, "ON");
    assert.ok(relay.stats.postFailures >= 2);
  } finally {
    relay.stop();
    await running;
    await sse.close();
    await gate.shutdown();
    await h.close();
  }
});

Deno.test("relay token file: 0600 accepted, group-readable refused with the fix", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const p = `${dir}/openhab_token`;
    await Deno.writeTextFile(p, TOKEN + "\n", { mode: 0o600 });
    await Deno.chmod(p, 0o600);
    assert.equal(await readTokenFile(p), TOKEN);
    await Deno.chmod(p, 0o640);
    await assert.rejects(readTokenFile(p), /chmod 600/);
    await assert.rejects(readTokenFile(`${dir}/missing`), /create it with mode 0600/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("relay: stop() ends it promptly while the stream still delivers a backlog", async () => {
  const sse = startOpenhabSse(TOKEN);
  const h = await startHarness({ patch: (p) => (p.rate_limits.openhab.events = 1_000_000) });
  const { relay } = relayFor(sse.url, h.url, TOKEN);
  const running = relay.run();
  try {
    await sse.waitConnections(1);
    for (let i = 0; i < 8000; i++) {
      sse.push(stateChanged(`Room${i % 50}_Light`, "OnOff", i % 2 ? "ON" : "OFF"));
    }
    await until(() => relay.stats.received > 100, "the backlog to flow");
    await new Promise((r) => setTimeout(r, 1_500)); // the rest sits in the client's buffer
    relay.stop();
    // an aborted fetch kept yielding its buffered body: the relay used to read on forever
    const ended = await Promise.race([
      running.then(() => true),
      new Promise<boolean>((r) => setTimeout(() => r(false), 5_000)),
    ]);
    assert.ok(ended, `still running 5 s after stop(): ${JSON.stringify(relay.stats)}`);
  } finally {
    relay.stop();
    await Promise.race([running, new Promise((r) => setTimeout(r, 1_000))]);
    await sse.close();
    await h.close();
  }
});

Deno.test("relay: a flooding detector keeps only its latest critical events waiting; another alarm still goes", async () => {
  const posted: string[] = [];
  let up = false;
  const fakeFetch = ((input: string | URL | Request, init?: RequestInit) => {
    const url = String(input instanceof Request ? input.url : input);
    if (url.includes("/rest/events")) {
      return Promise.resolve(
        new Response(
          new ReadableStream({
            start(c) {
              init?.signal?.addEventListener(
                "abort",
                () => c.error(new DOMException("x", "AbortError")),
              );
            },
          }),
          { headers: { "content-type": "text/event-stream" } },
        ),
      );
    }
    if (!up) return Promise.reject(new TypeError("connection refused"));
    const body = JSON.parse(new TextDecoder().decode(init!.body as Uint8Array));
    posted.push(...body.events.map((e: { topic: string }) => e.topic));
    return Promise.resolve(okEnvelope({ accepted: [0], refused: [] }));
  }) as typeof fetch;
  const { relay, logs } = relayFor("http://127.0.0.1:1", "http://127.0.0.1:2", TOKEN, {
    fetch: fakeFetch,
  });
  const running = relay.run();
  try {
    const ev = (item: string, value: string) =>
      JSON.stringify(stateChanged(item, "OnOff", value, { oldValue: "OFF" }));
    for (let i = 0; i < 500; i++) relay.accept(ev("Attic_Smoke", i % 2 ? "OFF" : "ON"));
    relay.accept(ev("Kitchen_Smoke", "ON"));
    assert.ok(relay.stats.criticalPending <= 21, `${relay.stats.criticalPending} waiting`);
    assert.ok(logs.some((l) => l.event === "relay_critical_flood" && l.item === "Attic_Smoke"));
    up = true;
    await until(
      () => posted.includes("openhab/items/Kitchen_Smoke/statechanged"),
      "the other alarm",
    );
  } finally {
    relay.stop();
    await running;
  }
});

Deno.test("relay: an alarm raised while the stream was down is read back at reconnect (openHAB does not replay)", async () => {
  const sse = startOpenhabSse(TOKEN);
  const h = await startHarness();
  const { relay, logs } = relayFor(sse.url, h.url, TOKEN);
  const running = relay.run();
  try {
    await sse.waitConnections(1);
    // known states: the detector is clear, a member of gLeaks whose name tells no class too
    sse.push(stateChanged("Kitchen_Smoke", "OnOff", "OFF"));
    sse.push(stateChanged("Basement_Sensor", "OnOff", "OFF", { group: "gLeaks" }));
    await until(() => relay.stats.criticalForwarded >= 2, "the clear states");
    sse.dropAll();
    // while no stream is open: lost to the stream, kept in openHAB's item states
    sse.push(stateChanged("Kitchen_Smoke", "OnOff", "ON"));
    sse.push(stateChanged("Basement_Sensor", "OnOff", "ON", { group: "gLeaks" }));
    sse.push(stateChanged("Hall_Light", "OnOff", "ON"));
    await sse.waitConnections(2);
    await h.mesh.waitFor(() => criticalTexts(h.mesh).length >= 2, 20_000);
    const texts = criticalTexts(h.mesh);
    assert.equal(texts.filter((t) => t.includes("Smoke by Kitchen_Smoke ")).length, 1);
    assert.equal(texts.filter((t) => t.includes("Water leak by Basement_Sensor ")).length, 1);
    assert.ok(logs.some((l) => l.event === "relay_resynced"));
    assert.ok(sse.itemReads >= 2, "read at each connection");
    // a later reconnect reads the same states again: joi knows them, no second alert
    sse.dropAll();
    await sse.waitConnections(3);
    await until(
      () => logs.filter((l) => l.event === "relay_resynced").length >= 3,
      "the third read",
    );
    await h.settle();
    assert.equal(criticalTexts(h.mesh).length, 2);
  } finally {
    relay.stop();
    await running;
    await sse.close();
    await h.close();
  }
});
