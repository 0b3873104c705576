import assert from "node:assert/strict";
import { IdentityView } from "../../../services/mesh/identity.ts";
import { hashIdentities } from "../../../services/mesh/identity.ts";
import { exampleIdentities, GROUPS, OWNER, PARTNER, STRANGER } from "./harness.ts";

const view = () => {
  const c = exampleIdentities();
  return new IdentityView(c, hashIdentities(c));
};

Deno.test("senders: by number, else by uuid; a contradicting uuid is refused", () => {
  const v = view();
  assert.equal(v.sender(OWNER.number, OWNER.uuid)?.recipientId, "owner");
  assert.equal(v.sender(null, PARTNER.uuid.toUpperCase())?.recipientId, "partner");
  assert.equal(v.sender(OWNER.number, STRANGER.uuid), null);
  assert.equal(v.sender(STRANGER.number, OWNER.uuid), null, "a known uuid with another number");
  assert.equal(v.sender(null, null), null);
});

Deno.test("channels are decided by the mesh: DM -> private_dm, group -> its channel, unknown -> null", () => {
  const v = view();
  const owner = v.sender(OWNER.number, null)!;
  assert.equal(v.channelFor(owner, null), "owner_private_dm");
  assert.equal(v.channelFor(owner, GROUPS.family_group), "family_group");
  assert.equal(v.channelFor(owner, GROUPS.owner_regular_dm), "owner_regular_dm");
  assert.equal(v.channelFor(owner, "QUJD"), null);
});

Deno.test("outbound targets: canonical ids, channels, group ids; everything else refused", () => {
  const v = view();
  assert.deepEqual(v.target("owner", "direct"), {
    kind: "direct",
    channel: "owner_private_dm",
    recipientId: "owner",
    number: OWNER.number,
  });
  assert.equal(v.target("partner_private_dm", "direct")?.kind, "direct");
  assert.deepEqual(v.target("owner_regular_dm", "direct"), {
    kind: "group",
    channel: "owner_regular_dm",
    groupId: GROUPS.owner_regular_dm,
  });
  assert.equal(v.target("x", "group", GROUPS.critical_group)?.kind, "group");
  assert.equal(v.target("critical_group", "group")?.kind, "group");
  assert.equal(v.target("owner", "direct", undefined, PARTNER.number), null);
  for (
    const bad of ["mallory", STRANGER.number, "", "owner_public_dm", "__proto__", "constructor"]
  ) {
    assert.equal(v.target(bad, "direct"), null, bad);
    assert.equal(v.target(bad, "group"), null, bad);
  }
});
