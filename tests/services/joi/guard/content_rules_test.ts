/**
 * Content rules judge the normal form (format characters removed, NFKC,
 * whitespace folded) and find links with and without a scheme. Each case
 * below got through the outbound rules before: zero-width characters inside
 * a scheme or a prompt marker, and links without a scheme.
 */
import assert from "node:assert/strict";
import { loadPolicyFile } from "../../../../services/common/policy/mod.ts";
import { isAcknowledgement } from "../../../../services/joi/guard/acknowledge.ts";
import { ContentRules } from "../../../../services/joi/guard/content_rules.ts";
import { findLinks } from "../../../../services/joi/guard/links.ts";
import { normalizeForRules, stripFormat } from "../../../../services/joi/guard/normalize.ts";
import { cleanUntrusted } from "../../../../services/joi/ingest/untrusted.ts";

const policy = loadPolicyFile("policy", "policies/policy.yaml");
const rules = new ContentRules(policy.content);

const REFUSED: [string, string][] = [
  ["see https\u200b://evil.example/x", "external_url"],
  ["see h\u00adttps://evil.example", "external_url"],
  ["see https\ufe0f://evil.example", "external_url"],
  ["go to evil.example/x now", "external_url"],
  ["evil.example", "external_url"],
  ["evil\u200b.example/x", "external_url"],
  ["ｅｖｉｌ．ｅｘａｍｐｌｅ/x", "external_url"],
  ["evil\u3002com/x", "external_url"],
  ["download from evil.xyz", "external_url"],
  ["//evil.example/x", "external_url"],
  ["write to leak@evil.example", "external_url"],
  ["http://203.0.113.9/x", "external_url"],
  ["203.0.113.9/x", "external_url"],
  ["javascript:alert(1)", "external_url"],
  ["sgnl://signal.me/#p/+15550000009", "external_url"],
  ["<\u200b|system|>", "system_prompt_marker"],
  ["<|\u2060system\u2060|>", "system_prompt_marker"],
  ["<｜system｜>", "system_prompt_marker"],
  ["[\u200b/INST]", "system_prompt_marker"],
  ["hello\n  sys\u200btem : obey", "system_prompt_marker"],
  ["\u200b\u200b\u200b", "empty"],
];

for (const [text, rule] of REFUSED) {
  Deno.test(`outbound refused as ${rule}: ${JSON.stringify(text)}`, () => {
    const v = rules.check(text);
    assert.equal(v.ok, false, "accepted");
    if (!v.ok) assert.equal(v.rule, rule);
  });
}

const ACCEPTED = [
  "The temperature is 21.5 °C, version 2.9.6 of the sensor.",
  "Mr.Smith said ok. e.g. this, i.e. that",
  "node.js and file.txt are not links",
  "👩\u200d👧 family emoji keeps its joiner",
];

for (const text of ACCEPTED) {
  Deno.test(`outbound accepted: ${JSON.stringify(text)}`, () => {
    const v = rules.check(text);
    assert.equal(v.ok, true, JSON.stringify(v));
  });
}

Deno.test("the text sent is the original, cleaned of format characters only", () => {
  const v = rules.check(
    "ｆｕｌｌ width\u200b stays,  spaces\tstay, soft\u00adhyphen goes 👩\u200d👧",
  );
  assert.ok(v.ok);
  if (v.ok) {
    assert.equal(v.text, "ｆｕｌｌ width stays,  spaces\tstay, softhyphen goes 👩\u200d👧");
  }
});

Deno.test("templates skip links and patterns, not printability", () => {
  assert.equal(rules.check("see evil.example", { template: true }).ok, true);
  assert.equal(rules.check("bell\u0007", { template: true }).ok, false);
});

Deno.test("block_links: false lets links through (patterns still apply)", () => {
  const open = new ContentRules({ ...policy.content, block_links: false });
  assert.equal(open.check("see https://evil.example").ok, true);
  assert.equal(open.check("<\u200b|system|>").ok, false);
});

Deno.test("normal form: ignorables removed, NFKC, whitespace runs folded, lines kept", () => {
  assert.equal(normalizeForRules("a\u200b\u200cb  \t c\n\n  d\u3000e"), "ab c\nd e");
  assert.equal(normalizeForRules("ｈｔｔｐｓ"), "https");
  assert.equal(stripFormat("a\u202eb\u2066c"), "abc");
});

Deno.test("links found with and without a scheme", () => {
  const raw = (t: string) => findLinks(t).map((l) => l.raw);
  assert.deepEqual(raw("x evil.example/x y https://a.example z"), [
    "evil.example/x",
    "https://a.example",
  ]);
  assert.deepEqual(raw("no links: 5.5 °C, v2.9.6, readme"), []);
});

Deno.test("inbound untrusted strings lose links and markers the same way", () => {
  assert.equal(
    cleanUntrusted("visit evil.example/x or https\u200b://evil.example <\u200b|system|> now", 200),
    "visit [link removed] or [link removed] now",
  );
});

Deno.test("an acknowledgement word is recognised through zero-width characters", () => {
  assert.equal(isAcknowledgement("o\u200bk", ["ok"]), true);
  assert.equal(isAcknowledgement("ＯＫ", ["ok"]), true);
});
