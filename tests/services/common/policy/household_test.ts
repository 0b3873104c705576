import assert from "node:assert/strict";
import {
  channelOfGroup,
  channelOfRecipient,
  crossCheck,
  deriveChannels,
  formatIssue,
  householdRoles,
  isPrivateChannel,
  loadPolicies,
  parseChannel,
  type Policies,
  recipientOfChannel,
} from "../../../../services/common/policy/mod.ts";
import { issuesOf, SHIPPED } from "./helpers.ts";

Deno.test("channel names follow the recipient and group names", () => {
  const priv: "owner_private_dm" = channelOfRecipient("owner", "private");
  const reg: "owner_regular_dm" = channelOfRecipient("owner", "regular");
  assert.equal(priv, "owner_private_dm");
  assert.equal(reg, "owner_regular_dm");
  assert.equal(channelOfGroup("family"), "family_group");
  assert.throws(
    () => channelOfRecipient("owner", "public" as "private"),
    /kind must be "private" or "regular", got "public"/,
  );
});

Deno.test("deriveChannels of the shipped recipients is exactly the shipped channel_users", () => {
  const p = loadPolicies(SHIPPED);
  assert.deepEqual(deriveChannels(p.recipients), p.channelUsers.allowed_channel_users);
  assert.deepEqual(crossCheck(p), []);
});

Deno.test("crossCheck on policies built in code reports at line 0 of the default file names", () => {
  const p = loadPolicies(SHIPPED);
  const built: Policies = {
    ...structuredClone(p),
    channelUsers: { allowed_channel_users: { owner_private_dm: "joi-owner-private" } },
  };
  const lines = crossCheck(built).map(formatIssue);
  assert.deepEqual(lines.slice(0, 2), [
    "channel_users.yaml:0:0: allowed_channel_users.owner_regular_dm: channel derived from recipients.yaml is missing (add: owner_regular_dm: joi-owner-public)",
    "channel_users.yaml:0:0: allowed_channel_users.partner_private_dm: channel derived from recipients.yaml is missing (add: partner_private_dm: joi-partner-private)",
  ]);
  assert.ok(lines.some((l) => l.startsWith('identities.yaml:0:0: groups["ZmFt')), lines.join("\n"));
});

Deno.test("parseChannel reads back exactly what the household model builds", () => {
  for (const id of ["owner", "partner", "grand_mother", "a1"]) {
    assert.deepEqual(parseChannel(channelOfRecipient(id, "private")), {
      kind: "private",
      recipient: id,
    });
    assert.deepEqual(parseChannel(channelOfRecipient(id, "regular")), {
      kind: "regular",
      recipient: id,
    });
    assert.deepEqual(parseChannel(channelOfGroup(id)), { kind: "group", group: id });
  }
  // a group may carry a name that looks like a channel: the whole prefix is the group
  assert.deepEqual(parseChannel("x_private_dm_group"), { kind: "group", group: "x_private_dm" });
  for (
    const bad of ["owner", "_private_dm", "owner_public_dm", "Owner_private_dm", "family_group "]
  ) {
    assert.equal(parseChannel(bad), undefined, bad);
  }
  assert.equal(isPrivateChannel("owner_private_dm"), true);
  assert.equal(isPrivateChannel("owner_regular_dm"), false);
  assert.equal(isPrivateChannel("critical_group"), false);
  assert.equal(recipientOfChannel("partner_regular_dm"), "partner");
  assert.equal(recipientOfChannel("family_group"), undefined);
});

Deno.test("householdRoles: the first recipient owns the household; critical and family channels", () => {
  const p = loadPolicies(SHIPPED);
  assert.deepEqual(householdRoles(p.recipients), {
    owner: "owner",
    ownerDm: "owner_private_dm",
    criticalChannel: "critical_group",
    familyChannel: "family_group",
  });
  const reordered = {
    recipients: {
      partner: p.recipients.recipients.partner!,
      owner: p.recipients.recipients.owner!,
    },
  };
  assert.equal(householdRoles(reordered).owner, "partner");
  assert.throws(() => householdRoles({ recipients: {} }), /lists no recipient/);
});

