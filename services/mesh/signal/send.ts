/**
 * One `send` through signal-cli, with every per-recipient result read.
 *
 * signal-cli answers a partly failed send with success and a `results` list;
 * only when nothing was delivered does the call fail (`-4` untrusted
 * identity, `-5` rate limited with `error.data.response.results`, `-1`, `-3`).
 * {@link sendMessage} folds both into one {@link SendReport}, raises a
 * security event for identity failures, audits every send with the
 * recipient hashed (never the text), and retries rate-limited recipients
 * after `retryAfterSeconds` (in the background, a bounded number of times).
 *
 * A text over Signal's body limit goes out as signal-cli itself sends one:
 * the first 2,000 bytes as the body and the whole text as a
 * `text/x-signal-plain` attachment ({@link splitForSignal}); nothing is cut.
 *
 * @module
 */
import type { Logger } from "../../common/log.ts";
import { addressHash, type SendTarget } from "../identity.ts";
import { prefixByBytes, SIGNAL_BODY_BYTES, splitForSignal } from "../long_text.ts";
import { RpcError, type SignalTransport } from "./transport.ts";

/** Result of one recipient. */
export interface RecipientResult {
  /** sha256 of the recipient's number (or uuid when the number is hidden). */
  recipient_hash: string;
  /** SUCCESS, NETWORK_FAILURE, UNREGISTERED_FAILURE, IDENTITY_FAILURE, ... */
  type: string;
  /** For RATE_LIMIT_FAILURE. */
  retry_after_seconds?: number;
}

/** What happened to one send. */
export interface SendReport {
  /** `ok`: every recipient succeeded; `partial`: some did; `failed`: none did. */
  outcome: "ok" | "partial" | "failed";
  /** signal-cli's timestamp of the sent message, when any was sent. */
  signalTimestamp: number | null;
  /** Per-recipient results. */
  results: RecipientResult[];
  /** Largest retryAfterSeconds among rate-limited recipients, if any. */
  retryAfterSeconds: number | null;
  /** True when a rate-limited send was scheduled for retry. */
  retryScheduled: boolean;
  /** JSON-RPC error code when the call failed. */
  errorCode: number | null;
}

/** Options of {@link sendMessage}. */
export interface SendOptions {
  transport: SignalTransport;
  log: Logger;
  target: SendTarget;
  text: string;
  /** `data:` URIs (voice notes). */
  attachments?: string[] | undefined;
  /** Mark audio attachments as voice notes (shown inline, played like a phone's). */
  voiceNote?: boolean | undefined;
  /** The message this one answers (`quoteTimestamp` + `quoteAuthor`). */
  quote?: { timestamp: number; author: string } | undefined;
  /** Why: `reply`, `alert`, `rate_notice`, ... (audit). */
  purpose: string;
  /** Retries left for rate-limited sends (default 2). */
  retries?: number | undefined;
  /** Waits before a retry; injectable for tests. */
  sleep?: ((ms: number) => Promise<void>) | undefined;
  /** Called with the report of a background retry. */
  onRetry?: ((report: SendReport) => void) | undefined;
}

const defaultSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function readResults(raw: unknown): RecipientResult[] {
  const list = (raw as { results?: unknown })?.results;
  if (!Array.isArray(list)) return [];
  return list.map((r) => {
    const o = (r ?? {}) as Record<string, unknown>;
    const addr = (o.recipientAddress ?? {}) as Record<string, unknown>;
    const who = typeof addr.number === "string"
      ? addr.number
      : typeof addr.uuid === "string"
      ? addr.uuid
      : "unknown";
    const out: RecipientResult = {
      recipient_hash: addressHash(who),
      type: typeof o.type === "string" ? o.type : "UNKNOWN",
    };
    if (typeof o.retryAfterSeconds === "number") out.retry_after_seconds = o.retryAfterSeconds;
    return out;
  });
}

