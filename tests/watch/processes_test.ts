/**
 * The watches with real processes: the relay, joi and the mesh as children
 * with their manifest flags, signal-cli and openHAB as protocol-faithful
 * stand-ins (tests/alarms/stack.ts), and policy.yaml shortened so it runs in
 * seconds (link checks every second, a heartbeat every second, the house
 * silent after 3 s).
 *
 * - joi stopped: the mesh tells the owner's DM and the critical group that
 *   joi is unreachable, within 3 x check_interval_seconds of the stop (a
 *   stopped process refuses at once; a cut link adds one check's deadline);
 *   joi restarted: one summary to both.
 * - the relay stopped: "the house is silent" to the critical group after
 *   house_silent_seconds; restarted: "the house is back", telling that the
 *   relay had stopped.
 */
import assert from "node:assert/strict";
import type { RecordedRequest } from "../peers/signal_cli/peer.ts";
import { GROUPS, OWNER } from "../services/mesh/harness.ts";
import { startStack } from "../alarms/stack.ts";

const INTERVAL_S = 1;

function texts(sends: RecordedRequest[]): string[] {
  return sends.map((r) => String(r.params.message));
}

Deno.test("watches, real processes: joi stopped -> the mesh alerts within 3 x interval; back -> one summary; relay stopped -> house silent; back -> recovery", async () => {
  const s = await startStack({
    policy: (doc) => {
      doc.setIn(["nebula_health", "check_interval_seconds"], INTERVAL_S);
      doc.setIn(["nebula_health", "lighthouse_ping_timeout_ms"], 500);
      doc.setIn(["nebula_health", "alert_after_failures"], 3);
      doc.setIn(["watch", "heartbeat_seconds"], 1);
      doc.setIn(["watch", "house_silent_seconds"], 3);
    },
  });
  const toOwner = () =>
    s.peer.calls("send").filter((r) =>
      (r.params.recipient as string[] | undefined)?.[0] === OWNER.number
    );
  const toCritical = () =>
    s.peer.calls("send").filter((r) => r.params.groupId === GROUPS.critical_group);
  const waitFor = (what: string, pred: () => boolean, ms = 30_000) =>
    s.peer.waitFor(pred, ms).catch(() => {
      throw new Error(
        `timed out waiting for ${what}; sends:\n${texts(s.peer.calls("send")).join("\n")}`,
      );
    });
  try {
    // the link is up both ways and the house beats
    const health = async () => {
      const r = await fetch(`http://127.0.0.1:${s.layout.joiInbound.port}/health`);
      return (await r.json()).data.watch;
    };
    const end = Date.now() + 20_000;
    for (;;) {
      const w = await health();
      if (w.link.reachable === true && w.house.last_heartbeat !== null) break;
      if (Date.now() > end) throw new Error(`no link or heartbeat: ${JSON.stringify(w)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    const before = s.peer.calls("send").length;

    // joi stops (a crash)
    const stopped = Date.now();
    await s.stopJoi("SIGKILL");
    await waitFor(
      "the mesh's joi-unreachable alert in the owner's DM and the critical group",
      () =>
        texts(toOwner()).some((t) => t.startsWith("joi is unreachable since")) &&
        texts(toCritical()).some((t) => t.startsWith("joi is unreachable since")),
    );
    const alerted = Math.max(
      ...[...toOwner(), ...toCritical()]
        .filter((r) => String(r.params.message).startsWith("joi is unreachable"))
        .map((r) => r.at),
    );
    const elapsed = alerted - stopped;
    console.log(
      `joi stopped -> alert in ${elapsed} ms (3 x check interval = ${3 * INTERVAL_S * 1000} ms)`,
    );
    assert.ok(elapsed <= 3 * INTERVAL_S * 1000 + 500, `alert after ${elapsed} ms`);
    assert.equal(texts(toOwner()).filter((t) => t.startsWith("joi is unreachable")).length, 1);
    assert.equal(texts(toCritical()).filter((t) => t.startsWith("joi is unreachable")).length, 1);
    assert.match(
      texts(toOwner()).find((t) => t.startsWith("joi is unreachable"))!,
      /^joi is unreachable since \d\d:\d\d: joi does not answer \(.*\)\. Alarms from the house and joi's replies cannot reach you until it is back; they stay queued\. Check the joi VM \(systemctl status joi nebula\)\.$/,
    );

    // joi is back: one summary, to both
    await s.startJoi();
    await waitFor(
      "joi's summary",
      () =>
        texts(toOwner()).some((t) => t.startsWith("joi is back in touch")) &&
        texts(toCritical()).some((t) => t.startsWith("joi is back in touch")),
    );
    await new Promise((r) => setTimeout(r, 3 * INTERVAL_S * 1000));
    const summaries = texts(s.peer.calls("send")).filter((t) =>
      t.startsWith("joi is back in touch")
    );
    assert.equal(summaries.length, 2, summaries.join("\n"));
    assert.match(
      summaries[0]!,
      /^joi is back in touch\. It was cut off from \d\d:\d\d to \d\d:\d\d \(\d+ s\)\. /,
    );

    // the relay stops: the house goes silent
    const afterLink = s.peer.calls("send").length;
    assert.ok(afterLink > before);
    await s.stopRelay("SIGKILL");
    const relayStopped = Date.now();
    await waitFor(
      "the house-silent alert",
      () => texts(toCritical()).some((t) => t.startsWith("The house is silent")),
    );
    const silentAt = toCritical().find((r) =>
      String(r.params.message).startsWith("The house is silent")
    )!.at;
    console.log(
      `relay stopped -> house silent in ${silentAt - relayStopped} ms (house_silent_seconds = 3)`,
    );
    assert.ok(silentAt - relayStopped >= 2000, "not before the relay's silence reached the limit");
    assert.match(
      texts(toCritical()).find((t) => t.startsWith("The house is silent"))!,
      /^The house is silent: no heartbeat from the openHAB relay since \d\d:\d\d \(\d+ s\)\. Alarms from the house may not reach joi\. .*systemctl status joi-openhab-relay nebula\.$/,
    );
    assert.ok(
      !texts(toOwner()).some((t) => t.startsWith("The house is silent")),
      "critical group only",
    );

    // the relay is back
    await s.startRelay();
    await waitFor("the house-back message", () =>
      texts(toCritical()).some((t) => t.startsWith("The house is back")));
    assert.match(
      texts(toCritical()).find((t) =>
        t.startsWith("The house is back")
      )!,
      /^The house is back: the openHAB relay's heartbeat arrived again at \d\d:\d\d \(silent from \d\d:\d\d, \d+ s\)\. The relay restarted at \d\d:\d\d: it had stopped\.$/,
    );
    await new Promise((r) => setTimeout(r, 2000));
    assert.equal(texts(toCritical()).filter((t) => t.startsWith("The house is silent")).length, 1);
    assert.equal(texts(toCritical()).filter((t) => t.startsWith("The house is back")).length, 1);
  } finally {
    await s.close();
  }
});
