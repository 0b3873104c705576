/**
 * Signal group membership monitoring (informational: the sender whitelist is
 * what keeps strangers out). Every `check_interval_hours` (groups.yaml) the
 * mesh compares `listGroups` with the expected members; a member added or
 * removed raises ONE alert to the critical channel and a security event.
 * The drift last alerted is persisted per group, so the same drift is not
 * alerted again at every check (nor after a restart); a new drift is, and a
 * group back to normal clears it.
 *
 * signal-cli lists joi's own account among each group's members: it is not a
 * drift. It is recognised by its number (mesh.yaml `account.number`, or the
 * account signal-cli names in every `receive`), and its ACI is learnt there,
 * for matching mentions that carry only the uuid.
 *
 * @module
 */
import type { Logger } from "../common/log.ts";
import type { GroupsConfig } from "./config.ts";
import type { SelfAccount } from "./addressing.ts";
import { addressHash, type IdentityStore } from "./identity.ts";
import type { MeshStore } from "./queue.ts";
import { sendMessage } from "./signal/send.ts";
import type { SignalTransport } from "./signal/transport.ts";

/** The drift of one group. */
export interface Drift {
  channel: string;
  added: string[];
  removed: string[];
}

/** Options of {@link GroupMonitor}. */
export interface GroupMonitorOptions {
  groups: GroupsConfig;
  identities: IdentityStore;
  transport: SignalTransport;
  store: MeshStore;
  log: Logger;
  /** Channel of the alert (mesh.yaml critical_channel). */
  criticalChannel: string;
  /** joi's own account (its number known or not yet; its uuid learnt here). */
  self?: SelfAccount | undefined;
}

interface ListedGroup {
  id?: unknown;
  members?: { number?: unknown; uuid?: unknown }[];
}

/** Periodic group membership check. */
export class GroupMonitor {
  readonly #o: GroupMonitorOptions;
  #timer: ReturnType<typeof setInterval> | undefined;
  #running: Promise<Drift[]> | null = null;
  /** When the last check completed (ms), for health. */
  lastCheck: number | null = null;

  constructor(options: GroupMonitorOptions) {
    this.#o = options;
  }

  /** Checks now, then every `check_interval_hours`. */
  start(): void {
    this.stop();
    const ms = this.#o.groups.check_interval_hours * 3600_000;
    this.#timer = setInterval(() => void this.check().catch(() => {}), ms);
  }

  /** Stops the periodic check. */
  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** One check (single flight); returns the drifts that raised an alert. */
  check(): Promise<Drift[]> {
    if (!this.#running) this.#running = this.#check().finally(() => (this.#running = null));
    return this.#running;
  }

  async #check(): Promise<Drift[]> {
    const { log, identities, store } = this.#o;
    let listed: ListedGroup[];
    try {
      const r = await this.#o.transport.request<unknown>("listGroups");
      listed = Array.isArray(r) ? r as ListedGroup[] : [];
    } catch (e) {
      log.warn("group_check_failed", { error: (e as Error).message });
      return [];
    }
    const view = identities.current;
    const alerted: Drift[] = [];
    const self = this.#o.self;
    if (self) learnSelf(listed, self, log);
    for (const [channel, g] of Object.entries(this.#o.groups.groups)) {
      if (g.alert_on_change === false) continue;
      const found = listed.find((l) => l.id === g.signal_group_id);
      const current = new Set<string>();
      for (const m of found?.members ?? []) {
        const number = typeof m.number === "string" ? m.number : null;
        const uuid = typeof m.uuid === "string" ? m.uuid : null;
        if (self && number !== null && number === self.number) continue;
        if (self && uuid !== null && uuid.toLowerCase() === self.uuid) continue;
        const id = view.memberId(number, uuid) ??
          `unknown ${number ?? uuid ?? "member"}`;
        current.add(id);
      }
      const expected = new Set(g.expected_members);
      const added = [...current].filter((m) => !expected.has(m)).sort();
      const removed = [...expected].filter((m) => !current.has(m)).sort();
      const key = `group_drift:${channel}`;
      const signature = JSON.stringify({ added, removed });
      if (added.length === 0 && removed.length === 0) {
        if (store.get(key) !== null) store.set(key, "null");
        continue;
      }
      if (store.get(key) === signature) continue; // already alerted
      const drift = { channel, added, removed };
      log.security("group_membership_changed", {
        channel,
        group_hash: addressHash(g.signal_group_id),
        added: added.map((a) => a.startsWith("unknown ") ? "unknown" : a),
        added_hashes: added.filter((a) => a.startsWith("unknown ")).map((a) =>
          addressHash(a.slice(8))
        ),
        removed,
        missing_group: found === undefined,
      });
      if (await this.#alert(drift, found === undefined)) {
        store.set(key, signature);
        alerted.push(drift);
      }
    }
    this.lastCheck = Date.now();
    return alerted;
  }

  async #alert(d: Drift, missing: boolean): Promise<boolean> {
    const view = this.#o.identities.current;
    const groupId = view.groupIdOf(this.#o.criticalChannel) ??
      this.#o.groups.groups[this.#o.criticalChannel]?.signal_group_id;
    if (!groupId) {
      this.#o.log.error("group_alert_no_critical_group", { channel: this.#o.criticalChannel });
      return false;
    }
    const parts = [`Signal group "${d.channel}" membership changed.`];
    if (missing) parts.push("The mesh no longer sees this group.");
    if (d.added.length) parts.push(`Added: ${d.added.join(", ")}.`);
    if (d.removed.length) parts.push(`Removed: ${d.removed.join(", ")}.`);
    parts.push("Unknown senders stay blocked; check who changed the group.");
    try {
      const r = await sendMessage({
        transport: this.#o.transport,
        log: this.#o.log,
        target: { kind: "group", channel: this.#o.criticalChannel, groupId },
        text: parts.join(" "),
        purpose: "group_drift_alert",
      });
      return r.outcome !== "failed";
    } catch {
      return false;
    }
  }
}

/** Learns joi's ACI from its entry among any listed group's members (found by its number). */
function learnSelf(listed: ListedGroup[], self: SelfAccount, log: Logger): void {
  if (self.uuid !== null || self.number === null) return;
  for (const g of listed) {
    for (const m of g.members ?? []) {
      if (m.number === self.number && typeof m.uuid === "string") {
        self.uuid = m.uuid.toLowerCase();
        log.info("account_aci_learnt", { from: "listGroups" });
        return;
      }
    }
  }
}
