import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { dataEnvelope } from "../../peers/signal_cli/peer.ts";
import {
  events,
  FAST_MESH_YAML,
  GROUPS,
  outboundBody,
  OWNER,
  PARTNER,
  startStack,
  STRANGER,
} from "./harness.ts";

const sha = (s: string) => createHash("sha256").update(s).digest("hex");

Deno.test("outbound: canonical id and channels are resolved by the mesh; audited without text", async () => {
  const s = await startStack();
  try {
    const r1 = await s.joi.outbound(s.url, outboundBody("owner", "good morning"));
    assert.equal(r1.status, 200, JSON.stringify(r1.envelope));
    const r2 = await s.joi.outbound(
      s.url,
      outboundBody("family_group", "dinner at 7", { delivery: { target: "group" } }),
    );
    assert.equal(r2.status, 200);
    const r3 = await s.joi.outbound(s.url, outboundBody("partner_private_dm", "hi"));
    assert.equal(r3.status, 200);
    const sends = s.peer.calls("send");
    assert.deepEqual(sends.map((c) => c.params.recipient ?? c.params.groupId), [
      [OWNER.number],
      GROUPS.family_group,
      [PARTNER.number],
    ]);
    const data = r1.envelope.status === "ok" ? r1.envelope.data as Record<string, unknown> : {};
    assert.equal(data.transport, "signal");
    assert.equal(data.delivered, false);
    assert.equal(data.outcome, "ok");
    const audit = events(s.logs, "send_audit");
    assert.equal(audit.length, 3);
    for (const a of audit) {
      const line = JSON.stringify(a);
      assert.ok(!line.includes("good morning") && !line.includes("dinner"), "no text in audit");
      assert.ok(!line.includes(OWNER.number) && !line.includes(PARTNER.number), "hashed");
    }
    assert.equal(audit[0]!.recipient_hash, sha(OWNER.number));
  } finally {
    await s.stop();
  }
});

Deno.test("outbound to a non-allowlisted recipient or group is refused and sent nowhere", async () => {
  const s = await startStack();
  try {
    const cases = [
      outboundBody("mallory", "x"),
      outboundBody("owner", "x", { recipient: { id: "owner", transport_id: STRANGER.number } }),
      outboundBody("x", "x", { delivery: { target: "group", group_id: "QUJDREVGR0g=" } }),
      outboundBody("stranger_group", "x", { delivery: { target: "group" } }),
      outboundBody(STRANGER.number, "x"),
    ];
    for (const body of cases) {
      const r = await s.joi.outbound(s.url, body);
      assert.equal(r.status, 403, JSON.stringify(body));
      assert.equal(r.envelope.status === "error" && r.envelope.error.code, "forbidden");
    }
    assert.equal(s.peer.calls("send").length, 0);
    assert.equal(events(s.logs, "outbound_refused_not_allowlisted").length, cases.length);
  } finally {
    await s.stop();
  }
});

Deno.test("outbound requests must be signed by joi: unsigned, wrong key or replayed are refused", async () => {
  const s = await startStack();
  try {
    const body = JSON.stringify(outboundBody("owner", "x"));
    const unsigned = await fetch(`${s.url}/api/v1/message/outbound`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body,
    });
    assert.equal(unsigned.status, 401);
    await unsigned.body?.cancel();
    // a valid signature replayed: captured once, sent twice
    let captured: { url: string; init: RequestInit } | null = null;
    const { SignedClient, loadWireKey, importWireKey, readKeyFile, WireClientError } = await import(
      "../../../services/common/wire/mod.ts"
    );
    const key = await loadWireKey(`${s.dir}/secrets`, "joi_to_mesh");
    const client = new SignedClient({
      baseUrl: s.url,
      key,
      direction: "joi_to_mesh",
      maxRetries: 0,
      fetch: (input, init) => {
        captured = { url: String(input), init: init! };
        return fetch(input, init);
      },
    });
    const first = await client.request("POST", "/api/v1/message/outbound", JSON.parse(body));
    assert.equal(first.status, 200);
    const c = captured as unknown as { url: string; init: RequestInit };
    const replay = await fetch(c.url, c.init);
    assert.equal(replay.status, 409);
    await replay.body?.cancel();
    // the mesh->joi key cannot sign joi->mesh requests: refused with 401, and
    // the refusal (signed under the real joi->mesh response key) does not
    // verify under the wrong key either
    const wrong = new SignedClient({
      baseUrl: s.url,
      key: await importWireKey(
        await readKeyFile(`${s.dir}/secrets/mesh_to_joi.key`),
        "joi_to_mesh",
      ),
      direction: "joi_to_mesh",
      maxRetries: 0,
    });
    await assert.rejects(
      () => wrong.request("POST", "/api/v1/message/outbound", JSON.parse(body)),
      (e) => e instanceof WireClientError && e.status === 401 && e.kind === "unverified",
    );
    assert.equal(s.peer.calls("send").length, 1);
  } finally {
    await s.stop();
  }
});

