/**
 * Config sync by hash: joi is authoritative for identities.
 *
 * Every signed request from joi carries `X-Config-Hash` (signed). When it
 * differs from the hash in force, the mesh fetches `GET /config/identities`
 * (signed request, and an answer the client verified: signed by joi under the
 * mesh->joi response key and bound to this very request), validates it with
 * the same schema as identities.yaml, checks that the configuration hashes to
 * the hash joi announced, and swaps it in atomically (and persists it, so a
 * restart does not bring a revoked recipient back). An answer that fails
 * verification (forged, altered, unsigned) and a malformed configuration are
 * refused as security events and the identities in force kept: the mesh
 * never applies identities it could not verify. Concurrent triggers share
 * one fetch.
 *
 * @module
 */
import type { Logger } from "../common/log.ts";
import { type IdentitiesConfig, type IdentityStore, IdentityView } from "./identity.ts";
import type { JoiClient } from "./joi_client.ts";
import { WireClientError } from "../common/wire/client.ts";

/** Validates an identities config (the policy schema); throws naming the problem. */
export type ValidateIdentities = (config: unknown) => IdentitiesConfig;
/** The canonical hash of a validated identities config. */
export type HashIdentities = (config: IdentitiesConfig) => string;

/** Options of {@link ConfigSync}. */
export interface ConfigSyncOptions {
  client: JoiClient;
  identities: IdentityStore;
  validate: ValidateIdentities;
  hash: HashIdentities;
  log: Logger;
  /** Where the synced copy is persisted (0600), or undefined. */
  persistPath?: string;
  now?: () => number;
}

/** Outcome of one sync. */
export type SyncResult = "unchanged" | "synced" | "refused" | "unreachable";

/** Keeps the mesh's identities equal to joi's. */
export class ConfigSync {
  readonly #o: ConfigSyncOptions;
  #inflight: Promise<SyncResult> | null = null;

  constructor(options: ConfigSyncOptions) {
    this.#o = options;
  }

  /** Syncs when `announced` differs from the hash in force. */
  async ensure(announced: string | null | undefined, reason: string): Promise<SyncResult> {
    if (!announced || announced === this.#o.identities.current.hash) return "unchanged";
    return await this.sync(reason);
  }

  /** Fetches joi's identities and applies them (single flight). */
  sync(reason: string): Promise<SyncResult> {
    if (!this.#inflight) {
      this.#inflight = this.#sync(reason).finally(() => (this.#inflight = null));
    }
    return this.#inflight;
  }

  async #sync(reason: string): Promise<SyncResult> {
    const { log, identities } = this.#o;
    const now = this.#o.now ?? Date.now;
    let data: unknown;
    try {
      const r = await this.#o.client.request("GET", "/config/identities");
      if (r.envelope.status !== "ok") {
        log.warn("config_sync_refused_by_joi", { status: r.status, code: r.envelope.error.code });
        identities.noteSync(now(), "unreachable");
        return "unreachable";
      }
      data = r.envelope.data;
    } catch (e) {
      if (e instanceof WireClientError && e.kind === "unverified") {
        // a forged or altered answer: never applied, the identities in force stay
        log.security("config_sync_unverified", {
          reason,
          error: e.message.slice(0, 500),
          kept_hash: identities.current.hash,
        });
        identities.noteSync(now(), "refused");
        return "refused";
      }
      log.warn("config_sync_unreachable", { reason, error: (e as Error).message });
      identities.noteSync(now(), "unreachable");
      return "unreachable";
    }
    const d = (data ?? {}) as { hash?: unknown; config?: unknown };
    let config: IdentitiesConfig;
    try {
      config = this.#o.validate(d.config);
    } catch (e) {
      log.security("config_sync_invalid", {
        reason,
        error: (e as Error).message.slice(0, 500),
        kept_hash: identities.current.hash,
      });
      identities.noteSync(now(), "refused");
      return "refused";
    }
    const computed = this.#o.hash(config);
    if (typeof d.hash !== "string" || d.hash !== computed) {
      log.security("config_sync_hash_mismatch", {
        announced: typeof d.hash === "string" ? d.hash : null,
        computed,
        kept_hash: identities.current.hash,
      });
      identities.noteSync(now(), "refused");
      return "refused";
    }
    const old = identities.current;
    if (computed === old.hash) {
      identities.noteSync(now(), "unchanged");
      return "unchanged";
    }
    const view = new IdentityView(config, computed);
    if (this.#o.persistPath) {
      try {
        await persist(this.#o.persistPath, { hash: computed, config });
      } catch (e) {
        log.error("config_sync_persist_failed", { error: (e as Error).message });
      }
    }
    identities.swap(view, now(), "synced");
    const before = new Set(Object.values(old.config.identities).map((i) => i.recipient_id));
    const after = new Set(Object.values(config.identities).map((i) => i.recipient_id));
    log.security("config_synced", {
      reason,
      old_hash: old.hash,
      new_hash: computed,
      removed: [...before].filter((r) => !after.has(r)),
      added: [...after].filter((r) => !before.has(r)),
    });
    return "synced";
  }
}

/** Writes the synced config atomically (temp file + rename), mode 0600. */
export async function persist(path: string, value: unknown): Promise<void> {
  const tmp = `${path}.${crypto.randomUUID()}.tmp`;
  await Deno.writeTextFile(tmp, JSON.stringify(value), { mode: 0o600 });
  await Deno.rename(tmp, path);
}

/** Reads a persisted synced config, or null when absent or invalid. */
export async function loadPersisted(
  path: string,
  validate: ValidateIdentities,
  hash: HashIdentities,
  log: Logger,
): Promise<IdentityView | null> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch {
    return null;
  }
  try {
    const raw = JSON.parse(text) as { hash?: unknown; config?: unknown };
    const config = validate(raw.config);
    const h = hash(config);
    if (h !== raw.hash) throw new Error("hash does not match the stored configuration");
    return new IdentityView(config, h);
  } catch (e) {
    log.warn("synced_identities_ignored", { path, error: (e as Error).message });
    return null;
  }
}
