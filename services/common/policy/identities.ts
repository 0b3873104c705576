/**
 * Schema of `identities.yaml`: the Signal identities the mesh accepts (phone
 * -> recipient, with the Signal ACI uuid) and the Signal groups it maps to
 * channels. Anyone not listed is dropped at the mesh.
 *
 * The schema has no defaults or transforms: the validated config equals the
 * file's data, so `identitiesHash` gives the same value on joi (from YAML) and
 * on the mesh (from the JSON it fetches).
 *
 * @module
 */
import { z } from "zod";
import { channelName, identifier } from "./primitives.ts";
import type { RuleIssue } from "./source.ts";

/** E.164: `+`, country code, at most 15 digits in all. */
export const E164 = /^\+[1-9]\d{6,14}$/;

/** A UUID in its canonical 8-4-4-4-12 hex form. */
export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Standard base64 (Signal group ids as signal-cli prints them). */
export const BASE64 = /^(?:[A-Za-z0-9+/]{4})+(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

const phone = z.string().regex(E164, {
  error: (iss) =>
    `${JSON.stringify(iss.input)} is not an E.164 phone number ` +
    `("+" then 7 to 15 digits, quoted in YAML: "+15550000001")`,
});

/** A Signal group id, base64 as signal-cli prints it. */
export const signalGroupId = z.string().regex(BASE64, {
  error: (iss) =>
    `${JSON.stringify(iss.input)} is not a base64 Signal group id (as signal-cli prints it)`,
});

/** One Signal identity. */
export const IdentitySchema = z.object({
  recipient_id: identifier("recipient id"),
  uuid: z.string().regex(UUID, {
    error: (iss) =>
      `${JSON.stringify(iss.input)} is not a UUID (the Signal ACI, 8-4-4-4-12 hex digits)`,
  }),
  name: z.string().min(1).max(100).optional(),
}).strict();

/**
 * One Signal group and the channel its messages belong to. A sender who is
 * not one of its `expected_members` is dropped at the mesh. `respond`:
 * `mentioned` (joi answers only lines that mention or address it; the rest is
 * context) or `always`; when absent, `mentioned` for a group of several
 * people and `always` for a group of one.
 */
export const IdentityGroupSchema = z.object({
  channel: channelName,
  expected_members: z.array(identifier("recipient id")),
  respond: z.enum(["mentioned", "always"], {
    error: (iss) => `${JSON.stringify(iss.input)} is not a respond rule (mentioned, always)`,
  }).optional(),
}).strict();

/** The whole `identities.yaml`. */
export const IdentitiesSchema = z.object({
  identities: z.record(phone, IdentitySchema),
  groups: z.record(signalGroupId, IdentityGroupSchema),
}).strict();

/** A validated `identities.yaml`. */
export type Identities = z.infer<typeof IdentitiesSchema>;
/** One validated identity. */
export type Identity = z.infer<typeof IdentitySchema>;

/**
 * Single-file rules: uuids are unique (case-insensitively), and each
 * recipient has one phone (the mesh resolves a recipient's phone for outbound
 * messages, which must not be ambiguous).
 */
export function identitiesRules(c: Identities): RuleIssue[] {
  const issues: RuleIssue[] = [];
  const uuids = new Map<string, string>();
  const recipients = new Map<string, string>();
  for (const [phoneNumber, identity] of Object.entries(c.identities)) {
    const u = identity.uuid.toLowerCase();
    const prior = uuids.get(u);
    if (prior !== undefined) {
      issues.push({
        path: ["identities", phoneNumber, "uuid"],
        message:
          `uuid ${identity.uuid} is already the uuid of ${prior}: every identity has its own Signal ACI`,
      });
    } else uuids.set(u, phoneNumber);
    const priorPhone = recipients.get(identity.recipient_id);
    if (priorPhone !== undefined) {
      issues.push({
        path: ["identities", phoneNumber, "recipient_id"],
        message: `recipient ${JSON.stringify(identity.recipient_id)} already has the phone ` +
          `${priorPhone}: one phone per recipient, or outbound messages are ambiguous`,
      });
    } else recipients.set(identity.recipient_id, phoneNumber);
  }
  for (const [id, g] of Object.entries(c.groups)) {
    const seen = new Set<string>();
    g.expected_members.forEach((m, i) => {
      if (seen.has(m)) {
        issues.push({
          path: ["groups", id, "expected_members", i],
          message: `${JSON.stringify(m)} is listed twice`,
        });
      }
      seen.add(m);
    });
  }
  return issues;
}
