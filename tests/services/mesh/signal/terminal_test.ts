import assert from "node:assert/strict";
import { createLogger, memorySink } from "../../../../services/common/log.ts";
import {
  openNonceStore,
  SignedClient,
  signedRoutes,
} from "../../../../services/common/wire/mod.ts";
import { hashIdentities, validateIdentities } from "../../../../services/mesh/identity.ts";
import { createMesh } from "../../../../services/mesh/service.ts";
import { TerminalTransport } from "../../../../services/mesh/signal/terminal.ts";
import {
  configOf,
  events,
  FakeJoi,
  makeKeys,
  outboundBody,
  waitUntil,
  writeConfigDir,
} from "../harness.ts";

Deno.test("terminal transport: typed lines go through the same checks as Signal; joi's replies print with their channel", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mesh-term-" });
  const keys = await makeKeys(`${dir}/secrets`);
  await writeConfigDir(`${dir}/config`);
  const config = await configOf(`${dir}/config`);
  const joi = new FakeJoi(keys, dir);
  joi.start();
  const sink = memorySink();
  const log = createLogger("mesh", { quiet: true, sinks: [sink] });
  let push!: (s: string) => void;
  let end!: () => void;
  const input = new ReadableStream<Uint8Array>({
    start(c) {
      push = (s) => c.enqueue(new TextEncoder().encode(s));
      end = () => c.close();
    },
  });
  const printed: string[] = [];
  const nonces = openNonceStore(`${dir}/n.db`, 900_000);
  const mesh = await createMesh({
    config,
    stateDir: `${dir}/state`,
    transport: (identities) =>
      new TerminalTransport({
        identities,
        owner: "owner",
        input,
        output: (l) => printed.push(l),
      }),
    joi: new SignedClient({
      baseUrl: joi.url,
      key: keys.meshToJoi,
      direction: "mesh_to_joi",
      maxRetries: 0,
    }),
    verify: signedRoutes({
      key: keys.joiToMesh,
      direction: "joi_to_mesh",
      nonceStore: nonces,
      allowedSources: ["127.0.0.1"],
      toleranceMs: 300_000,
      maxBodyBytes: 65536,
    }),
    validateIdentities,
    hashIdentities,
    log,
    timers: false,
  });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, mesh.app.fetch);
  mesh.start();
  try {
    push("hello joi\n@family dinner?\n@critical test alarm\n@owner note to self\n@nobody x\n\n");
    await joi.waitFor(() => joi.received.length === 4);
    assert.deepEqual(
      joi.received.map((r) => [r.headers["x-validated-channel"], r.headers["x-validated-sender"]]),
      [
        ["owner_private_dm", "owner"],
        ["family_group", "owner"],
        ["critical_group", "owner"],
        ["owner_regular_dm", "owner"],
      ],
    );
    assert.deepEqual(joi.texts(), ["hello joi", "dinner?", "test alarm", "note to self"]);
    assert.ok(printed.some((l) => l.includes("no group for @nobody")));
    // the group check sees the expected members: no drift alert
    await waitUntil(() => mesh.monitor.lastCheck !== null);
    assert.equal(events(sink.lines, "group_membership_changed").length, 0);
    const url = `http://127.0.0.1:${server.addr.port}`;
    assert.equal((await joi.outbound(url, outboundBody("owner", "Hi there"))).status, 200);
    assert.equal(
      (await joi.outbound(
        url,
        outboundBody("family_group", "Dinner at 7", {
          delivery: { target: "group" },
        }),
      )).status,
      200,
    );
    assert.deepEqual(printed.filter((l) => !l.startsWith("[mesh]")), [
      "[owner_private_dm] Hi there",
      "[family_group] Dinner at 7",
    ]);
    // refused recipients print nothing
    assert.equal((await joi.outbound(url, outboundBody("mallory", "x"))).status, 403);
    assert.equal(printed.filter((l) => !l.startsWith("[mesh]")).length, 2);
  } finally {
    end();
    await server.shutdown();
    await mesh.stop();
    nonces.close();
    await joi.close();
    await Deno.remove(dir, { recursive: true });
  }
});
