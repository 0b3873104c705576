import assert from "node:assert/strict";
import {
  identifyPeer,
  matches,
  normalize,
  renderTable,
  transaction,
} from "../../../scripts/ai_switch/ruleset.ts";
import { bridgeName } from "../../../scripts/ai_switch/config.ts";
import { canRunAsRoot, liveTable, sh, withNamespace } from "./harness.ts";

const DOMAINS = ["anklume", "perso", "pro"];

Deno.test("the ruleset for a peer only matches packets to or from net-ai-tools", () => {
  const t = renderTable("pro");
  const rules = t.split("\n").map((l) => l.trim()).filter((l) =>
    /(accept|drop)$/.test(l) && !l.startsWith("type ")
  );
  assert.ok(rules.length > 0);
  for (const r of rules) assert.match(r, /^(iifname|oifname) "net-ai-tools"/, r);
  assert.ok(t.includes(`oifname "net-ai-tools" iifname != "net-pro" drop`));
  assert.ok(t.includes(`iifname "net-ai-tools" oifname != "net-pro" drop`));
  assert.ok(
    t.includes(
      `iifname "net-ai-tools" oifname "net-pro" ct state != { established, related } drop`,
    ),
  );
  assert.ok(!t.includes("net-perso"));
});

Deno.test("the blocked ruleset drops everything to and from net-ai-tools", () => {
  const t = renderTable(null);
  assert.ok(t.includes(`oifname "net-ai-tools" drop`));
  assert.ok(t.includes(`iifname "net-ai-tools" drop`));
  assert.ok(!/net-(pro|perso|anklume)/.test(t));
});

Deno.test("the transaction creates, flushes and refills the table in one text", () => {
  const tx = transaction(renderTable("perso"));
  assert.ok(tx.startsWith("table inet joi_ai {}\nflush table inet joi_ai\ntable inet joi_ai {\n"));
  assert.equal(tx.match(/flush/g)?.length, 1);
  assert.ok(!/delete|destroy/.test(tx), "nft 1.0.6 has no destroy; delete would not be atomic");
});

Deno.test("matches ignores whitespace only, identifyPeer names the domain or refuses", () => {
  const pro = renderTable("pro");
  assert.ok(matches(pro.replaceAll("\t", "    ") + "\n\n", pro));
  assert.ok(!matches(null, pro));
  assert.ok(!matches(renderTable("perso"), pro));
  assert.ok(!matches(pro.replace("drop\n", "accept\n"), pro));
  assert.equal(normalize("a \t b\n\n  c"), "a b\nc");
  assert.equal(identifyPeer(pro, DOMAINS), "pro");
  assert.equal(identifyPeer(renderTable(null), DOMAINS), null);
  assert.equal(identifyPeer(pro.replace("drop", "accept"), DOMAINS), undefined);
  assert.equal(identifyPeer(null, DOMAINS), undefined);
});

Deno.test("bridge names must be DNS-safe and fit the 15-byte interface limit", () => {
  assert.equal(bridgeName("ai-tools"), "net-ai-tools");
  assert.equal(bridgeName("abcdefghijk"), "net-abcdefghijk");
  assert.throws(() => bridgeName("abcdefghijkl"), /longer than 15 characters/);
  for (const bad of ["Pro", "-pro", "pro-", "pro dev", 'a"b', "", "a;b"]) {
    assert.throws(() => bridgeName(bad), /not a DNS-safe name/, bad);
  }
});

Deno.test({
  name: "nft accepts each ruleset and lists it back exactly as rendered",
  ignore: !canRunAsRoot(),
  fn: async () => {
    await withNamespace(async (ns) => {
      for (const peer of [...DOMAINS, null]) {
        const text = transaction(renderTable(peer));
        const child = new Deno.Command("ip", {
          args: ["netns", "exec", ns, "nft", "-f", "-"],
          stdin: "piped",
          stderr: "piped",
        }).spawn();
        const w = child.stdin.getWriter();
        await w.write(new TextEncoder().encode(text));
        await w.close();
        const out = await child.output();
        assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
        assert.equal(await liveTable(ns), renderTable(peer), `listing of ${peer}`);
      }
      // Tables ai-switch does not own are left alone.
      await sh("ip", ["netns", "exec", ns, "nft", "add", "table", "inet", "other"]);
      const r = await sh("ip", ["netns", "exec", ns, "nft", "list", "tables"]);
      assert.match(r.stdout, /table inet other/);
    });
  },
});
