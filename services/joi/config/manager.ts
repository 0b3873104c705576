/**
 * The config manager: joi's channel, identity and policy configuration held
 * as one immutable snapshot, replaced atomically.
 *
 * A reload (SIGHUP, `joi-revoke-recipient`) parses and validates every policy
 * file, checks that every channel user of `channel_users.yaml` exists on the
 * system, and only then swaps the snapshot. A broken file is refused: the old
 * snapshot stays in force, the error is logged and an alert raised. Readers
 * take the snapshot once per message ({@link ConfigManager.current}) and use
 * it throughout, so a message is never handled half under the old and half
 * under the new configuration (the TOCTOU protection of the architecture
 * document: JavaScript's single thread makes the reference swap atomic).
 *
 * Missing channel users are a hard error in production. In the local run
 * (`requireSystemUsers: false`) they are a logged warning, reported on /health.
 *
 * @module
 */
import type { Logger } from "../../common/log.ts";
import type { Policies } from "../../common/policy/files.ts";
import { systemUsers } from "./passwd.ts";

/** One immutable configuration snapshot. */
export interface ConfigSnapshot {
  /** Every validated policy. */
  readonly policies: Policies;
  /** sha256 of the canonical identities config (`X-Config-Hash`). */
  readonly identitiesHash: string;
  /** Canonical sender id -> its registered transport id (phone). */
  readonly bindings: ReadonlyMap<string, string>;
  /** When it was loaded (Unix ms). */
  readonly loadedAt: number;
  /** 1 for the first load, +1 per successful reload. */
  readonly generation: number;
  /** Channel users absent from the system (only when they are not required). */
  readonly missingUsers: readonly string[];
}

/** Options of {@link ConfigManager.create}. */
export interface ConfigManagerOptions {
  /** Loads and validates every policy (`loadPolicies(dir)`); throws on any problem. */
  load: () => Policies | Promise<Policies>;
  /**
   * Policies already loaded and validated by the caller (joi's main), used
   * for the first snapshot instead of loading the files a second time.
   */
  initial?: Policies | undefined;
  /** The identities hash (`identitiesHash` of the policy module). */
  hash: (identities: Policies["identities"]) => string;
  /** Whether every channel user must exist (production: true). */
  requireSystemUsers: boolean;
  /** passwd file (default `/etc/passwd`). */
  passwdPath?: string | undefined;
  /** Logger. */
  log: Logger;
  /** Clock. */
  now?: (() => number) | undefined;
}

/** Result of {@link ConfigManager.reload}. */
export type ReloadResult =
  | { ok: true; generation: number }
  | { ok: false; error: string };

/** A refused configuration. */
export class ConfigError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/** Holds the current configuration snapshot and reloads it atomically. */
export class ConfigManager {
  #snap: ConfigSnapshot;
  #opts: ConfigManagerOptions;
  #reloading: Promise<ReloadResult> | undefined;
  #lastError: string | undefined;
  #onAlert: ((message: string) => void)[] = [];

  private constructor(snap: ConfigSnapshot, opts: ConfigManagerOptions) {
    this.#snap = snap;
    this.#opts = opts;
  }

  /** Loads the first snapshot; throws {@link ConfigError} when it is not valid (joi does not start). */
  static async create(opts: ConfigManagerOptions): Promise<ConfigManager> {
    const snap = await build(opts, 1);
    return new ConfigManager(snap, opts);
  }

  /** Calls `listener` with an alert for the owner (a refused reload). */
  onAlert(listener: (message: string) => void): void {
    this.#onAlert.push(listener);
  }

  /** The snapshot in force. Take it once per message. */
  current(): ConfigSnapshot {
    return this.#snap;
  }

  /** The channel user of `channel`, or undefined (default deny). */
  channelUser(channel: string): string | undefined {
    const users = this.#snap.policies.channelUsers.allowed_channel_users;
    return Object.hasOwn(users, channel) ? users[channel] : undefined;
  }

  /** State for /health. */
  status(): {
    generation: number;
    loaded_at: string;
    system_users_required: boolean;
    missing_channel_users: readonly string[];
    last_reload_error?: string;
  } {
    return {
      generation: this.#snap.generation,
      loaded_at: new Date(this.#snap.loadedAt).toISOString(),
      system_users_required: this.#opts.requireSystemUsers,
      missing_channel_users: this.#snap.missingUsers,
      ...(this.#lastError ? { last_reload_error: this.#lastError } : {}),
    };
  }

  /**
   * Re-reads and validates everything, then swaps. Never throws: a refused
   * reload keeps the old snapshot, logs and alerts. Concurrent calls share one reload.
   */
  reload(): Promise<ReloadResult> {
    if (this.#reloading) return this.#reloading;
    this.#reloading = this.#reload().finally(() => (this.#reloading = undefined));
    return this.#reloading;
  }

  async #reload(): Promise<ReloadResult> {
    const log = this.#opts.log;
    try {
      const snap = await build(this.#opts, this.#snap.generation + 1);
      this.#snap = snap;
      this.#lastError = undefined;
      log.info("config_reloaded", {
        generation: snap.generation,
        channels: Object.keys(snap.policies.channelUsers.allowed_channel_users).length,
        identities_hash: snap.identitiesHash,
      });
      return { ok: true, generation: snap.generation };
    } catch (e) {
      const error = (e as Error).message;
      this.#lastError = error;
      log.error("config_reload_refused", { error, kept_generation: this.#snap.generation });
      const alert =
        "Configuration reload refused; the previous configuration stays in force. See joi's log.";
      for (const listener of this.#onAlert) listener(alert);
      return { ok: false, error };
    }
  }

  /** Reloads on every SIGHUP; returns a function removing the listener. */
  listenSighup(): () => void {
    const handler = () => void this.reload();
    Deno.addSignalListener("SIGHUP", handler);
    return () => Deno.removeSignalListener("SIGHUP", handler);
  }
}

async function build(opts: ConfigManagerOptions, generation: number): Promise<ConfigSnapshot> {
  let policies: Policies;
  try {
    policies = generation === 1 && opts.initial ? opts.initial : await opts.load();
  } catch (e) {
    throw new ConfigError(`configuration invalid: ${(e as Error).message}`);
  }
  const users = Object.values(policies.channelUsers.allowed_channel_users);
  let present: Set<string>;
  const passwd = opts.passwdPath ?? "/etc/passwd";
  try {
    present = await systemUsers(passwd);
  } catch (e) {
    if (opts.requireSystemUsers) {
      throw new ConfigError(`cannot read ${passwd}: ${(e as Error).message}`);
    }
    present = new Set();
  }
  const missing = [...new Set(users.filter((u) => !present.has(u)))].sort();
  if (missing.length > 0) {
    if (opts.requireSystemUsers) {
      throw new ConfigError(
        `channel_users.yaml names user(s) that do not exist on this system: ${
          missing.join(", ")
        }; ` +
          `create them with \`deno task provision\` or fix the file`,
      );
    }
    opts.log.warn("channel_users_missing", {
      users: missing,
      note:
        "local run: channel users are not required; knowledge retrieval as these users will fail",
    });
  }
  // one number per recipient: identities.yaml's rules refuse a second at load
  const bindings = new Map<string, string>();
  for (const [phone, identity] of Object.entries(policies.identities.identities)) {
    bindings.set(identity.recipient_id, phone);
  }
  return Object.freeze({
    policies,
    identitiesHash: opts.hash(policies.identities),
    bindings,
    loadedAt: (opts.now ?? Date.now)(),
    generation,
    missingUsers: Object.freeze(missing),
  });
}
