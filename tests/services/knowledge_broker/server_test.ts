/**
 * The local run's knowledge broker: per-channel retrieve sockets (the paths
 * and protocol of production's systemd sockets), each connection one process
 * started as the channel's user with the request on its stdin and its stdout
 * sent back; unknown channels, over-long requests, too many connections,
 * slow and over-large retrievals are cut off. The process test runs the real
 * broker with its manifest flags (sudo replaced by `echo`, which shows the
 * command line sudo would get).
 */
import assert from "node:assert/strict";
import { createLogger, memorySink } from "../../../services/common/log.ts";
import {
  denoRunArgs,
  localLayout,
  programSpec,
  retrieveSocketPath,
} from "../../../services/common/permissions/mod.ts";
import { exchange } from "../../../services/joi/knowledge/retrieve_client.ts";
import { MAX_OUTPUT_BYTES } from "../../../services/joi/knowledge/retrieve_protocol.ts";
import { serveRetrieveSockets } from "../../../services/knowledge_broker/server.ts";
import { claimRetrieveDir } from "../../_helpers/retrieve_sockets.ts";

const ROOT = new URL("../../../", import.meta.url).pathname;
const dec = new TextDecoder();

/** A stand-in retrieve: `sh -c SCRIPT <user>` with piped stdio. */
const shell = (script: string) => (user: string) =>
  new Deno.Command("sh", {
    args: ["-c", script, user],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();

async function withBroker(
  script: string,
  fn: (dir: string, events: () => string[]) => Promise<void>,
  o: { maxConnections?: number; timeoutMs?: number } = {},
) {
  const { dir, release } = await claimRetrieveDir();
  const sink = memorySink();
  const users: Record<string, string> = {
    family_group: "joi-family",
    critical_group: "joi-critical",
  };
  const server = await serveRetrieveSockets({
    socketDir: dir,
    channels: Object.keys(users),
    userOf: (c) => users[c],
    spawn: shell(script),
    logger: createLogger("knowledge", { quiet: true, sinks: [sink] }),
    maxConnections: o.maxConnections,
    timeoutMs: o.timeoutMs,
  });
  try {
    await fn(dir, () => sink.lines.map((l) => String(l.event)));
  } finally {
    await server.close();
    await release();
  }
}

Deno.test("broker: each connection is one process as the channel's user, request in, answer out", async () => {
  await withBroker('read line; echo "$0 got: $line"', async (dir) => {
    for (
      const [channel, user] of [["family_group", "joi-family"], ["critical_group", "joi-critical"]]
    ) {
      const r = await exchange(retrieveSocketPath(dir, channel!), 'search {"q":"x"}\n', 5000);
      assert.equal(r.kind, "answer");
      if (r.kind === "answer") assert.equal(dec.decode(r.bytes), `${user} got: search {"q":"x"}\n`);
    }
    const st = Deno.lstatSync(retrieveSocketPath(dir, "family_group"));
    assert.equal((st.mode ?? 0) & 0o777, 0o660);
    // no socket for a channel that is not configured: nothing to connect to
    const none = await exchange(retrieveSocketPath(dir, "owner_private_dm"), "search {}\n", 1000);
    assert.equal(none.kind, "unreachable");
  });
});

Deno.test("broker: an over-long request and a connection over the limit get nothing", async () => {
  await withBroker("sleep 0.5; cat", async (dir, events) => {
    const sock = retrieveSocketPath(dir, "family_group");
    const long = await exchange(sock, "search " + "x".repeat(10_000) + "\n", 5000);
    // closed unanswered (the client may even see its write refused)
    assert.ok(long.kind === "unreachable" || (long.kind === "answer" && long.bytes.length === 0));
    assert.ok(events().some((l) => l.includes("retrieve_request_refused")));
    // two at once are served; the third is closed at once
    const all = await Promise.all([1, 2, 3].map((i) => exchange(sock, `get ${i}\n`, 5000)));
    const texts = all.map((r) => r.kind === "answer" ? dec.decode(r.bytes) : r.kind);
    assert.equal(texts.filter((t) => t === "" || t === "unreachable").length, 1, texts.join("|"));
    assert.equal(texts.filter((t) => /^get [123]\n$/.test(t)).length, 2, texts.join("|"));
    assert.ok(events().some((l) => l.includes("retrieve_connection_refused")));
  }, { maxConnections: 2 });
});

Deno.test("broker: a slow retrieval is ended at its bound, an over-large answer is cut", async () => {
  await withBroker("read line; exec sleep 30", async (dir, events) => {
    const t0 = performance.now();
    const r = await exchange(retrieveSocketPath(dir, "family_group"), "search {}\n", 10_000);
    assert.ok(r.kind === "answer" && r.bytes.length === 0);
    assert.ok(performance.now() - t0 < 5000, "ended by the broker's bound, not the client's");
    assert.ok(events().some((l) => l.includes("retrieve_timeout")));
  }, { timeoutMs: 300 });
  const big = MAX_OUTPUT_BYTES + 100_000;
  await withBroker(`read line; head -c ${big} /dev/zero`, async (dir, events) => {
    const r = await exchange(retrieveSocketPath(dir, "family_group"), "search {}\n", 10_000);
    // what came before the cap is not a document joi would accept; nothing more comes
    assert.ok(r.kind === "answer" && r.bytes.length <= MAX_OUTPUT_BYTES + 4096);
    for (let i = 0; i < 50 && !events().some((l) => l.includes("too_large")); i++) {
      await new Promise((res) => setTimeout(res, 20));
    }
    assert.ok(events().some((l) => l.includes("retrieve_output_too_large")));
  });
});

Deno.test("broker process: manifest flags, sudo's command line, reload when channel_users.yaml changes", async () => {
  const varDir = await Deno.makeTempDir({ prefix: "joi-kb-" });
  const { dir, release } = await claimRetrieveDir();
  const configDir = `${varDir}/policies`;
  await Deno.mkdir(configDir);
  for (const f of Deno.readDirSync(`${ROOT}policies`)) {
    await Deno.copyFile(`${ROOT}policies/${f.name}`, `${configDir}/${f.name}`);
  }
  await Deno.mkdir(`${varDir}/log`);
  const channels = (await import("../../../services/common/policy/mod.ts"))
    .loadPolicyFile("channelUsers", `${configDir}/channel_users.yaml`).allowed_channel_users;
  // echo in place of sudo: the answer is the command line sudo would have run
  const layout = {
    ...localLayout({ varDir, channels }),
    joiConfigDir: configDir,
    retrieveSocketDir: dir,
    sudoBin: "/usr/bin/echo",
  };
  const [run, ...rest] = denoRunArgs(programSpec("knowledge", layout));
  const child = new Deno.Command("deno", {
    args: [run, "--frozen", ...rest],
    cwd: ROOT,
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const logs: string[] = [];
  const pump = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      logs.push(...chunk.split("\n"));
    }
  })();
  try {
    const until = async (f: () => boolean) => {
      for (let i = 0; i < 300 && !f(); i++) await new Promise((r) => setTimeout(r, 20));
      assert.ok(f(), logs.join("\n"));
    };
    await until(() => logs.some((l) => l.includes("knowledge_broker_listening")));
    const ask = async (channel: string) => {
      const r = await exchange(retrieveSocketPath(dir, channel), "search {}\n", 5000);
      return r.kind === "answer" ? dec.decode(r.bytes) : r.kind;
    };
    assert.match(
      await ask("family_group"),
      /^-u joi-family -- \/usr\/local\/bin\/joi-retrieve run --no-prompt .*\/scripts\/retrieve\.ts --root=\S+\/joi\/knowledge$/,
    );

    // A broken channel file is refused (old mapping kept); a valid edit is applied.
    await Deno.writeTextFile(`${configDir}/channel_users.yaml`, "allowed_channel_users: [oops\n");
    assert.match(await ask("family_group"), /-u joi-family /);
    await until(() => logs.some((l) => l.includes("knowledge_config_refused")));
    const text = await Deno.readTextFile(`${ROOT}policies/channel_users.yaml`);
    await Deno.writeTextFile(
      `${configDir}/channel_users.yaml`,
      text.replace(/^(\s*family_group:).*$/m, "$1 joi-critical"),
    );
    assert.match(await ask("family_group"), /-u joi-critical /);
    await until(() => logs.some((l) => l.includes("knowledge_config_reloaded")));
    // a channel removed from the file is refused on its (still open) socket
    await Deno.writeTextFile(
      `${configDir}/channel_users.yaml`,
      text.replace(/^\s*family_group:.*\n/m, ""),
    );
    assert.ok(["", "unreachable"].includes(await ask("family_group")), "closed unanswered");
    await until(() => logs.some((l) => l.includes('"channel not in allowed_channel_users"')));
  } finally {
    child.kill("SIGTERM");
    await child.status;
    await pump;
    await release();
    await Deno.remove(varDir, { recursive: true });
  }
});
