/**
 * joi-retrieve on its own: query validation (everything refused before a file
 * is opened), the request line on stdin, the canonical form joi sends, the
 * output cap, the import graph, and the Deno sandbox of the pinned command
 * line (run as whoever runs the suite, no sudo: the flags alone refuse
 * /etc/shadow and everything else).
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  readRequestLine,
  readRequestLineWithin,
  renderOutput,
  REQUEST_DEADLINE_MS,
  runQuery,
} from "../../../scripts/retrieve.ts";
import {
  canonicalQueryJson,
  MAX_OUTPUT_BYTES,
  MAX_REQUEST_BYTES,
  parseQuery,
  parseRequest,
  type Query,
  QueryError,
  requestLine,
  validateQuery,
} from "../../../services/joi/knowledge/retrieve_protocol.ts";
import {
  localLayout,
  retrieveFixedArgv,
  retrieveSpec,
} from "../../../services/common/permissions/mod.ts";

/** The alphabet of canonical JSON: no space, no path or shell character. */
const CANONICAL = /^\{[A-Za-z0-9"{}:,_\\-]+\}$/;
import { openIndexWriter } from "../../../services/joi/knowledge/index_writer.ts";
import { symlink } from "../provision/household.ts";

const REPO = new URL("../../../", import.meta.url).pathname.replace(/\/$/, "");
const ID = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d";

/** Queries that must be refused, with a word the error must contain. */
const REFUSED: [string, string, string][] = [
  ["search", '{"q":"a/b"}', "path components"],
  ["search", '{"q":"..secret"}', "path components"],
  ["search", '{"q":"~root"}', "path components"],
  ["search", '{"path":"/etc/shadow"}', "path components"],
  ["search", '{"q":"a\\u002fb"}', "path components"],
  ["search", '{"q":"a\\u002e\\u002eb"}', "path components"],
  ["search", '{"q":"x","extra":1}', "unknown key"],
  ["search", '{"q":"x","path":"x"}', "unknown key"],
  ["get", '{"id":"a1b2c3d4-e5f6-1a7b-8c9d-0e1f2a3b4c5d"}', "UUIDv4"],
  ["get", '{"id":"A1B2C3D4-E5F6-4A7B-8C9D-0E1F2A3B4C5D"}', "UUIDv4"],
  ["get", '{"id":"1234"}', "UUIDv4"],
  ["get", `{"id":"${ID}","q":"x"}`, "unknown key"],
  ["search", '{"q":"a;id"}', "characters"],
  ["search", '{"q":"$(id)"}', "characters"],
  ["search", '{"q":"`id`"}', "characters"],
  ["search", '{"q":"a|b"}', "characters"],
  ["search", '{"q":"a&b"}', "characters"],
  ["search", '{"q":"a>b"}', "characters"],
  ["search", '{"q":"a\\u003bb"}', "only letters"],
  ["search", `{"q":"${"x".repeat(5000)}"}`, "4096 bytes"],
  ["search", "{not json}", "valid JSON"],
  ["search", "[]", "characters"],
  ["search", '"q"', "object"],
  ["search", '{"q":"x","limit":1000}', "limit"],
  ["search", '{"q":"x","limit":"5"}', "limit"],
  ["search", '{"q":"  "}', "non-empty"],
  ["list", '{"category":"Bad Name"}', "category"],
  ["list", "{}", "missing"],
  ["delete", '{"q":"x"}', "query type"],
];

Deno.test("parseQuery refuses path components, unknown keys, bad ids, metacharacters, size", () => {
  for (const [type, json, word] of REFUSED) {
    assert.throws(() => parseQuery(type, json), (e: unknown) => {
      assert.ok(e instanceof QueryError, `${json}: ${e}`);
      assert.match(e.message, new RegExp(word.replace(/[()$]/g, "\\$&")), json);
      assert.ok(!e.message.includes("shadow"), "the error never echoes the input");
      return true;
    });
  }
});

Deno.test("parseQuery accepts the documented queries", () => {
  assert.deepEqual(parseQuery("search", '{"q":"password reset","limit":5}'), {
    type: "search",
    q: "password reset",
    limit: 5,
  });
  assert.deepEqual(parseQuery("get", `{"id":"${ID}"}`), { type: "get", id: ID });
  assert.deepEqual(parseQuery("list", '{"category":"house"}'), {
    type: "list",
    category: "house",
    limit: 10,
  });
  assert.deepEqual(parseQuery("search", '{"q":"Kotol \\u010dist\\u00e9, pros\\u00edm?"}'), {
    type: "search",
    q: "Kotol čisté, prosím?",
    limit: 10,
  });
});

Deno.test("canonical JSON round-trips and stays in its narrow alphabet", () => {
  const pattern = CANONICAL;
  const qChar = fc.constantFrom(..."abcXYZ019 '?!,:_-čšžéíÄ日本".split(""), "\u{1D400}");
  const q = fc.array(qChar, { minLength: 1, maxLength: 60 }).map((a) => a.join(""))
    .filter((s) => /[\p{L}\p{N}]/u.test(s));
  const query: fc.Arbitrary<Query> = fc.oneof(
    fc.record({
      type: fc.constant("search" as const),
      q,
      limit: fc.integer({ min: 1, max: 100 }),
    }),
    fc.record({
      type: fc.constant("list" as const),
      category: fc.stringMatching(/^[a-z0-9][a-z0-9_-]{0,20}$/),
      limit: fc.integer({ min: 1, max: 100 }),
    }),
    fc.uuid({ version: 4 }).map((id) => ({ type: "get" as const, id })),
  );
  fc.assert(fc.property(query.map((x) => ({ ...x }) as Query), (qu) => {
    const json = canonicalQueryJson(qu);
    assert.match(json, pattern);
    assert.ok(!/[\s/~.;&|$`<>]/.test(json), json);
    assert.deepEqual(parseQuery(qu.type, json), qu);
    // and as the request line joi writes on the socket
    const line = requestLine(qu);
    assert.ok(line.endsWith("\n") && new TextEncoder().encode(line).length <= MAX_REQUEST_BYTES);
    assert.deepEqual(parseRequest(line.slice(0, -1)), qu);
  }));
});

Deno.test("the request line: one line, capped, UTF-8, <type> <json>", async () => {
  const reader = (...chunks: string[]) => {
    const parts = chunks.map((c) => new TextEncoder().encode(c));
    return (buf: Uint8Array) => {
      const next = parts.shift();
      if (next === undefined) return Promise.resolve(null);
      buf.set(next.subarray(0, buf.length));
      if (next.length > buf.length) parts.unshift(next.subarray(buf.length));
      return Promise.resolve(Math.min(next.length, buf.length));
    };
  };
  // split across reads, ended by a newline (what follows is ignored) or by the end of input
  assert.equal(await readRequestLine(reader("sea", 'rch {"q":"x"}\nrest')), 'search {"q":"x"}');
  assert.equal(await readRequestLine(reader('get {"id":"x"}')), 'get {"id":"x"}');
  assert.equal(await readRequestLine(reader('list {"category":"a"}\r\n')), 'list {"category":"a"}');
  await assert.rejects(
    () => readRequestLine(reader("search " + "x".repeat(MAX_REQUEST_BYTES))),
    /longer than/,
  );
  await assert.rejects(
    () =>
      readRequestLine((b) => {
        b.set([0x73, 0xff, 0xfe, 0x0a]);
        return Promise.resolve(4);
      }),
    /not UTF-8/,
  );
  assert.throws(() => parseRequest('search{"q":"x"}'), /expected/);
  assert.throws(() => parseRequest('delete {"q":"x"}'), /query type/);
});

Deno.test("any string is either refused or becomes a canonical query that re-parses equal", () => {
  const pattern = CANONICAL;
  fc.assert(
    fc.property(fc.string({ unit: "binary", maxLength: 80 }), (q) => {
      let query: Query;
      try {
        query = validateQuery("search", { q });
      } catch (e) {
        assert.ok(e instanceof QueryError);
        return;
      }
      const json = canonicalQueryJson(query);
      assert.match(json, pattern);
      assert.deepEqual(parseQuery("search", json), query);
    }),
    { numRuns: 2000 },
  );
});

Deno.test("renderOutput keeps stdout under 1 MB and says it truncated", () => {
  const big = "x".repeat(300_000);
  const results = Array.from({ length: 8 }, (_, i) => ({
    id: ID,
    title: `t${i}`,
    snippet: big,
    source: "shared/a.md",
    accessed_as: "uid:1",
    category: "general",
    updated_at: "2026-01-01T00:00:00Z",
    folder: "shared",
  }));
  const text = renderOutput({ status: "ok", results, truncated: false });
  assert.ok(new TextEncoder().encode(text).length <= MAX_OUTPUT_BYTES);
  const out = JSON.parse(text);
  assert.equal(out.truncated, true);
  assert.ok(out.results.length >= 1 && out.results.length < 8);
  const one = renderOutput({
    status: "ok",
    results: [{ ...results[0]!, snippet: "y".repeat(2_000_000) }],
    truncated: false,
  });
  assert.ok(new TextEncoder().encode(one).length <= MAX_OUTPUT_BYTES);
  assert.equal(JSON.parse(one).truncated, true);
  const small = JSON.parse(
    renderOutput({
      status: "ok",
      results: results.slice(0, 1).map((r) => ({ ...r, snippet: "s" })),
      truncated: false,
    }),
  );
  assert.equal(small.truncated, false);
});

Deno.test("retrieve.ts imports node:sqlite and the protocol module, which imports nothing", async () => {
  const graph = async (entry: string) => {
    const out = await new Deno.Command("deno", {
      args: ["info", "--json", "--no-config", entry],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.ok(out.success, new TextDecoder().decode(out.stderr));
    const info = JSON.parse(new TextDecoder().decode(out.stdout));
    return (info.modules.map((m: { specifier: string }) => m.specifier) as string[]).sort();
  };
  const protocol = `file://${REPO}/services/joi/knowledge/retrieve_protocol.ts`;
  assert.deepEqual(await graph(`${REPO}/scripts/retrieve.ts`), [
    `file://${REPO}/scripts/retrieve.ts`,
    protocol,
    "node:sqlite",
  ]);
  assert.deepEqual(await graph(`${REPO}/services/joi/knowledge/retrieve_protocol.ts`), [protocol]);
});

/** Starts joi-retrieve's command line as systemd does: empty environment, piped stdio. */
function spawnRetrieve(argv: string[]): Deno.ChildProcess {
  return new Deno.Command("deno", {
    args: argv,
    clearEnv: true,
    env: {},
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/** Runs the pinned retrieve command line directly (no sudo). */
async function runPinned(
  stateDir: string,
  type: string,
  json: string,
  extra: { preload?: string; dropRead?: boolean } = {},
) {
  const layout = { ...localLayout(), codeDir: REPO, joiStateDir: stateDir };
  let argv = retrieveFixedArgv(retrieveSpec(layout, REPO));
  if (extra.dropRead) argv = argv.filter((a) => !a.startsWith("--allow-read="));
  if (extra.preload) {
    const i = argv.indexOf(`${REPO}/scripts/retrieve.ts`);
    argv = [...argv.slice(0, i), `--preload=${extra.preload}`, ...argv.slice(i)];
  }
  const child = spawnRetrieve(argv);
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(`${type} ${json}\n`));
  await w.close();
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("every bad query is refused before any file is opened (no read permission at all)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // without read permission, opening anything would fail with NotCapable (exit 1):
    // refused queries exit 2 with their reason, so nothing was opened for them
    const valid = await runPinned(dir, "search", '{"q":"boiler"}', { dropRead: true });
    assert.equal(valid.code, 1, valid.stderr);
    assert.match(valid.stderr, /query failed \(NotCapable\)/);
    for (const [type, json, word] of REFUSED.filter((_, i) => i % 3 === 0 || i < 6)) {
      const r = await runPinned(dir, type, json, { dropRead: true });
      assert.equal(r.code, 2, `${json}: ${r.stderr}`);
      assert.equal(r.stdout, "");
      assert.match(r.stderr, new RegExp(word.replace(/[()$]/g, "\\$&")));
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the pinned flags alone refuse /etc/shadow, writes, net, env and run", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${dir}/knowledge/shared`, { recursive: true });
    const probe = `${dir}/probe.ts`;
    await Deno.writeTextFile(
      probe,
      `const tries = {
        shadow: () => Deno.readTextFileSync("/etc/shadow"),
        passwd: () => Deno.readTextFileSync("/etc/passwd"),
        outside: () => Deno.readDirSync(${JSON.stringify(dir)}),
        write: () => Deno.writeTextFileSync(${JSON.stringify(`${dir}/knowledge/shared/x`)}, "x"),
        net: () => Deno.connect({ hostname: "127.0.0.1", port: 9 }),
        env: () => Deno.env.get("PATH"),
        run: () => new Deno.Command("/usr/bin/id").outputSync(),
        ffi: () => Deno.dlopen("libc.so.6", {}),
      };
      const refused = [];
      for (const [k, f] of Object.entries(tries)) {
        try { await f(); } catch (e) { if (e instanceof Deno.errors.NotCapable) refused.push(k); }
      }
      let inside = false;
      try { [...Deno.readDirSync(${JSON.stringify(`${dir}/knowledge`)})]; inside = true; } catch {}
      console.log(JSON.stringify({ refused, inside }));
      Deno.exit(0);`,
    );
    const r = await runPinned(`${dir}`, "search", '{"q":"x"}', { preload: probe });
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.deepEqual(out.refused, [
      "shadow",
      "passwd",
      "outside",
      "write",
      "net",
      "env",
      "run",
      "ffi",
    ]);
    assert.equal(out.inside, true);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("retrieve never follows a symlink in the corpus, even where the kernel would allow it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const root = `${dir}/knowledge`;
    await Deno.mkdir(`${root}/shared`, { recursive: true });
    await Deno.mkdir(`${dir}/outside/folder`, { recursive: true });
    const w = openIndexWriter(`${dir}/outside/folder`);
    w.upsert({ id: ID, title: "Outside", category: "general", body: "kiwano outside" }, {
      source: "outside/x.md",
      sha256: "0",
      size: 1,
      mtimeMs: 0,
      updatedAt: "2026-01-01T00:00:00Z",
    });
    w.close();
    // a linked folder and a linked index file, both pointing outside the tree
    await symlink(`${dir}/outside/folder`, `${root}/linked`);
    await Deno.mkdir(`${root}/group/fake`, { recursive: true });
    await symlink(
      `${dir}/outside/folder/.joi-index.sqlite`,
      `${root}/group/fake/.joi-index.sqlite`,
    );
    const out = runQuery(root, { type: "search", q: "kiwano", limit: 10 }, "uid:0");
    assert.deepEqual(out.results, []);
    const pinned = await runPinned(
      dir,
      "search",
      canonicalQueryJson({ type: "search", q: "kiwano", limit: 5 }),
    );
    assert.equal(pinned.code, 0, pinned.stderr);
    assert.deepEqual(JSON.parse(pinned.stdout).results, []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("search: any word may match, documents holding more of them rank first", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const root = `${dir}/knowledge`;
    await Deno.mkdir(`${root}/shared/common`, { recursive: true });
    const w = openIndexWriter(`${root}/shared/common`);
    const facts = { sha256: "0", size: 1, mtimeMs: 0, updatedAt: "2026-01-01T00:00:00Z" };
    w.upsert({
      id: ID,
      title: "Spare key",
      category: "general",
      body: "The spare key is under the blue flowerpot.",
    }, { ...facts, source: "shared/common/key.md" });
    w.upsert({
      id: "b2c3d4e5-f6a7-4b8c-9d0e-1f2a3b4c5d6e",
      title: "Car",
      category: "general",
      body: "The car key hangs in the hall.",
    }, { ...facts, source: "shared/common/car.md" });
    w.close();
    // the words of "joi, where is the spare key?" as joi sends them (search_terms.ts)
    const out = runQuery(root, { type: "search", q: "joi spare key", limit: 10 }, "uid:0");
    assert.deepEqual(out.results.map((r) => r.title), ["Spare key", "Car"]);
    assert.deepEqual(
      runQuery(root, { type: "search", q: "garage", limit: 10 }, "uid:0").results,
      [],
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the request line has a deadline: a silent or half-sent request is ended", async () => {
  const never = () => new Promise<number | null>(() => {});
  await assert.rejects(readRequestLineWithin(never, 50), (e: unknown) => {
    assert.ok(e instanceof QueryError);
    assert.match(e.message, /no complete line within 50 ms/);
    return true;
  });
  const line = new TextEncoder().encode('search {"q":"x"}\n');
  let sent = false;
  const once = (b: Uint8Array) => {
    if (sent) return never();
    sent = true;
    b.set(line);
    return Promise.resolve(line.length);
  };
  assert.equal(await readRequestLineWithin(once, 5_000), 'search {"q":"x"}');
});

Deno.test("joi-retrieve as started: a connection that never finishes its line is ended", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const layout = { ...localLayout(), codeDir: REPO, joiStateDir: dir };
    for (const sent of ["", 'search {"q":"no newline'] as const) {
      const child = spawnRetrieve(retrieveFixedArgv(retrieveSpec(layout, REPO)));
      const w = child.stdin.getWriter();
      if (sent) await w.write(new TextEncoder().encode(sent));
      // stdin stays open, as a client that connected and went quiet
      const started = Date.now();
      const guard = setTimeout(() => child.kill("SIGKILL"), REQUEST_DEADLINE_MS + 20_000);
      const out = await child.output().finally(() => clearTimeout(guard));
      const ms = Date.now() - started;
      const stderr = new TextDecoder().decode(out.stderr);
      assert.equal(out.signal, null, `still waiting after ${ms} ms (killed)`);
      assert.equal(out.code, 2, stderr);
      assert.match(stderr, /no complete line within 5000 ms/);
      assert.equal(out.stdout.length, 0);
      assert.ok(ms >= REQUEST_DEADLINE_MS, `ended after ${ms} ms, before the deadline`);
      await w.close().catch(() => {});
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