Deno.test("outbound limits: owner DM cooldown; event-triggered critical alerts are never limited", async () => {
  let now = Date.parse("2026-01-01T10:00:00Z");
  const s = await startStack({ now: () => now });
  try {
    assert.equal((await s.joi.outbound(s.url, outboundBody("owner", "a"))).status, 200);
    const r = await s.joi.outbound(s.url, outboundBody("owner", "b"));
    assert.equal(r.status, 429);
    assert.equal(r.envelope.status === "error" && r.envelope.error.retry_after, 5);
    now += 5_000;
    assert.equal((await s.joi.outbound(s.url, outboundBody("owner", "c"))).status, 200);
    // 200 critical alerts from events: none refused
    const alert = (i: number) =>
      outboundBody("critical_group", `smoke ${i}`, {
        priority: "critical",
        delivery: { target: "group" },
      });
    for (let i = 0; i < 150; i++) {
      const a = await s.joi.outbound(s.url, alert(i));
      assert.equal(a.status, 200, `alert ${i}`);
    }
    // escalated by joi's judgement: limited (10/min)
    let refused = 0;
    for (let i = 0; i < 12; i++) {
      const e = await s.joi.outbound(
        s.url,
        outboundBody("critical_group", `esc ${i}`, {
          priority: "critical",
          escalated: true,
          delivery: { target: "group" },
        }),
      );
      if (e.status === 429) refused++;
    }
    assert.equal(refused, 2);
  } finally {
    await s.stop();
  }
});

Deno.test("partial failures are reported; identity failures raise a security event", async () => {
  const s = await startStack();
  try {
    s.peer.onSend = (p) => ({
      result: {
        timestamp: 5,
        results: [
          {
            recipientAddress: { uuid: OWNER.uuid, number: OWNER.number },
            type: "SUCCESS",
          },
          {
            recipientAddress: { uuid: PARTNER.uuid, number: PARTNER.number },
            type: "IDENTITY_FAILURE",
          },
        ],
        _params: p,
      },
    });
    const r = await s.joi.outbound(
      s.url,
      outboundBody("family_group", "hello all", { delivery: { target: "group" } }),
    );
    assert.equal(r.status, 200);
    const data = r.envelope.status === "ok" ? r.envelope.data as Record<string, unknown> : {};
    assert.equal(data.outcome, "partial");
    assert.deepEqual(data.results, [
      { recipient_hash: sha(OWNER.number), type: "SUCCESS" },
      { recipient_hash: sha(PARTNER.number), type: "IDENTITY_FAILURE" },
    ]);
    const sec = events(s.logs, "untrusted_identity");
    assert.equal(sec.length, 1);
    assert.equal(sec[0]!.level, "security");
    // -4: nothing delivered, untrusted identity
    s.peer.onSend = () => ({ error: { code: -4, message: "Untrusted identity" } });
    const r2 = await s.joi.outbound(s.url, outboundBody("partner", "x"));
    assert.equal(r2.status, 200);
    assert.equal((r2.envelope as { data: { outcome: string } }).data.outcome, "failed");
    assert.equal(events(s.logs, "untrusted_identity").length, 2);
  } finally {
    await s.stop();
  }
});

Deno.test("error -5: joi is told to retry after retryAfterSeconds; the mesh keeps no retry of its own", async () => {
  const waits: number[] = [];
  const s = await startStack({
    sleep: (ms) => {
      waits.push(ms);
      return Promise.resolve();
    },
  });
  try {
    let n = 0;
    s.peer.onSend = (p) => {
      n++;
      if (n === 1) {
        return {
          error: {
            code: -5,
            message: "Rate limit exceeded",
            data: {
              response: {
                timestamp: 9,
                results: [{
                  recipientAddress: { uuid: PARTNER.uuid, number: PARTNER.number },
                  type: "RATE_LIMIT_FAILURE",
                  retryAfterSeconds: 7,
                }],
              },
            },
          },
        };
      }
      return { result: s.peer.successResult(p) };
    };
    const r = await s.joi.outbound(s.url, outboundBody("partner", "hello"));
    assert.equal(r.status, 429);
    const err = (r.envelope as { error: { code: string; retry_after: number } }).error;
    assert.equal(err.code, "rate_limited");
    assert.equal(err.retry_after, 7);
    assert.deepEqual(waits, [], "no background retry: joi's outbox owns it");
    assert.equal(events(s.logs, "outbound_undelivered").length, 1);
    // joi's retry is sent
    const again = await s.joi.outbound(s.url, outboundBody("partner", "hello"));
    assert.equal(again.status, 200);
    assert.equal(s.peer.calls("send").length, 2);
    assert.equal(s.peer.calls("send")[1]!.params.message, "hello");
  } finally {
    await s.stop();
  }
});

