/**
 * The mesh's own settings (`mesh.yaml` in its config directory) and the typed
 * configuration every mesh component takes. Figures that policy files hold
 * (rate limits, tolerances, group monitoring, the household's language) come
 * from those files through the shared policy loader; `mesh.yaml` holds only
 * what is the mesh's alone: the account and the name joi answers to in
 * groups, presence cues, queue size, retry pacing, and voice (whisper.cpp,
 * ffmpeg, piper).
 *
 * @module
 */
import { z } from "zod";
import type { Language } from "../common/local_time.ts";
import type { Groups } from "../common/policy/groups.ts";
import { E164, UUID } from "../common/policy/identities.ts";
import { PolicyError } from "../common/policy/errors.ts";
import { checkYamlText, loadPolicyFile, readYamlText } from "../common/policy/loader.ts";
import type { Policy } from "../common/policy/policy.ts";
import { channelOfGroup, CRITICAL_GROUP } from "../common/policy/household.ts";
import type { Identities } from "../common/policy/identities.ts";
import { locateIn, type RuleIssue } from "../common/policy/source.ts";
import { limitsFromPolicy, type ServerLimits } from "../common/wire/serve.ts";
import type { IdentitiesConfig } from "./identity.ts";

const bin = z.string().regex(/^\//, "must be an absolute path to the executable");

/** whisper.cpp, ffmpeg and piper: voice notes in and out. */
export const voiceSchema = z.object({
  /** Scratch folder for conversions (default `<state-dir>/voice`). */
  temp_dir: z.string().min(1).optional(),
  max_queue: z.number().int().min(1).max(100).default(3),
  max_duration_seconds: z.number().positive().default(120),
  max_bytes: z.number().int().positive().default(10 * 1024 * 1024),
  timeout_seconds: z.number().positive().default(60),
  retention_minutes: z.number().positive().default(5),
  whisper: z.object({
    bin,
    model: z.string().min(1),
    /**
     * The language hint (`-l`). Default from policy.yaml `household.language`:
     * `auto` for en (a Slovak note is still transcribed), `sk` for sk.
     */
    language: z.string().regex(/^[a-z]{2}$|^auto$/).optional(),
  }).strict(),
  ffmpeg: z.object({ bin }).strict(),
  piper: z.object({
    bin,
    /** A piper voice (`.onnx`) per language; a reply is spoken with the voice of its language. */
    voices: z.object({
      en: z.string().min(1).optional(),
      sk: z.string().min(1).optional(),
    }).strict().refine((v) => v.en !== undefined || v.sk !== undefined, {
      error: "give at least one voice (en or sk)",
    }),
    max_text_length: z.number().int().positive().default(1000),
  }).strict().optional(),
}).strict();

const presenceDefaults = {
  typing: true,
  typing_refresh_seconds: 10,
  typing_max_seconds: 180,
  read_receipts: true,
};

/** mesh.yaml. */
export const meshSettingsSchema = z.object({
  /**
   * A message is cut to this many characters before it reaches joi (the
   * sender is told). Default, and ceiling: policy.yaml `content.max_inbound_chars`.
   */
  inbound_max_chars: z.number().int().positive().optional(),
  /** The name joi answers to in a group whose rule is `respond: mentioned`. */
  assistant_name: z.string().trim().min(1).max(40).default("Joi"),
  /**
   * The Signal account the mesh speaks as. Both optional: signal-cli gives the
   * number with every message, and the ACI (what a mention carries) is learnt
   * from `listGroups`; set them when you know them.
   */
  account: z.object({
    number: z.string().regex(E164, "not an E.164 number").optional(),
    uuid: z.string().regex(UUID, "not a UUID (the account's ACI)").optional(),
  }).strict().default({}),
  /** Presence cues (typing, read receipts). */
  presence: z.object({
    typing: z.boolean().default(true),
    /** Signal clients show an indicator for 15 s: refresh before that. */
    typing_refresh_seconds: z.number().positive().max(14).default(10),
    typing_max_seconds: z.number().positive().default(180),
    read_receipts: z.boolean().default(true),
  }).strict().default(presenceDefaults),
  /**
   * The canonical id whose DMs use the owner limits: the owner of
   * recipients.yaml (its first recipient); must be a recipient of identities.yaml.
   */
  owner_recipient: z.string().min(1).default("owner"),
  /**
   * The channel alerts (group drift) go to: the household's critical channel
   * (the channel of recipients.yaml's group `critical`), listed in groups.yaml.
   */
  critical_channel: z.string().min(1).default(channelOfGroup(CRITICAL_GROUP)),
  queue: z.object({
    max_depth: z.number().int().positive().default(1000),
    retry_initial_ms: z.number().int().positive().default(500),
    retry_max_ms: z.number().int().positive().default(30_000),
  }).strict().default({ max_depth: 1000, retry_initial_ms: 500, retry_max_ms: 30_000 }),
  config_sync: z.object({
    /** Also compare hashes with joi this often (0 = only when joi calls). */
    poll_minutes: z.number().min(0).default(10),
  }).strict().default({ poll_minutes: 10 }),
  signal_cli: z.object({
    /** Warn on /health when the installed signal-cli is older than this. */
    version_warn_days: z.number().int().positive().default(75),
    /** Release dates of versions, `"0.14.6": 2026-01-20`, when known. */
    release_dates: z.record(z.string(), z.string().regex(/^\d{4}-\d{2}-\d{2}$/)).default({}),
  }).strict().default({ version_warn_days: 75, release_dates: {} }),
  voice: voiceSchema.optional(),
}).strict();

/** Parsed mesh.yaml. */
export type MeshSettings = z.infer<typeof meshSettingsSchema>;
/** Parsed voice section. */
export type VoiceSettings = z.infer<typeof voiceSchema>;

/**
 * What the permission manifest must grant for `settings.voice` (the exact
 * binaries; `Layout.meshVoice`), or undefined when voice is off. Install
 * renders the mesh's unit with it, so turning voice on in production is
 * editing mesh.yaml and installing again.
 */
export function meshVoiceOf(
  settings: MeshSettings,
): { whisperBin: string; ffmpegBin: string; piperBin?: string } | undefined {
  const v = settings.voice;
  if (!v) return undefined;
  return {
    whisperBin: v.whisper.bin,
    ffmpegBin: v.ffmpeg.bin,
    ...(v.piper ? { piperBin: v.piper.bin } : {}),
  };
}

/**
 * Parses mesh.yaml text through the policy loader's YAML path (same limits,
 * `file:line:col` positions); an empty text gives the defaults. Throws a
 * {@link PolicyError} listing every issue.
 */
export function parseMeshSettings(text: string, filename = "mesh.yaml"): MeshSettings {
  const { config, issues } = checkYamlText(meshSettingsSchema, () => [], text, filename, {});
  if (config === undefined) throw new PolicyError(issues);
  return config;
}

/** Reads and parses `path` (absent: the defaults). Throws a {@link PolicyError}. */
export function loadMeshSettings(path: string): MeshSettings {
  const read = readYamlText(path);
  if (read.text !== undefined) return parseMeshSettings(read.text, path);
  if (read.missing) return parseMeshSettings("", path);
  throw new PolicyError([read.issue]);
}

/** groups.yaml: expected Signal group membership, as validated by the policy schema. */
export type GroupsConfig = Groups;

/** The rate limits the mesh enforces (policy.yaml `rate_limits`). */
export type MeshLimits = Pick<Policy["rate_limits"], "outbound" | "inbound">;

/** Everything a mesh instance is built from (no secrets). */
export interface MeshConfig {
  /** policy.yaml `household` (the language picks whisper's hint and piper's voice). */
  household: { language: Language; timezone: string };
  /** policy.yaml `content.max_inbound_chars`: joi refuses longer texts. */
  maxInboundChars: number;
  /** Identities in force at start (the synced copy, else the config dir's). */
  identities: IdentitiesConfig;
  /** groups.yaml. */
  groups: GroupsConfig;
  /** policy.yaml rate limits. */
  limits: MeshLimits;
  /** policy.yaml `content.max_outbound_chars`. */
  maxOutboundChars: number;
  /** policy.yaml `security`. */
  security: {
    toleranceMs: number;
    nonceRetentionMs: number;
    maxBodyBytes: number;
    /** policy.yaml `server.body_timeout_seconds` in ms. */
    bodyTimeoutMs: number;
    /** policy.yaml `server`: deadlines and connection caps of 8444. */
    server: ServerLimits;
  };
  /** mesh.yaml. */
  settings: MeshSettings;
  /** policy.yaml `nebula_health`: the link watch's checks; `watch.timestamp_refusals`. */
  link: {
    intervalMs: number;
    timeoutMs: number;
    failures: number;
    refusals: { count: number; windowMs: number };
  };
  /** The household's time zone (policy.yaml `household.timezone`), for alert texts. */
  timeZone: string;
}

/**
 * mesh.yaml against the household model and the other files: `owner_recipient`
 * is a recipient of identities.yaml, and `critical_channel` is the
 * household's critical channel, carried by a group of groups.yaml. joi sends
 * alarms to that channel; a mesh alerting elsewhere would split the household.
 */
export function meshHouseholdRules(
  settings: MeshSettings,
  identities: Identities,
  groups: Groups,
): RuleIssue[] {
  const issues: RuleIssue[] = [];
  const recipients = [...new Set(Object.values(identities.identities).map((i) => i.recipient_id))];
  if (!recipients.includes(settings.owner_recipient)) {
    issues.push({
      path: ["owner_recipient"],
      message: `${JSON.stringify(settings.owner_recipient)} is not a recipient of ` +
        `identities.yaml (it has: ${recipients.sort().join(", ") || "none"}); give the ` +
        `owner's id, the first recipient of recipients.yaml`,
    });
  }
  const critical = channelOfGroup(CRITICAL_GROUP);
  if (settings.critical_channel !== critical) {
    issues.push({
      path: ["critical_channel"],
      message: `must be ${JSON.stringify(critical)}, the channel of recipients.yaml's group ` +
        `${JSON.stringify(CRITICAL_GROUP)} where joi sends alarms; got ` +
        JSON.stringify(settings.critical_channel),
    });
  } else if (!Object.hasOwn(groups.groups, critical)) {
    issues.push({
      path: ["critical_channel"],
      message: `${JSON.stringify(critical)} is not a group of groups.yaml: add the ` +
        `critical group there (and in identities.yaml) so alarms and drift alerts reach it`,
    });
  }
  return issues;
}

/** Reads every configuration file the mesh needs from `dir`. */
export function loadMeshConfig(dir: string): MeshConfig {
  const identities = loadPolicyFile("identities", `${dir}/identities.yaml`);
  const groups = loadPolicyFile("groups", `${dir}/groups.yaml`);
  const policy = loadPolicyFile("policy", `${dir}/policy.yaml`);
  const settings = loadMeshSettings(`${dir}/mesh.yaml`);
  const household = meshHouseholdRules(settings, identities, groups);
  if (household.length > 0) {
    throw new PolicyError(household.map((i) => locateIn(settings, `${dir}/mesh.yaml`, i)));
  }
  return {
    household: policy.household,
    maxInboundChars: policy.content.max_inbound_chars,
    identities,
    groups,
    limits: {
      outbound: policy.rate_limits.outbound,
      inbound: policy.rate_limits.inbound,
    },
    maxOutboundChars: policy.content.max_outbound_chars,
    security: {
      toleranceMs: policy.security.timestamp_tolerance_minutes * 60_000,
      nonceRetentionMs: policy.security.nonce_retention_minutes * 60_000,
      maxBodyBytes: policy.security.max_body_bytes,
      bodyTimeoutMs: policy.server.body_timeout_seconds * 1000,
      server: limitsFromPolicy(policy.server),
    },
    settings,
    link: {
      intervalMs: policy.nebula_health.check_interval_seconds * 1000,
      timeoutMs: policy.nebula_health.lighthouse_ping_timeout_ms,
      failures: policy.nebula_health.alert_after_failures,
      refusals: {
        count: policy.watch.timestamp_refusals.count,
        windowMs: policy.watch.timestamp_refusals.window_minutes * 60_000,
      },
    },
    timeZone: policy.household.timezone,
  };
}
