/**
 * The LLM call budget, shared fairly between channels.
 *
 * At most `calls_per_hour` calls in any rolling hour (policy.yaml
 * `rate_limits.llm`), and no channel can take more than its share while
 * another waits. The rule:
 *
 * - in any rolling hour the budget is divided equally among the **active**
 *   channels: the owner's private DM always counts as active; any other
 *   channel counts once it has called the model in that hour, or asks now;
 * - the owner's DM below its equal share may call as long as any budget is
 *   left;
 * - any other channel below its share may call as long as, after the call,
 *   the budget left still covers the owner's DM's unused share;
 * - a channel at or above its share may call only when, after the call, the
 *   budget left still covers the unused share of every other active channel:
 *   it goes beyond its share only with budget no other channel is owed.
 *
 * So no group ever takes the owner's DM's share, whatever order channels
 * become busy in: with one busy group the owner's DM keeps half the budget
 * (60 of 120 calls an hour), with three active channels a third. When a
 * channel joins after another went beyond the share it had then, what that
 * one took comes out of the newcomer's share, never the owner's. A lone
 * channel may use all of the budget. A refused channel is told "I need a
 * moment" and is paused for `pause_minutes` (its own calls only; the others
 * go on).
 *
 * With joi's state database the calls of the rolling hour and the pauses are
 * kept on disk (tables `llm_calls`, `llm_paused`), each call written as it is
 * taken: a restart of joi, or a crash, neither refills the hour nor lifts a
 * pause.
 *
 * @module
 */
import type { DatabaseSync, StatementSync } from "node:sqlite";
import type { Policy } from "../../common/policy/policy.ts";

/** Figures of policy.yaml `rate_limits.llm` (calls shared by every channel; a refused channel's pause). */
export type LlmBudgetPolicy = Policy["rate_limits"]["llm"];

/** Verdict of {@link LlmCallBudget.take}. */
export interface BudgetVerdict {
  /** Whether the call may go ahead (and was counted). */
  allowed: boolean;
  /** When refused: seconds until this channel may call again. */
  retryAfterSeconds: number;
}

/** Options of {@link LlmCallBudget}. */
export interface LlmCallBudgetOptions {
  /** The owner's private DM: always active, so its share is always kept. */
  ownerChannel?: string | undefined;
  /** Clock (ms). */
  now?: (() => number) | undefined;
  /** joi's state database: the hour's calls and the pauses survive a restart. */
  db?: DatabaseSync | undefined;
}