Deno.test("a send that reached nobody for now (-1 with NETWORK_FAILURE, -3) is an error joi retries", async () => {
  const s = await startStack();
  try {
    s.peer.onSend = (p) => ({
      error: {
        code: -1,
        message: "Failed to send message",
        data: {
          response: {
            timestamp: 3,
            results: s.peer.addressesOf(p).map((a) => ({
              recipientAddress: a,
              type: "NETWORK_FAILURE",
            })),
          },
        },
      },
    });
    const r = await s.joi.outbound(
      s.url,
      outboundBody("family_group", "hello all", { delivery: { target: "group" } }),
    );
    assert.equal(r.status, 500);
    s.peer.onSend = () => ({ error: { code: -3, message: "I/O error" } });
    const r2 = await s.joi.outbound(s.url, outboundBody("partner", "x"));
    assert.equal(r2.status, 500);
    // a failure retrying cannot fix is still answered with the results
    s.peer.onSend = (p) => ({
      result: {
        timestamp: 4,
        results: s.peer.addressesOf(p).map((a) => ({
          recipientAddress: a,
          type: "UNREGISTERED_FAILURE",
        })),
      },
    });
    const r3 = await s.joi.outbound(s.url, outboundBody("partner", "y"));
    assert.equal(r3.status, 200);
    assert.equal((r3.envelope as { data: { outcome: string } }).data.outcome, "failed");
  } finally {
    await s.stop();
  }
});

Deno.test("invalid outbound bodies get 400 naming the field", async () => {
  const s = await startStack();
  try {
    const long = await s.joi.outbound(s.url, outboundBody("owner", "x".repeat(2049)));
    assert.equal(long.status, 400);
    assert.match(JSON.stringify(long.envelope), /content\.text/);
    const bad = await s.joi.outbound(s.url, { recipient: "owner" });
    assert.equal(bad.status, 400);
    assert.equal(s.peer.calls("send").length, 0);
  } finally {
    await s.stop();
  }
});

Deno.test("config sync: a recipient revoked on joi is dropped from the next message on, no restart", async () => {
  const s = await startStack();
  try {
    s.peer.push(dataEnvelope({ ...PARTNER, timestamp: 601, text: "before" }));
    await s.joi.waitFor(() => s.joi.received.length === 1);
    // joi revokes the partner (as joi-revoke-recipient does)
    const next = structuredClone(s.joi.identities);
    delete next.identities[PARTNER.number];
    for (const g of Object.values(next.groups ?? {})) {
      g.expected_members = (g.expected_members ?? []).filter((m) => m !== "partner");
    }
    s.joi.identities = next;
    const oldHash = s.mesh.identities.current.hash;
    // joi's next request carries the new hash
    const r = await s.joi.outbound(s.url, outboundBody("owner", "revoked partner"));
    assert.equal(r.status, 200);
    assert.equal(s.joi.configFetches, 1);
    assert.equal(s.mesh.identities.current.hash, s.joi.hash);
    assert.notEqual(oldHash, s.joi.hash);
    s.peer.push(dataEnvelope({ ...PARTNER, timestamp: 602, text: "after" }));
    s.peer.push(dataEnvelope({ ...OWNER, timestamp: 603, text: "marker" }));
    await s.joi.waitFor(() => s.joi.received.length === 2);
    assert.deepEqual(s.joi.texts(), ["before", "marker"]);
    const synced = events(s.logs, "config_synced");
    assert.equal(synced.length, 1);
    assert.deepEqual(synced[0]!.removed, ["partner"]);
    // outbound to the revoked partner is refused too
    const o = await s.joi.outbound(s.url, outboundBody("partner", "x"));
    assert.equal(o.status, 403);
    // the same hash again: no refetch
    await s.joi.outbound(
      s.url,
      outboundBody("family_group", "y", { delivery: { target: "group" } }),
    );
    assert.equal(s.joi.configFetches, 1);
    // persisted for a restart
    const saved = JSON.parse(await Deno.readTextFile(`${s.dir}/state/identities.json`));
    assert.equal(saved.hash, s.joi.hash);
    assert.equal((await Deno.stat(`${s.dir}/state/identities.json`)).mode! & 0o077, 0);
  } finally {
    await s.stop();
  }
});

