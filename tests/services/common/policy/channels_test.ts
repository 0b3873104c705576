import assert from "node:assert/strict";
import {
  channelOfGroup,
  channelOfRecipient,
  crossCheck,
  deriveChannels,
  formatIssue,
  loadPolicies,
  type Policies,
} from "../../../../services/common/policy/mod.ts";
import { SHIPPED } from "./helpers.ts";

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