function params(o: SendOptions) {
  const { target } = o;
  const split = splitForSignal(o.text);
  const p: Record<string, unknown> = target.kind === "group"
    ? { groupId: target.groupId }
    : { recipient: [target.number] };
  if (split.body !== "") p.message = split.body;
  const attachments = [...(split.attachment ? [split.attachment] : []), ...(o.attachments ?? [])];
  if (attachments.length) p.attachment = attachments;
  if (o.voiceNote) p.voiceNote = true;
  if (o.quote) {
    p.quoteTimestamp = o.quote.timestamp;
    p.quoteAuthor = o.quote.author;
  }
  return p;
}

/** Sends once and reports; schedules retries of rate-limited sends. */
export async function sendMessage(o: SendOptions): Promise<SendReport> {
  const report = await sendOnce(o);
  const retries = o.retries ?? 2;
  if (report.retryAfterSeconds !== null && retries > 0) {
    // Retrying a group send would resend to members who got it: only when nobody did.
    const nobodyGot = !report.results.some((r) => r.type === "SUCCESS");
    if (o.target.kind === "direct" || nobodyGot) {
      report.retryScheduled = true;
      const sleep = o.sleep ?? defaultSleep;
      const wait = Math.max(1, report.retryAfterSeconds) * 1000;
      o.log.warn("send_retry_scheduled", {
        channel: o.target.channel,
        purpose: o.purpose,
        retry_after_seconds: report.retryAfterSeconds,
      });
      (async () => {
        await sleep(wait);
        const next = await sendMessage({ ...o, retries: retries - 1 });
        o.onRetry?.(next);
      })().catch((e) => o.log.error("send_retry_failed", { error: String(e) }));
    }
  }
  return report;
}

async function sendOnce(o: SendOptions): Promise<SendReport> {
  const { log, target } = o;
  let results: RecipientResult[] = [];
  let signalTimestamp: number | null = null;
  let errorCode: number | null = null;
  try {
    const r = await o.transport.request<{ timestamp?: number }>(
      "send",
      params(o),
    );
    results = readResults(r);
    signalTimestamp = typeof r?.timestamp === "number" ? r.timestamp : null;
  } catch (e) {
    if (e instanceof RpcError) {
      errorCode = e.code;
      const data = (e.data ?? {}) as { response?: unknown };
      results = readResults(data.response);
      if (e.code === -5 && !results.some((r) => r.retry_after_seconds !== undefined)) {
        log.warn("send_rate_limited_without_retry_after", { channel: target.channel });
      }
      if (e.code === -4 && !results.some((r) => r.type === "IDENTITY_FAILURE")) {
        results.push({ recipient_hash: targetHash(target), type: "IDENTITY_FAILURE" });
      }
    } else {
      errorCode = -3;
      log.error("send_transport_unavailable", {
        channel: target.channel,
        purpose: o.purpose,
        error: (e as Error).message,
      });
      throw e;
    }
  }
  const ok = results.filter((r) => r.type === "SUCCESS").length;
  const outcome: SendReport["outcome"] = errorCode === null && ok === results.length
    ? "ok"
    : ok > 0
    ? "partial"
    : "failed";
  const retryAfter = results
    .map((r) => r.retry_after_seconds)
    .filter((s): s is number => typeof s === "number");
  for (const r of results) {
    if (r.type === "IDENTITY_FAILURE") {
      log.security("untrusted_identity", {
        channel: target.channel,
        recipient_hash: r.recipient_hash,
        action: "message not delivered; verify the safety number on the owner's phone",
      });
    }
  }
  log.info("send_audit", {
    purpose: o.purpose,
    channel: target.channel,
    target: target.kind,
    recipient_hash: targetHash(target),
    chars: o.text.length,
    attachments: o.attachments?.length ?? 0,
    long_text: prefixByBytes(o.text, SIGNAL_BODY_BYTES).length < o.text.length,
    quoted: o.quote !== undefined,
    outcome,
    error_code: errorCode,
    failures: results.filter((r) => r.type !== "SUCCESS").map((r) => r.type),
  });
  return {
    outcome,
    signalTimestamp,
    results,
    retryAfterSeconds: retryAfter.length ? Math.max(...retryAfter) : null,
    retryScheduled: false,
    errorCode,
  };
}

/** The hash that stands for a target in logs. */
export function targetHash(target: SendTarget): string {
  return addressHash(target.kind === "group" ? target.groupId : target.number);
}
