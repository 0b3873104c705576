/**
 * The household's side of the booted test: people writing to joi through the
 * Signal stand-in, openHAB raising alarms through its stand-in, and what
 * reached Signal in the end (the `send` requests the mesh made), each matched
 * after the moment it was caused so earlier traffic never counts.
 *
 * @module
 */
import { itemChange } from "../../peers/openhab_sse.ts";
import { dataEnvelope, type RecordedRequest } from "../../peers/signal_cli/peer.ts";
import { GROUPS, OWNER } from "../../services/mesh/harness.ts";
import type { Vm } from "../vm/vm.ts";
import type { OpenhabStandin, SignalServer } from "./standins.ts";

/** A `send` the mesh made, with when the stand-in received it. */
export type Sent = RecordedRequest & { at: number };

/** Who joi answers. */
export type Audience =
  | { dm: string }
  | { group: string };

/** The owner's direct messages. */
export const OWNER_DM: Audience = { dm: OWNER.number };
/** The family group. */
export const FAMILY_GROUP: Audience = { group: GROUPS.family_group };
/** The critical group. */
export const CRITICAL_GROUP: Audience = { group: GROUPS.critical_group };

/** Whether a `send` goes to `to`. */
export function sentTo(s: Sent, to: Audience): boolean {
  if ("dm" in to) return JSON.stringify(s.params.recipient) === JSON.stringify([to.dm]);
  return s.params.groupId === to.group;
}

/** Polls `cond` every 250 ms for at most `limitMs`, failing with `what` and `detail()`. */
export async function eventually(
  what: string,
  cond: () => Promise<boolean>,
  limitMs: number,
  detail: () => Promise<string> = () => Promise.resolve(""),
): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!(await cond())) {
    if (Date.now() > deadline) {
      throw new Error(`gave up after ${limitMs} ms waiting for ${what}\n${await detail()}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** The household and the two stand-ins it talks through. */
export class Household {
  readonly signal: SignalServer;
  readonly openhab: OpenhabStandin;
  /** Explains a timeout (failed units, journals). */
  readonly diagnose: () => Promise<string>;
  #ts = Date.now();

  constructor(signal: SignalServer, openhab: OpenhabStandin, diagnose: () => Promise<string>) {
    this.signal = signal;
    this.openhab = openhab;
    this.diagnose = diagnose;
  }

  /** The owner writes `text` to joi, in a DM or in a group; resolves with the time it was sent. */
  async ownerWrites(text: string, where: Audience = OWNER_DM): Promise<number> {
    const at = Date.now();
    this.#ts = Math.max(this.#ts + 1, at);
    await this.signal.deliver(dataEnvelope({
      ...OWNER,
      timestamp: this.#ts,
      text,
      ...("group" in where ? { groupId: where.group } : {}),
    }));
    return at;
  }

  /** openHAB reports `item` (a smoke detector) switching on; resolves with the time. */
  async smoke(item: string): Promise<number> {
    const at = Date.now();
    for (const ev of itemChange(item, "OnOff", "ON", "OFF")) {
      await this.openhab.command({ push: ev });
    }
    return at;
  }

  /** What the mesh sent to `to` since `since` (ms). */
  async sentSince(to: Audience, since: number): Promise<Sent[]> {
    return (await this.signal.sends()).filter((s) => s.at >= since && sentTo(s, to));
  }

  /** Waits for a `send` to `to` after `since` matching `pred`; resolves with it. */
  async expect(
    what: string,
    to: Audience,
    since: number,
    pred: (s: Sent) => boolean = () => true,
    limitMs = 60_000,
  ): Promise<Sent> {
    let found: Sent | undefined;
    await eventually(
      what,
      async () => {
        found = (await this.sentSince(to, since)).find(pred);
        return found !== undefined;
      },
      limitMs,
      this.diagnose,
    );
    return found!;
  }

  /** Waits for the critical group to hear about `item`'s alarm after `since`. */
  alarmDelivered(item: string, since: number, limitMs = 60_000): Promise<Sent> {
    return this.expect(
      `the ${item} alarm in the critical group`,
      CRITICAL_GROUP,
      since,
      (s) => String(s.params.message).includes(item),
      limitMs,
    );
  }
}

/** Lines of `vm`'s journal (all units) and of the files in `logDirs` matching `pattern`. */
export async function logLines(vm: Vm, pattern: RegExp, logDirs: string[] = []): Promise<string[]> {
  const r = await vm.exec([
    "sh",
    "-c",
    'journalctl --no-pager -o cat 2>/dev/null; for d in "$@"; do cat "$d"/* 2>/dev/null; done; true',
    "sh",
    ...logDirs,
  ]);
  return r.stdout.split("\n").filter((l) => pattern.test(l));
}