const HOUR = 3_600_000;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS llm_calls (channel TEXT NOT NULL, at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS llm_calls_at ON llm_calls (at);
CREATE TABLE IF NOT EXISTS llm_paused (channel TEXT PRIMARY KEY, until INTEGER NOT NULL);
`;

/** The budget's rows in joi.db. */
class BudgetRows {
  #call: StatementSync;
  #pause: StatementSync;
  #pruneCalls: StatementSync;
  #prunePauses: StatementSync;
  #calls: StatementSync;
  #pauses: StatementSync;

  constructor(db: DatabaseSync) {
    db.exec(SCHEMA);
    this.#call = db.prepare("INSERT INTO llm_calls (channel, at) VALUES (?, ?)");
    this.#pause = db.prepare(
      "INSERT INTO llm_paused (channel, until) VALUES (?, ?) " +
        "ON CONFLICT (channel) DO UPDATE SET until = excluded.until",
    );
    this.#pruneCalls = db.prepare("DELETE FROM llm_calls WHERE at <= ?");
    this.#prunePauses = db.prepare("DELETE FROM llm_paused WHERE until <= ?");
    this.#calls = db.prepare("SELECT channel, at FROM llm_calls WHERE at > ? ORDER BY at");
    this.#pauses = db.prepare("SELECT channel, until FROM llm_paused WHERE until > ?");
  }

  call(channel: string, at: number): void {
    this.#call.run(channel, at);
  }

  pause(channel: string, until: number): void {
    this.#pause.run(channel, until);
  }

  prune(now: number): void {
    this.#pruneCalls.run(now - HOUR);
    this.#prunePauses.run(now);
  }

  load(
    now: number,
  ): { calls: { channel: string; at: number }[]; pauses: { channel: string; until: number }[] } {
    return {
      calls: this.#calls.all(now - HOUR) as { channel: string; at: number }[],
      pauses: this.#pauses.all(now) as { channel: string; until: number }[],
    };
  }
}
/** The channel of calls that name none (probes, tools). */
const UNNAMED = "(joi)";

/** Rolling-hour call budget with per-channel fair shares. */
export class LlmCallBudget {
  readonly #limit: number;
  readonly #pauseMs: number;
  readonly #owner: string | undefined;
  readonly #now: () => number;
  /** Call times in the rolling hour, per channel. */
  readonly #calls = new Map<string, number[]>();
  readonly #pausedUntil = new Map<string, number>();
  readonly #rows: BudgetRows | null;
  #lastPrune = 0;

  /** Creates the budget from the policy figures. */
  constructor(policy: LlmBudgetPolicy, options: LlmCallBudgetOptions | (() => number) = {}) {
    const o = typeof options === "function" ? { now: options } : options;
    this.#limit = policy.calls_per_hour;
    this.#pauseMs = policy.pause_minutes * 60_000;
    this.#owner = o.ownerChannel;
    this.#now = o.now ?? Date.now;
    this.#rows = o.db ? new BudgetRows(o.db) : null;
    if (this.#rows) {
      const { calls, pauses } = this.#rows.load(this.#now());
      for (const c of calls) {
        const list = this.#calls.get(c.channel) ?? [];
        list.push(c.at);
        this.#calls.set(c.channel, list);
      }
      for (const p of pauses) this.#pausedUntil.set(p.channel, p.until);
    }
  }

  /** Takes one call of `channel`'s share, or refuses (and pauses that channel). */
  take(channel: string = UNNAMED): BudgetVerdict {
    const now = this.#now();
    this.#prune(now);
    const paused = this.#pausedUntil.get(channel) ?? 0;
    if (now < paused) {
      return { allowed: false, retryAfterSeconds: Math.ceil((paused - now) / 1000) };
    }
    if (this.#fits(channel)) {
      const list = this.#calls.get(channel) ?? [];
      list.push(now);
      this.#calls.set(channel, list);
      this.#rows?.call(channel, now);
      return { allowed: true, retryAfterSeconds: 0 };
    }
    this.#pausedUntil.set(channel, now + this.#pauseMs);
    this.#rows?.pause(channel, now + this.#pauseMs);
    return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil(this.#pauseMs / 1000)) };
  }

  /** Whether any channel is paused now. */
  get paused(): boolean {
    const now = this.#now();
    return [...this.#pausedUntil.values()].some((t) => now < t);
  }

  /** Calls per channel in the rolling hour, and each active channel's share (for /health). */
  usage(): { limit: number; share: number; calls: Record<string, number> } {
    this.#prune(this.#now());
    const calls: Record<string, number> = {};
    for (const [c, list] of this.#calls) calls[c] = list.length;
    return { limit: this.#limit, share: this.#share(this.#active()), calls };
  }

  #used(channel: string): number {
    return this.#calls.get(channel)?.length ?? 0;
  }

  #active(asking?: string): Set<string> {
    const active = new Set(this.#calls.keys());
    if (this.#owner !== undefined) active.add(this.#owner);
    if (asking !== undefined) active.add(asking);
    return active;
  }

  #share(active: Set<string>): number {
    return Math.floor(this.#limit / Math.max(1, active.size));
  }

  /** The rule of the module doc. */
  #fits(channel: string): boolean {
    const active = this.#active(channel);
    const share = this.#share(active);
    let total = 0;
    for (const list of this.#calls.values()) total += list.length;
    if (total >= this.#limit) return false;
    if (this.#used(channel) < share) {
      if (channel === this.#owner || this.#owner === undefined) return true;
      return this.#limit - total - 1 >= Math.max(0, share - this.#used(this.#owner));
    }
    let owed = 0;
    for (const c of active) {
      if (c !== channel) owed += Math.max(0, share - this.#used(c));
    }
    return this.#limit - total - 1 >= owed;
  }

  #prune(now: number): void {
    for (const [c, list] of this.#calls) {
      let i = 0;
      while (i < list.length && now - list[i]! >= HOUR) i++;
      if (i === list.length) this.#calls.delete(c);
      else if (i > 0) list.splice(0, i);
    }
    for (const [c, t] of this.#pausedUntil) if (now >= t) this.#pausedUntil.delete(c);
    if (this.#rows && now - this.#lastPrune >= 60_000) {
      this.#rows.prune(now);
      this.#lastPrune = now;
    }
  }
}
