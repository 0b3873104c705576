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
  // links linkify-it leaves alone on purpose, which a client still opens or a person still follows
  ["open evil.example:8443/x", "external_url"],
  ["evil.com:8080", "external_url"],
  ["10.0.0.1:8080/admin", "external_url"],
  ["203.0.113.9:80", "external_url"],
  ["[docs](evil.example:8080/x)", "external_url"],
  ["hxxp://evil.example/x", "external_url"],
  ["hxxps://evil[.]com/x", "external_url"],
  ["see evil[.]com/steal", "external_url"],
  ["see evil(.)com", "external_url"],
  ["irc://evil.example/chan", "external_url"],
  ["intent://scan/#Intent;scheme=zxing;end", "external_url"],
  ["https:/\\/evil.com", "external_url"],
  ["http:\\\\evil.com", "external_url"],
  ["https:evil.com", "external_url"],
  ["evil.com\u2215steal", "external_url"],
  ["magnet:?xt=urn:btih:c12fe1c06bba254a9dc9f519b335aa7c1367a88a", "external_url"],
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
  "The meeting is at 10:30, the score was 2:1, the ratio 3.5:1, it is 21:05.",
  "Note: the door is closed. Tip: close the window (.) [.]",
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

Deno.test("inbound untrusted strings lose links with a port, a defanged host or any scheme", () => {
  assert.equal(
    cleanUntrusted(
      "a evil.example:8080/x b hxxp://evil[.]com/y c evil[.]com d irc://x.example e",
      200,
    ),
    "a [link removed] b [link removed] c [link removed] d [link removed] e",
  );
});

Deno.test("an acknowledgement word is recognised through zero-width characters", () => {
  assert.equal(isAcknowledgement("o\u200bk", ["ok"]), true);
  assert.equal(isAcknowledgement("ＯＫ", ["ok"]), true);
});
