/**
 * The mesh's own alerts: what the household must hear when joi cannot speak
 * (joi unreachable, joi's requests refused). They are all about safety, so
 * they ignore quiet hours; each is decided once per episode by the
 * {@link AlertGate} and committed to `mesh.db` before the first try, then
 * sent through signal-cli to the owner's DM and the critical group, and
 * retried (at each link check and each signal-cli reconnect) until sent: a
 * restart loses none.
 *
 * @module
 */
import type { DatabaseSync, StatementSync } from "node:sqlite";
import type { Logger } from "../../common/log.ts";
import { AlertGate } from "../../common/watch/alert_gate.ts";
import type { WatchLedger } from "../../common/watch/ledger.ts";
import type { IdentityStore } from "../identity.ts";
import { sendMessage } from "../signal/send.ts";
import type { SignalTransport } from "../signal/transport.ts";

/** Who is told. */
export type MeshAudience = "owner" | "critical" | "both";

/** One alert of the mesh. */
export interface MeshAlert {
  watch: string;
  episode: string;
  phase: string;
  to: MeshAudience;
  text: string;
}

/** Options of {@link MeshAlerts}. */
export interface MeshAlertsOptions {
  ledger: WatchLedger;
  identities: IdentityStore;
  transport: SignalTransport;
  /** mesh.yaml `owner_recipient`. */
  owner: string;
  /** mesh.yaml `critical_channel`. */
  criticalChannel: string;
  log: Logger;
  now: () => number;
}

const SCHEMA = `CREATE TABLE IF NOT EXISTS watch_outbox (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  target TEXT NOT NULL CHECK (target IN ('owner', 'critical')),
  text TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  last_error TEXT,
  sent_at INTEGER
)`;

/** The mesh's durable alert sender. */
export class MeshAlerts {
  readonly #o: MeshAlertsOptions;
  readonly #gate: AlertGate;
  readonly #db: DatabaseSync;
  readonly #insert: StatementSync;
  readonly #unsent: StatementSync;
  readonly #sent: StatementSync;
  readonly #failed: StatementSync;
  #pumping: Promise<number> | null = null;

  /** Creates the table in the ledger's database. */
  constructor(o: MeshAlertsOptions) {
    this.#o = o;
    this.#db = o.ledger.db;
    this.#db.exec(SCHEMA);
    // every mesh alert is about safety: no quiet hours, no cap
    this.#gate = new AlertGate({ ledger: o.ledger, perHour: () => Infinity });
    this.#insert = this.#db.prepare(
      "INSERT INTO watch_outbox (target, text, created_at) VALUES (?, ?, ?)",
    );
    this.#unsent = this.#db.prepare(
      "SELECT id, target, text, attempts FROM watch_outbox WHERE sent_at IS NULL ORDER BY id",
    );
    this.#sent = this.#db.prepare("UPDATE watch_outbox SET sent_at = ? WHERE id = ?");
    this.#failed = this.#db.prepare(
      "UPDATE watch_outbox SET attempts = attempts + 1, last_error = ? WHERE id = ?",
    );
  }

  /** Decides and commits `a`, then tries to send it. False when it was told before. */
  raise(a: MeshAlert): boolean {
    const now = this.#o.now();
    const targets = a.to === "both" ? ["owner", "critical"] : [a.to];
    const queued = this.#o.ledger.atomically(() => {
      const v = this.#gate.decide({ ...a, safety: true }, now);
      if (!v.send) return false;
      for (const t of targets) this.#insert.run(t, a.text, now);
      return true;
    });
    if (queued) {
      this.#o.log.warn("watch_alert", { watch: a.watch, episode: a.episode, phase: a.phase });
      void this.pump();
    }
    return queued;
  }

  /** Alerts committed but not yet sent. */
  pending(): number {
    return this.#unsent.all().length;
  }

  /** Tries every unsent alert once (single flight); resolves to the number sent. */
  pump(): Promise<number> {
    this.#pumping ??= this.#pump().finally(() => (this.#pumping = null));
    return this.#pumping;
  }

  async #pump(): Promise<number> {
    const o = this.#o;
    let sent = 0;
    const rows = this.#unsent.all() as { id: number; target: string; text: string }[];
    for (const row of rows) {
      const view = o.identities.current;
      const target = row.target === "owner"
        ? view.target(o.owner, "direct")
        : view.target(o.criticalChannel, "group");
      if (!target) {
        this.#failed.run(`no ${row.target} in identities.yaml`, row.id);
        o.log.error("watch_alert_no_target", { target: row.target });
        continue;
      }
      let ok = false;
      let error = "";
      try {
        const r = await sendMessage({
          transport: o.transport,
          log: o.log,
          target,
          text: row.text,
          purpose: "watch_alert",
        });
        ok = r.outcome !== "failed";
        if (!ok) error = `signal-cli: ${r.errorCode ?? "failed"}`;
      } catch (e) {
        error = (e as Error).message.slice(0, 200);
      }
      if (ok) {
        this.#sent.run(o.now(), row.id);
        sent++;
      } else {
        this.#failed.run(error, row.id);
        o.log.warn("watch_alert_retry", { target: row.target, error });
      }
    }
    return sent;
  }
}