Deno.test("config sync: a malformed or mis-hashed config from joi is refused, the old one kept", async () => {
  const s = await startStack();
  try {
    const before = s.mesh.identities.current.hash;
    s.joi.servedOverride = { hash: "abc", config: { identities: { "not-a-phone": {} } } };
    // distinct recipients: the owner's 5 s cooldown is not under test here
    const send = (to: string) =>
      s.joi.client(s.url).request("POST", "/api/v1/message/outbound", outboundBody(to, "x"), {
        "X-Config-Hash": "f".repeat(64),
      });
    assert.equal((await send("owner")).status, 200);
    assert.equal(s.mesh.identities.current.hash, before);
    assert.equal(events(s.logs, "config_sync_invalid").length, 1);
    // valid config but a hash that does not match it
    const cfg = structuredClone(s.joi.identities);
    delete cfg.identities[PARTNER.number];
    s.joi.servedOverride = { hash: s.joi.hash, config: cfg };
    assert.equal((await send("partner")).status, 200);
    assert.equal(s.mesh.identities.current.hash, before);
    assert.equal(events(s.logs, "config_sync_hash_mismatch").length, 1);
    s.peer.push(dataEnvelope({ ...PARTNER, timestamp: 701, text: "still here" }));
    await s.joi.waitFor(() => s.joi.received.length === 1);
  } finally {
    await s.stop();
  }
});

Deno.test("group membership drift produces exactly one alert to the critical group", async () => {
  const s = await startStack();
  try {
    assert.equal(s.peer.calls("send").length, 0, "no drift at start");
    s.peer.groups = s.peer.groups.map((g) =>
      g.name === "family_group"
        ? { ...g, members: [...g.members, { number: STRANGER.number, uuid: STRANGER.uuid }] }
        : g
    );
    const first = await s.mesh.monitor.check();
    const second = await s.mesh.monitor.check();
    assert.equal(first.length, 1);
    assert.equal(second.length, 0);
    const sends = s.peer.calls("send");
    assert.equal(sends.length, 1);
    assert.equal(sends[0]!.params.groupId, GROUPS.critical_group);
    assert.match(String(sends[0]!.params.message), /family_group/);
    const sec = events(s.logs, "group_membership_changed");
    assert.equal(sec.length, 1);
    assert.equal(sec[0]!.level, "security");
    // back to normal, then a removal: a new alert
    s.peer.groups = s.peer.groups.map((g) =>
      g.name === "family_group" ? { ...g, members: g.members.slice(0, 2) } : g
    );
    assert.equal((await s.mesh.monitor.check()).length, 0);
    s.peer.groups = s.peer.groups.map((g) =>
      g.name === "family_group" ? { ...g, members: g.members.slice(0, 1) } : g
    );
    const removed = await s.mesh.monitor.check();
    assert.deepEqual(removed, [{ channel: "family_group", added: [], removed: ["partner"] }]);
    assert.equal(s.peer.calls("send").length, 2);
  } finally {
    await s.stop();
  }
});

Deno.test("/health reports signal state and version, joi, queue depth and last sync", async () => {
  const s = await startStack();
  try {
    const r = await fetch(`${s.url}/health`);
    const body = await r.json();
    assert.equal(r.status, 200);
    assert.equal(body.data.signal.state, "connected");
    assert.equal(body.data.signal.version, "0.14.6");
    assert.equal(body.data.signal.warning, null);
    assert.equal(body.data.queue.depth, 0);
    assert.equal(body.data.config.hash, s.joi.hash);
    assert.ok(!JSON.stringify(body).includes(OWNER.number));
  } finally {
    await s.stop();
  }
});

Deno.test("/health warns when the installed signal-cli is older than version_warn_days", async () => {
  const s = await startStack({
    meshYaml: FAST_MESH_YAML +
      `signal_cli: { version_warn_days: 75, release_dates: { "0.14.6": "2020-01-01" } }\n`,
  });
  try {
    const body = await (await fetch(`${s.url}/health`)).json();
    assert.equal(body.data.signal.version, "0.14.6");
    assert.equal(body.data.signal.age_basis, "release_date");
    assert.ok(body.data.signal.age_days > 75);
    assert.match(body.data.signal.warning, /update signal-cli/);
  } finally {
    await s.stop();
  }
});
