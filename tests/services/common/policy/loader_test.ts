import assert from "node:assert/strict";
import {
  formatIssue,
  loadPolicies,
  loadPolicyFile,
  own,
  parsePolicyText,
  policyFileNames,
  policyNames,
} from "../../../../services/common/policy/mod.ts";
import { type Edit, issuesOf, policyErrorOf, SHIPPED } from "./helpers.ts";

const ALL_CHANNELS =
  "critical_group, family_group, owner_private_dm, owner_regular_dm, partner_private_dm, partner_regular_dm";

Deno.test("every shipped policy file loads, with the figures of the files", () => {
  const p = loadPolicies(SHIPPED);
  assert.deepEqual(Object.keys(p).sort(), [...policyNames].sort());
  assert.equal(p.policy.rate_limits.outbound.owner_dm.per_hour, 120);
  assert.equal(p.channelUsers.allowed_channel_users.owner_private_dm, "joi-owner-private");
  assert.equal(p.identities.identities["+15550000001"]!.recipient_id, "owner");
  assert.deepEqual(p.recipients.recipients.partner!.public_readers, ["joi-critical"]);
  assert.deepEqual(p.recipients.groups.critical!.readers, []); // default of an omitted list
  assert.equal(p.infra.global.ai_access_default, "pro");
  assert.equal(p.network.ports.joi_inbound, 8443);
  assert.equal(p.llm.banned_families.includes("qwen"), true);
});

Deno.test("each shipped file loads alone with loadPolicyFile", () => {
  for (const name of policyNames) {
    const config = loadPolicyFile(name, `${SHIPPED}/${policyFileNames[name]}`);
    assert.equal(typeof config, "object", name);
  }
});

Deno.test("loaded policies are deeply frozen", () => {
  const p = loadPolicies(SHIPPED);
  assert.throws(() => {
    (p.policy.rate_limits.outbound.owner_dm as { per_hour: number }).per_hour = 1;
  }, TypeError);
  assert.throws(() => {
    (p.llm.banned_families as string[]).pop();
  }, TypeError);
});

