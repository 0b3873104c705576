/**
 * A bench for joi's watches with an injected clock: joi's real outbox over a
 * real SQLite database, a transport that records what reaches the mesh, the
 * shipped policies (editable), and {@link WatchAlerts}. Each watch test builds
 * the watch it needs on top.
 */
import type { DatabaseSync } from "node:sqlite";
import { openDb } from "../../../../services/common/db.ts";
import { createLogger, memorySink } from "../../../../services/common/log.ts";
import {
  householdRoles,
  loadPolicies,
  type Policies,
} from "../../../../services/common/policy/mod.ts";
import type { Policy } from "../../../../services/common/policy/policy.ts";
import { WatchLedger } from "../../../../services/common/watch/ledger.ts";
import type { MeshOutboundBody } from "../../../../services/joi/outbox/message.ts";
import { Outbox } from "../../../../services/joi/outbox/outbox.ts";
import { WatchAlerts } from "../../../../services/joi/watch/alerts.ts";
import { LocalTime } from "../../../../services/common/local_time.ts";

/** Wednesday 4 March 2026, 12:00 UTC (outside quiet hours). */
export const NOON = Date.UTC(2026, 2, 4, 12, 0, 0);

/** The bench. */
export interface Bench {
  db: DatabaseSync;
  ledger: WatchLedger;
  policies: Policies;
  policy: Policy;
  clock: { now: number };
  now: () => number;
  outbox: Outbox;
  alerts: WatchAlerts;
  /** What reached the mesh, in order. */
  sent: MeshOutboundBody[];
  /** Mesh up or down. */
  mesh: { up: boolean };
  log: ReturnType<typeof createLogger>;
  logs: ReturnType<typeof memorySink>["lines"];
  /** Drains the outbox at the current clock. */
  flush(): Promise<number>;
  /** Texts sent to a channel (`owner_private_dm`, `critical_group`). */
  to(channel: string): string[];
}

/** Builds a bench; `db` to reopen one (a restart). */
export function bench(
  o: { edit?: (p: Policy) => void; db?: DatabaseSync; clock?: { now: number } } = {},
): Bench {
  const loaded = loadPolicies("./policies");
  const policy: Policy = structuredClone(loaded.policy);
  // the owner's 5 s cooldown would make a test wait between two watch messages
  policy.rate_limits.outbound.owner_dm.cooldown_seconds = 0;
  // the texts below are read in UTC
  policy.household.timezone = "UTC";
  o.edit?.(policy);
  const policies: Policies = { ...loaded, policy };
  const db = o.db ?? openDb(":memory:");
  const clock = o.clock ?? { now: NOON };
  const now = () => clock.now;
  const sink = memorySink();
  const log = createLogger("joi", { sinks: [sink], quiet: true, now });
  const sent: MeshOutboundBody[] = [];
  const mesh = { up: true };
  const roles = householdRoles(policies.recipients);
  const outbox = new Outbox({
    db,
    policy: policies.policy,
    roles,
    time: new LocalTime(policy.household.timezone),
    log,
    now,
    transport: {
      send(body) {
        if (!mesh.up) {
          return Promise.resolve({ ok: false, retryable: true, error: "mesh unreachable: down" });
        }
        sent.push(structuredClone(body));
        return Promise.resolve({ ok: true });
      },
    },
  });
  const ledger = new WatchLedger(db);
  const alerts = new WatchAlerts({
    ledger,
    outbox,
    roles,
    policy: () => policies.policy,
    log,
    now,
  });
  return {
    db,
    ledger,
    policies,
    policy,
    clock,
    now,
    outbox,
    alerts,
    sent,
    mesh,
    log,
    logs: sink.lines,
    flush: () => outbox.pump(),
    to: (channel) =>
      sent.filter((m) => (m.conversation_id ?? "") === channel).map((m) => m.content.text),
  };
}