Deno.test("recipients.yaml without a recipient is refused at load (no owner) with file:line:col", async () => {
  const lines = await issuesOf([{
    file: "recipients.yaml",
    from: (await Deno.readTextFile(`${SHIPPED}/recipients.yaml`)).match(
      /^recipients:[\s\S]*?(?=^\S)/m,
    )![0],
    to: "recipients: {}\n",
  }]);
  assert.ok(
    lines.some((l) =>
      /^policies\/recipients\.yaml:\d+:\d+: recipients: lists no recipient: the first recipient is the household's owner/
        .test(l)
    ),
    lines.join("\n"),
  );
});

/** Code of a TypeScript file without its comments (newlines kept, so lines still count). */
function withoutComments(src: string): string {
  let out = "";
  let quote: string | null = null;
  for (let i = 0; i < src.length; i++) {
    const c = src[i]!;
    if (quote !== null) {
      out += c;
      if (c === "\\") out += src[++i] ?? "";
      else if (c === quote || (c === "\n" && quote !== "`")) quote = null;
    } else if (src.startsWith("//", i)) {
      while (i < src.length && src[i] !== "\n") i++;
      out += "\n";
    } else if (src.startsWith("/*", i)) {
      const end = src.indexOf("*/", i + 2);
      const stop = end < 0 ? src.length : end + 2;
      out += src.slice(i, stop).replace(/[^\n]/g, "");
      i = stop - 1;
    } else {
      if (c === '"' || c === "'" || c === "`") quote = c;
      out += c;
    }
  }
  return out;
}

/**
 * Spellings of channel names: building (`${id}_private_dm`, `${id}_${kind}_dm`,
 * `"_" + "private_dm"`), parsing (`endsWith("_group")`, `/_(private|regular)_dm$/`,
 * `/_group$/`), literals.
 */
const CHANNEL_SPELLINGS = [
  /(?:private|regular)_dm\b/,
  /\}_(?:dm|group)\b/,
  /["'`/]_(?:dm|group)\b/,
  /_(?:dm|group)\$/,
  /\(\??:?(?:private\|regular|regular\|private)\)_dm/,
  /\b(?:critical|family)_group\b/,
];

Deno.test("no channel name is built, parsed or spelled outside the household model", async () => {
  const found: string[] = [];
  const visit = async (path: string) => {
    const info = await Deno.stat(path);
    if (info.isDirectory) {
      for await (const e of Deno.readDir(path)) await visit(`${path}/${e.name}`);
      return;
    }
    if (!path.endsWith(".ts") || path === "services/common/policy/household.ts") return;
    const lines = withoutComments(await Deno.readTextFile(path)).split("\n");
    lines.forEach((line, i) => {
      if (CHANNEL_SPELLINGS.some((re) => re.test(line))) {
        found.push(`${path}:${i + 1}: ${line.trim()}`);
      }
    });
  };
  for (const root of ["main.ts", "services", "scripts"]) await visit(root);
  assert.deepEqual(
    found,
    [],
    "use services/common/policy/household.ts (channelOfRecipient, channelOfGroup, parseChannel, " +
      "householdRoles) instead of spelling channel names",
  );
});

Deno.test("the vocabulary check sees a spelled channel name and ignores comments", () => {
  const code = withoutComments(
    '// owner_private_dm in a comment\nconst a = `${id}_private_dm`; /* family_group */\nx.endsWith("_group");\n',
  ).split("\n");
  const hits = code.filter((l) => CHANNEL_SPELLINGS.some((re) => re.test(l)));
  assert.deepEqual(hits, ["const a = `${id}_private_dm`; ", 'x.endsWith("_group");']);
});

Deno.test("the vocabulary check sees every way of building or parsing a channel name", () => {
  // the first six slipped past the first patterns
  const spelled = [
    "const c = `${id}_${kind}_dm`;",
    'const c = id + "_" + "private_dm";',
    "const m = /^(.+)_(private|regular)_dm$/.exec(name);",
    "const m = /^(.+)_(?:regular|private)_dm/.exec(name);",
    "if (/_group$/.test(name)) return;",
    "if (/_dm$/.test(name)) return;",
    "const g = `${name}_group`;",
    'const c = "_" + kind + "_dm";',
  ];
  const missed = spelled.filter((l) => !CHANNEL_SPELLINGS.some((re) => re.test(l)));
  assert.deepEqual(missed, []);
  // and names that merely look alike are not flagged
  const plain = [
    "const g = r.reader_group;",
    "const dm = isPrivateChannel(channel);",
    "const groups = policies.groups.groups;",
  ];
  assert.deepEqual(plain.filter((l) => CHANNEL_SPELLINGS.some((re) => re.test(l))), []);
});