/** name -> [edits, the exact issue lines expected] */
const VARIANTS: [string, Edit[], string[]][] = [
  [
    "YAML syntax error",
    [{
      file: "channel_users.yaml",
      from: "  family_group: joi-family\n",
      to: "  family_group: [joi-family\n",
    }],
    [
      "policies/channel_users.yaml:9:3: allowed_channel_users.family_group: YAML: Flow sequence in block collection must be sufficiently indented and end with a ]",
    ],
  ],
  [
    "duplicate key",
    [{
      file: "policy.yaml",
      from: "  max_body_bytes: 65536",
      to: "  max_body_bytes: 65536\n  max_body_bytes: 1024",
    }],
    [
      'policies/policy.yaml:8:3: security.max_body_bytes: duplicate key "max_body_bytes" (first defined at line 7)',
    ],
  ],
  [
    "wrong type in a flow mapping",
    [{
      file: "policy.yaml",
      from: "{ per_hour: 120, per_minute: 20, cooldown_seconds: 5 }",
      to: "{ per_hour: lots, per_minute: 20, cooldown_seconds: 5 }",
    }],
    [
      'policies/policy.yaml:12:34: rate_limits.outbound.owner_dm.per_hour: expected a number, got string "lots"',
    ],
  ],
  [
    "a fraction where a whole number is needed",
    [{ file: "policy.yaml", from: "batch_minutes: 5", to: "batch_minutes: 5.5" }],
    ["policies/policy.yaml:74:18: ingest.batch_minutes: expected an integer, got number 5.5"],
  ],
  [
    "number below its minimum",
    [{ file: "groups.yaml", from: "check_interval_hours: 6", to: "check_interval_hours: 0" }],
    ["policies/groups.yaml:4:23: check_interval_hours: must be >= 1, got number 0"],
  ],
  [
    "value outside an enum",
    [{
      file: "tools.yaml",
      from: "gateway: tts-vm\n    transport: tool_api",
      to: "gateway: tts-vm\n    transport: toolapi",
    }],
    [
      'policies/tools.yaml:26:16: tools.text_to_speech.transport: must be one of "http_proxy", "tool_api", got string "toolapi"',
    ],
  ],
  [
    "unknown key at the top level",
    [{ file: "llm.yaml", from: "temperature: 0.6", to: "temperature: 0.6\ntemprature: 0.5" }],
    ['policies/llm.yaml:14:1: temprature: unknown key "temprature" (did you mean "temperature"?)'],
  ],
  [
    "unknown key at depth 3, in a flow mapping",
    [{
      file: "policy.yaml",
      from: `weekday: { start: "23:00", end: "07:00" }`,
      to: `weekday: { start: "23:00", end: "07:00", ending: "08:00" }`,
    }],
    ['policies/policy.yaml:34:44: quiet_hours.weekday.ending: unknown key "ending" (allowed: start, end)'],
  ],
  [
    "unknown key (typo) inside a record entry",
    [{
      file: "recipients.yaml",
      from: "    reader_group: joi-partner-readers\n    public_readers:",
      to: "    reader_group: joi-partner-readers\n    publc_readers:",
    }],
    [
      'policies/recipients.yaml:22:5: recipients.partner.publc_readers: unknown key "publc_readers" (did you mean "public_readers"?)',
    ],
  ],
  [
    "unknown key under a quoted record key",
    [{ file: "identities.yaml", from: "    name: Owner", to: "    nmae: Owner" }],
    [
      'policies/identities.yaml:9:5: identities["+15550000001"].nmae: unknown key "nmae" (allowed: recipient_id, uuid, name)',
    ],
  ],
  [
    "missing required key",
    [{ file: "recipients.yaml", from: "    reader_group: joi-partner-readers\n", to: "" }],
    ["policies/recipients.yaml:18:3: recipients.partner.reader_group: required key is missing (expected a string)"],
  ],
  [
    "the example of the brief: an unknown channel user as public reader",
    [{
      file: "recipients.yaml",
      from: "      - joi-family        # the owner",
      to: "      - joi-famly        # the owner",
    }],
    ['policies/recipients.yaml:16:9: recipients.owner.public_readers[1]: unknown channel user "joi-famly"'],
  ],
  [
    "a private channel user as public reader",
    [{
      file: "recipients.yaml",
      from: "      - joi-family        # the owner",
      to: "      - joi-partner-private # the owner",
    }],
    [
      'policies/recipients.yaml:16:9: recipients.owner.public_readers[1]: "joi-partner-private" is a private channel user: private knowledge is never shared, so it cannot read another folder',
    ],
  ],
  [
    "a channel user used twice",
    [{ file: "recipients.yaml", from: "    user: joi-family", to: "    user: joi-owner-public" }],
    [
      'policies/recipients.yaml:16:9: recipients.owner.public_readers[1]: unknown channel user "joi-family"',
      'policies/recipients.yaml:28:11: groups.family.user: channel user "joi-owner-public" is already used by recipients.owner.public_user: each channel needs its own user, or the kernel cannot keep their knowledge apart',
    ],
  ],
  [
    "channel not derived from recipients.yaml",
    [{
      file: "channel_users.yaml",
      from: "  critical_group: joi-critical",
      to: "  critical_group: joi-critical\n  stranger_private_dm: joi-stranger",
    }],
    [
      `policies/channel_users.yaml:10:3: allowed_channel_users.stranger_private_dm: channel "stranger_private_dm" does not follow from recipients.yaml (derived channels: ${ALL_CHANNELS})`,
    ],
  ],
  [
    "derived channel missing from channel_users.yaml",
    [{ file: "channel_users.yaml", from: "  partner_regular_dm: joi-partner-public\n", to: "" }],
    [
      "policies/channel_users.yaml:3:1: allowed_channel_users.partner_regular_dm: channel derived from recipients.yaml is missing (add: partner_regular_dm: joi-partner-public)",
      'policies/policy.yaml:96:5: memory.retention_days.partner_regular_dm: unknown channel "partner_regular_dm" (channel_users.yaml has: critical_group, family_group, owner_private_dm, owner_regular_dm, partner_private_dm)',
    ],
  ],
  [
    "channel mapped to another user than recipients.yaml gives",
    [{
      file: "channel_users.yaml",
      from: "owner_regular_dm: joi-owner-public",
      to: "owner_regular_dm: joi-owner-private",
    }],
    [
      'policies/channel_users.yaml:5:21: allowed_channel_users.owner_regular_dm: channel user "joi-owner-private" does not match recipients.yaml, which gives "joi-owner-public"',
    ],
  ],
  [
    "identity of an unknown recipient",
    [{ file: "identities.yaml", from: "recipient_id: partner", to: "recipient_id: partnr" }],
    [
      'policies/identities.yaml:11:19: identities["+15550000002"].recipient_id: unknown recipient "partnr" (recipients.yaml has: owner, partner)',
    ],
  ],
  [
    "identity group feeding an unknown channel",
    [{ file: "identities.yaml", from: "channel: family_group", to: "channel: famly_group" }],
    [
      'policies/groups.yaml:10:3: groups.family_group: identities.yaml maps group id "ZmFtaWx5LWdyb3VwLWlkLTAwMDAwMDAwMDAwMDAwMDA=" to channel "famly_group", not "family_group"',
      `policies/identities.yaml:22:14: groups["ZmFtaWx5LWdyb3VwLWlkLTAwMDAwMDAwMDAwMDAwMDA="].channel: unknown channel "famly_group" (channel_users.yaml has: ${ALL_CHANNELS})`,
    ],
  ],
  [
    "identity group feeding a private channel",
    [{
      file: "identities.yaml",
      from: "channel: owner_regular_dm",
      to: "channel: owner_private_dm",
    }],
    [
      'policies/groups.yaml:6:3: groups.owner_regular_dm: identities.yaml maps group id "b3duZXItcHVibGljLWdyb3VwLWlkLTAwMDAwMDAwMDA=" to channel "owner_private_dm", not "owner_regular_dm"',
      'policies/identities.yaml:19:14: groups["b3duZXItcHVibGljLWdyb3VwLWlkLTAwMDAwMDAwMDA="].channel: a Signal group cannot feed the private channel "owner_private_dm": every member would read private knowledge',
    ],
  ],
  [
    "groups.yaml member who is not a recipient",
    [{
      file: "groups.yaml",
      from: "expected_members: [owner, partner]",
      to: "expected_members: [owner, partnr]",
    }],
    [
      "policies/groups.yaml:12:23: groups.family_group.expected_members: expected members [owner, partnr] differ from identities.yaml [owner, partner]",
      'policies/groups.yaml:12:31: groups.family_group.expected_members[1]: unknown recipient "partnr" (recipients.yaml has: owner, partner)',
    ],
  ],
  [
    "groups.yaml group id not in identities.yaml",
    [{
      file: "groups.yaml",
      from: "Y3JpdGljYWwtZ3JvdXAtaWQtMDAwMDAwMDAwMDAwMDA=",
      to: "Y3JpdGljYWwtZ3JvdXAtaWQtMDAwMDAwMDAwMDAwMDE=",
    }],
    [
      'policies/groups.yaml:15:22: groups.critical_group.signal_group_id: group id "Y3JpdGljYWwtZ3JvdXAtaWQtMDAwMDAwMDAwMDAwMDE=" is not in the groups of identities.yaml',
      'policies/identities.yaml:24:3: groups["Y3JpdGljYWwtZ3JvdXAtaWQtMDAwMDAwMDAwMDAwMDA="]: group is not monitored: add it to groups.yaml under its channel',
    ],
  ],
  [
    "retention for an unknown channel",
    [{
      file: "policy.yaml",
      from: "    family_group: 90",
      to: "    family_group: 90\n    stranger_dm: 30",
    }],
    [
      `policies/policy.yaml:98:5: memory.retention_days.stranger_dm: unknown channel "stranger_dm" (channel_users.yaml has: ${ALL_CHANNELS})`,
    ],
  ],
  [
    "banned model as primary (case-insensitive)",
    [{
      file: "llm.yaml",
      from: "primary_model: llama3.1:8b-instruct-q4_K_M",
      to: "primary_model: Qwen2.5:7b-instruct",
    }],
    ['policies/llm.yaml:3:16: primary_model: model "Qwen2.5:7b-instruct" belongs to the banned family "qwen"'],
  ],
  [
    "banned model as fallback",
    [{ file: "llm.yaml", from: "  - phi3:mini", to: "  - DeepSeek-R1:8b" }],
    ['policies/llm.yaml:6:5: fallback_models[1]: model "DeepSeek-R1:8b" belongs to the banned family "deepseek"'],
  ],
  [
    "banned_families without deepseek",
    [{ file: "llm.yaml", from: "[qwen, deepseek, yi,", to: "[qwen, yi," }],
    ['policies/llm.yaml:9:18: banned_families: must include "deepseek" (the model trust policy of the architecture)'],
  ],
  [
    "remote llm endpoint",
    [{
      file: "llm.yaml",
      from: "endpoint: http://127.0.0.1:11434/v1",
      to: "endpoint: https://api.openai.com/v1",
    }],
    [
      'policies/llm.yaml:2:11: endpoint: "https://api.openai.com/v1" is not a loopback or private address URL: joi is offline (e.g. "http://127.0.0.1:11434/v1")',
    ],
  ],
  [
    "weak nonce window",
    [{
      file: "policy.yaml",
      from: "nonce_retention_minutes: 15",
      to: "nonce_retention_minutes: 10",
    }],
    [
      "policies/policy.yaml:6:28: security.nonce_retention_minutes: must be more than 2 x timestamp_tolerance_minutes (5), got 10: a nonce forgotten while its timestamp is still accepted can be replayed",
    ],
  ],
  [
    "bad time zone",
    [{
      file: "policy.yaml",
      from: "timezone: Europe/Bratislava",
      to: "timezone: Europe/Bratslava",
    }],
    [
      'policies/policy.yaml:108:13: household.timezone: "Europe/Bratslava" is not an IANA time zone name (e.g. "Europe/Bratislava", "UTC")',
    ],
  ],
  [
    "quiet hours not as HH:MM",
    [{ file: "policy.yaml", from: `end: "09:00"`, to: `end: "9:00"` }],
    ['policies/policy.yaml:35:35: quiet_hours.weekend.end: "9:00" is not a time of day as HH:MM (00:00 to 23:59)'],
  ],
  [
    "blocked pattern that does not compile",
    [{
      file: "policy.yaml",
      from: 'pattern: "```"',
      to: 'pattern: "(?:```"',
    }],
    [
      'policies/policy.yaml:47:16: content.blocked_patterns[1].pattern: "(?:```" is not a valid regular expression: Invalid regular expression: /(?:```/iu: Unterminated group',
    ],
  ],
  [
    "phone number not E.164 (unquoted, so YAML reads a number)",
    [{ file: "identities.yaml", from: `"+15550000002":`, to: `15550000002:` }],
    [
      'policies/identities.yaml:10:3: identities["15550000002"]: "15550000002" is not an E.164 phone number ("+" then 7 to 15 digits, quoted in YAML: "+15550000001")',
    ],
  ],
  [
    "duplicate identity uuid",
    [{
      file: "identities.yaml",
      from: "uuid: 3b0b5f4e-8d6c-4a55-9d6e-1f2a3b4c5d02",
      to: "uuid: 3B0B5F4E-8d6c-4a55-9d6e-1f2a3b4c5d01",
    }],
    [
      'policies/identities.yaml:12:11: identities["+15550000002"].uuid: uuid 3B0B5F4E-8d6c-4a55-9d6e-1f2a3b4c5d01 is already the uuid of +15550000001: every identity has its own Signal ACI',
    ],
  ],
  [
    "identity uuid that is not a UUID",
    [{
      file: "identities.yaml",
      from: "uuid: 3b0b5f4e-8d6c-4a55-9d6e-1f2a3b4c5d02",
      to: "uuid: partner-uuid",
    }],
    [
      'policies/identities.yaml:12:11: identities["+15550000002"].uuid: "partner-uuid" is not a UUID (the Signal ACI, 8-4-4-4-12 hex digits)',
    ],
  ],
  [
    "two phones for one recipient",
    [{ file: "identities.yaml", from: "recipient_id: partner", to: "recipient_id: owner" }],
    [
      'policies/identities.yaml:11:19: identities["+15550000002"].recipient_id: recipient "owner" already has the phone +15550000001: one phone per recipient, or outbound messages are ambiguous',
    ],
  ],
  [
    "http_proxy tool without an http URL",
    [{
      file: "tools.yaml",
      from: `endpoint: "http://10.42.0.1:3128"`,
      to: `endpoint: "10.42.0.1:3128"`,
    }],
    [
      'policies/tools.yaml:7:15: tools.web_search.endpoint: endpoint "10.42.0.1:3128" of an http_proxy tool must be an http:// URL (e.g. "http://10.42.0.1:3128")',
    ],
  ],
  [
    "infra domain name that is not DNS-safe",
    [{ file: "infra.yml", from: "  perso:\n", to: "  Perso_Desk:\n" }],
    [
      'policies/infra.yml:28:3: domains.Perso_Desk: domain name "Perso_Desk" is not DNS-safe (lowercase letters, digits and "-", not starting or ending with "-")',
    ],
  ],
  [
    "infra: a second network policy targeting ai-tools (exclusive mode)",
    [{
      file: "infra.yml",
      from: "    bidirectional: true",
      to: "    bidirectional: true\n  - from: perso\n    to: ai-tools",
    }],
    ['policies/infra.yml:44:5: network_policies[1]: at most one network policy may target "ai-tools", found 2'],
  ],
  [
    "host outside the Nebula network",
    [{ file: "network.yaml", from: "openhab: 10.42.0.20", to: "openhab: 10.43.0.20" }],
    ["policies/network.yaml:12:12: hosts.openhab: 10.43.0.20 is outside the Nebula network 10.42.0.0/24"],
  ],
  [
    "underlay overlapping the overlay",
    [{
      file: "network.yaml",
      from: "underlay_cidr: 10.99.0.0/29",
      to: "underlay_cidr: 10.42.0.0/16",
    }],
    [
      "policies/network.yaml:7:18: nebula.underlay_cidr: the underlay 10.42.0.0/16 overlaps the Nebula network 10.42.0.0/24",
    ],
  ],
  [
    "empty file",
    [{ file: "llm.yaml", from: Deno.readTextFileSync(`${SHIPPED}/llm.yaml`), to: "" }],
    ["policies/llm.yaml:1:1: (root): expected a mapping, got an empty value"],
  ],
  [
    "issues of several files are collected in one error",
    [
      {
        file: "llm.yaml",
        from: "primary_model: llama3.1:8b-instruct-q4_K_M",
        to: "primary_model: qwen3:8b",
      },
      {
        file: "policy.yaml",
        from: "nonce_retention_minutes: 15",
        to: "nonce_retention_minutes: 10",
      },
      { file: "recipients.yaml", from: "    reader_group: joi-partner-readers\n", to: "" },
    ],
    [
      'policies/llm.yaml:3:16: primary_model: model "qwen3:8b" belongs to the banned family "qwen"',
      "policies/policy.yaml:6:28: security.nonce_retention_minutes: must be more than 2 x timestamp_tolerance_minutes (5), got 10: a nonce forgotten while its timestamp is still accepted can be replayed",
      "policies/recipients.yaml:18:3: recipients.partner.reader_group: required key is missing (expected a string)",
    ],
  ],
];

