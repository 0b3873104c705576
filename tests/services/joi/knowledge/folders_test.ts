/** The folder table derived from recipients.yaml (shipped example and edge cases). */
import assert from "node:assert/strict";
import { deriveChannels, loadPolicyFile } from "../../../../services/common/policy/mod.ts";
import {
  channelUsers,
  knowledgeFolders,
  writeFolderOf,
} from "../../../../services/joi/knowledge/folders.ts";
import type { Recipients } from "../../../../services/common/policy/recipients.ts";

const shipped = (): Recipients =>
  structuredClone(loadPolicyFile(
    "recipients",
    new URL("../../../../policies/recipients.yaml", import.meta.url).pathname,
  ));

Deno.test("shipped household: folders, groups and readers follow the architecture tables", () => {
  const byPath = Object.fromEntries(knowledgeFolders(shipped()).map((f) => [f.path, f]));
  assert.deepEqual(Object.keys(byPath).sort(), [
    "critical/safety",
    "group/family",
    "group/owner_public",
    "group/partner_public",
    "owner/private",
    "partner/private",
    "shared",
  ]);
  assert.deepEqual(byPath["owner/private"]!.readers, ["joi-owner-private"]);
  assert.equal(byPath["owner/private"]!.group, "joi-owner-private");
  assert.deepEqual(byPath["group/owner_public"]!.readers, [
    "joi-critical",
    "joi-family",
    "joi-owner-public",
  ]);
  assert.equal(byPath["group/owner_public"]!.group, "joi-owner-readers");
  assert.deepEqual(byPath["group/partner_public"]!.readers, ["joi-critical", "joi-partner-public"]);
  assert.deepEqual(byPath["group/family"]!.readers, ["joi-critical", "joi-family"]);
  assert.deepEqual(byPath["critical/safety"]!.readers, ["joi-critical"]);
  assert.equal(byPath["shared"]!.group, "joi-all-channels");
  assert.equal(byPath["shared"]!.readers.length, 6);
});

Deno.test("critical reads every public folder even if the file forgets it, never a private one", () => {
  const r = shipped();
  r.recipients.partner!.public_readers = [];
  r.groups.family!.readers = [];
  for (const f of knowledgeFolders(r)) {
    const reads = f.readers.includes("joi-critical");
    assert.equal(reads, f.kind !== "private", f.path);
  }
});

Deno.test("writes route by channel user; shared has no writer; channels follow recipients", () => {
  const r = shipped();
  assert.equal(writeFolderOf(r, "joi-owner-private")?.path, "owner/private");
  assert.equal(writeFolderOf(r, "joi-owner-public")?.path, "group/owner_public");
  assert.equal(writeFolderOf(r, "joi-family")?.path, "group/family");
  assert.equal(writeFolderOf(r, "joi-critical")?.path, "critical/safety");
  assert.equal(writeFolderOf(r, "joi"), undefined);
  const shippedChannels = loadPolicyFile(
    "channelUsers",
    new URL("../../../../policies/channel_users.yaml", import.meta.url).pathname,
  );
  assert.deepEqual(deriveChannels(r), shippedChannels.allowed_channel_users);
  assert.equal(channelUsers(r).length, 6);
});
