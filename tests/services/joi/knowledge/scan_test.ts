/**
 * Markdown parsing, the index writer (rollback journal, 0640) and folder
 * scans: hand-written documents are indexed, changes and deletions followed,
 * links never followed, and retrieve's reader finds what was indexed while a
 * writer works.
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { runQuery } from "../../../../scripts/retrieve.ts";
import { INDEX_FILE } from "../../../../services/joi/knowledge/retrieve_protocol.ts";
import { openIndexWriter } from "../../../../services/joi/knowledge/index_writer.ts";
import {
  derivedId,
  parseDocument,
  renderDocument,
} from "../../../../services/joi/knowledge/markdown.ts";
import { scanFolder } from "../../../../services/joi/knowledge/scan.ts";
import { main as indexMain } from "../../../../scripts/index.ts";
import { symlink } from "../../../scripts/provision/household.ts";

const ID = "0b6c2b7e-8a1f-4c53-9d5e-2f6a7c1b9e40";

Deno.test("parseDocument: front matter, UUID file names, derived ids, headings", () => {
  const a = parseDocument(
    `---\nid: ${ID}\ntitle: Boiler\ncategory: house\n---\nReset it.\n`,
    "shared/a.md",
  );
  assert.deepEqual(a, { id: ID, title: "Boiler", category: "house", body: "Reset it.\n" });
  const b = parseDocument("# Heading title\ntext", `shared/${ID}.md`);
  assert.equal(b.id, ID);
  assert.equal(b.title, "Heading title");
  assert.equal(b.category, "general");
  const c = parseDocument("plain", "shared/notes.md");
  assert.equal(c.id, derivedId("joi-doc:shared/notes.md"));
  assert.match(c.id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(c.title, "notes");
  assert.throws(
    () => parseDocument("---\nid: 1234\n---\nx", "shared/x.md"),
    /shared\/x\.md: front matter id/,
  );
  assert.throws(() => parseDocument("---\ncategory: ../x\n---\nx", "shared/x.md"), /category/);
  const round = parseDocument(
    renderDocument({ id: ID, title: "T: x", category: "c", body: "b\n" }),
    "s/x.md",
  );
  assert.deepEqual(round, { id: ID, title: "T: x", category: "c", body: "b\n" });
});

Deno.test("index files use a rollback journal and mode 0640", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const w = openIndexWriter(dir);
    w.close();
    assert.equal((Deno.statSync(`${dir}/${INDEX_FILE}`).mode ?? 0) & 0o777, 0o640);
    const db = new DatabaseSync(`${dir}/${INDEX_FILE}`, { readOnly: true });
    assert.equal(
      (db.prepare("PRAGMA journal_mode").get() as { journal_mode: string }).journal_mode,
      "delete",
    );
    db.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("scanFolder indexes, follows changes and deletions, skips links", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const root = `${dir}/knowledge`;
    await Deno.mkdir(`${root}/shared/common`, { recursive: true });
    await Deno.mkdir(`${dir}/elsewhere`);
    await Deno.writeTextFile(`${dir}/elsewhere/secret.md`, "# Secret\nmangosteen");
    await Deno.writeTextFile(
      `${root}/shared/a.md`,
      `---\nid: ${ID}\ntitle: Boiler\n---\nRambutan reset steps.`,
    );
    await Deno.writeTextFile(`${root}/shared/common/b.md`, "# Bins\nDurian day is Tuesday.");
    await Deno.writeTextFile(`${root}/shared/ignored.txt`, "rambutan");
    await symlink(`${dir}/elsewhere/secret.md`, `${root}/shared/link.md`);
    await symlink(`${dir}/elsewhere`, `${root}/shared/linkdir`);
    const first = scanFolder(root, "shared");
    assert.equal(first.indexed, 2);
    assert.deepEqual(first.skipped.map((s) => s.source).sort(), [
      "shared/link.md",
      "shared/linkdir",
    ]);
    const hit = runQuery(root, { type: "search", q: "rambutan", limit: 5 }, "uid:0");
    assert.deepEqual(hit.results.map((r) => [r.id, r.source, r.folder]), [[
      ID,
      "shared/a.md",
      "shared",
    ]]);
    assert.equal(
      runQuery(root, { type: "search", q: "mangosteen", limit: 5 }, "uid:0").results.length,
      0,
    );

    const again = scanFolder(root, "shared");
    assert.deepEqual([again.indexed, again.unchanged, again.removed], [0, 2, 0]);

    await Deno.writeTextFile(`${root}/shared/common/b.md`, "# Bins\nDurian day is Wednesday now.");
    await Deno.remove(`${root}/shared/a.md`);
    const changed = scanFolder(root, "shared");
    assert.deepEqual([changed.indexed, changed.removed], [1, 1]);
    assert.equal(
      runQuery(root, { type: "search", q: "rambutan", limit: 5 }, "uid:0").results.length,
      0,
    );
    const w = runQuery(root, { type: "search", q: "wednesday", limit: 5 }, "uid:0");
    assert.equal(w.results[0]!.title, "Bins");
    const listed = runQuery(root, { type: "list", category: "general", limit: 5 }, "uid:0");
    assert.equal(listed.results.length, 1);
    const got = runQuery(root, { type: "get", id: w.results[0]!.id }, "uid:0");
    assert.match(got.results[0]!.snippet, /Wednesday/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a reader opening the index read-only sees committed documents while a writer holds it open", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const root = `${dir}/knowledge`;
    await Deno.mkdir(`${root}/shared`, { recursive: true });
    const w = openIndexWriter(`${root}/shared`);
    const facts = (n: number) => ({
      source: `shared/${n}.md`,
      sha256: "x",
      size: 1,
      mtimeMs: 0,
      updatedAt: new Date(n).toISOString(),
    });
    for (let i = 0; i < 50; i++) {
      w.upsert({
        id: crypto.randomUUID(),
        title: `Doc ${i}`,
        category: "general",
        body: `feijoa number${i}`,
      }, facts(i));
      const r = runQuery(root, { type: "search", q: `number${i}`, limit: 5 }, "uid:0");
      assert.equal(r.results.length, 1, `doc ${i} visible right after its commit`);
    }
    assert.equal(
      runQuery(root, { type: "search", q: "feijoa", limit: 100 }, "uid:0").results.length,
      50,
    );
    w.close();
    assert.throws(() => Deno.statSync(`${root}/shared/${INDEX_FILE}-wal`));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("scripts/index.ts indexes every folder of recipients.yaml and refuses unknown folders", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const policies = new URL("../../../../policies/", import.meta.url).pathname;
    const state = `${dir}/state`;
    for (
      const f of [
        "owner/private",
        "group/owner_public",
        "partner/private",
        "group/partner_public",
        "group/family",
        "critical/safety",
        "shared",
      ]
    ) {
      await Deno.mkdir(`${state}/knowledge/${f}`, { recursive: true });
    }
    await Deno.writeTextFile(
      `${state}/knowledge/group/family/picnic.md`,
      "# Picnic\nJabuticaba in the park.",
    );
    assert.equal(indexMain([`--config-dir=${policies}`, `--state-dir=${state}`]), 0);
    const r = runQuery(
      `${state}/knowledge`,
      { type: "search", q: "jabuticaba", limit: 5 },
      "uid:0",
    );
    assert.equal(r.results[0]!.source, "group/family/picnic.md");
    assert.equal(
      indexMain([`--config-dir=${policies}`, `--state-dir=${state}`, "--folder=../etc"]),
      2,
    );
    assert.equal(indexMain(["--bogus"]), 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