for (const [name, edits, expected] of VARIANTS) {
  Deno.test(`broken variant: ${name}`, async () => {
    assert.deepEqual(await issuesOf(edits), expected);
  });
}

Deno.test("a missing policy file is named, and the other files are still checked", async () => {
  const dir = await Deno.makeTempDir({ prefix: "joi-policy-" });
  try {
    for (const file of Object.values(policyFileNames)) {
      if (file !== "network.yaml") await Deno.copyFile(`${SHIPPED}/${file}`, `${dir}/${file}`);
    }
    await Deno.writeTextFile(`${dir}/llm.yaml`, "endpoint: [\n");
    const err = policyErrorOf(() => loadPolicies(dir));
    const lines = err.issues.map(formatIssue).map((l) => l.replace(`${dir}/`, ""));
    assert.equal(lines.length, 2);
    assert.match(lines[0]!, /^llm\.yaml:2:1: endpoint: YAML: /);
    assert.equal(lines[1], "network.yaml:1:1: (root): cannot read the file: file not found");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("PolicyError message: a count line, then one issue per line", () => {
  const err = policyErrorOf(() =>
    parsePolicyText("groups", "check_interval_hours: 0\ngroups: {}\nextra: 1\n", "g.yaml")
  );
  assert.equal(
    err.message,
    [
      "invalid policy (2 issues):",
      "g.yaml:1:23: check_interval_hours: must be >= 1, got number 0",
      'g.yaml:3:1: extra: unknown key "extra" (allowed: check_interval_hours, groups)',
    ].join("\n"),
  );
  assert.equal(err.issues.length, 2);
  assert.deepEqual(err.issues[1], {
    file: "g.yaml",
    line: 3,
    col: 1,
    path: "extra",
    message: 'unknown key "extra" (allowed: check_interval_hours, groups)',
  });
});

Deno.test("parsePolicyText refuses an unknown policy name", () => {
  assert.throws(
    () => parsePolicyText("secrets" as "llm", "a: 1", "x.yaml"),
    /unknown policy name "secrets" \(known: recipients, channelUsers, identities, groups, policy, tools, llm, infra, network\)/,
  );
});

Deno.test("YAML tags, anchors into the wrong place and multiple documents are reported, never crash", () => {
  const cases: [string, RegExp][] = [
    [
      "check_interval_hours: !!binary aGVsbG8=\ngroups: {}\n",
      /^g\.yaml:1:32: check_interval_hours: YAML: the tag !!binary is not allowed: write a plain value$/,
    ],
    ["check_interval_hours: 1\ngroups: {}\n---\nmore: 1\n", /^g\.yaml:3:1: .*YAML: /],
    [
      "<<: {check_interval_hours: 1}\ngroups: {}\n",
      /^g\.yaml:1:1: \["<<"\]: YAML: merge keys \(<<\) are not supported: write the keys out$/,
    ],
    ["check_interval_hours: &n 1\ngroups: *n\n", /groups: expected a mapping, got number 1$/],
    ["- 1\n- 2\n", /^g\.yaml:1:1: \(root\): expected a mapping, got a list$/],
  ];
  for (const [text, re] of cases) {
    const err = policyErrorOf(() => parsePolicyText("groups", text, "g.yaml"));
    assert.match(err.issues.map(formatIssue).join("\n"), re, text);
  }
});

Deno.test("__proto__ keys are refused everywhere, including inside records zod would drop them from", () => {
  const llm = Deno.readTextFileSync(`${SHIPPED}/llm.yaml`);
  assert.deepEqual(
    policyErrorOf(() => parsePolicyText("llm", `${llm}__proto__: {polluted: 1}\n`, "l.yaml")).issues
      .map(formatIssue),
    ['l.yaml:14:1: __proto__: unknown key "__proto__" (not allowed anywhere)'],
  );
  const channels =
    "allowed_channel_users:\n  owner_private_dm: joi-owner-private\n  __proto__: joi-x\n";
  assert.deepEqual(
    policyErrorOf(() => parsePolicyText("channelUsers", channels, "c.yaml")).issues.map(
      formatIssue,
    ),
    ['c.yaml:3:3: allowed_channel_users.__proto__: unknown key "__proto__" (not allowed anywhere)'],
  );
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
});

Deno.test("own() sees only the policy's entries, never the object prototype", () => {
  const p = loadPolicies(SHIPPED);
  const users = p.channelUsers.allowed_channel_users;
  assert.equal(own(users, "owner_private_dm"), "joi-owner-private");
  for (const key of ["constructor", "toString", "__proto__", "hasOwnProperty", "nope"]) {
    assert.equal(own(users, key), undefined, key);
  }
});
