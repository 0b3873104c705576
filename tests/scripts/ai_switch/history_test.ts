import assert from "node:assert/strict";
import fc from "fast-check";
import {
  formatEntry,
  type HistoryEntry,
  openHistory,
  parseEntry,
  parseHistory,
  readHistory,
} from "../../../scripts/ai_switch/history.ts";

Deno.test("a log line reads as time, old -> new, flush, result", () => {
  const line = formatEntry({
    time: "2026-01-02T03:04:05.000Z",
    from: "pro",
    to: "perso",
    flush: true,
    result: "ok",
  });
  assert.equal(line, "2026-01-02T03:04:05.000Z pro -> perso flush=yes result=ok");
});

Deno.test("log lines round-trip, whatever the error and warning text", () => {
  const name = fc.stringMatching(/^[a-z][a-z0-9-]{0,10}$/);
  fc.assert(
    fc.property(
      fc.record({
        time: fc.date({
          min: new Date("2000-01-01"),
          max: new Date("2100-01-01"),
          noInvalidDate: true,
        }).map((d) => d.toISOString()),
        from: name,
        to: name,
        flush: fc.boolean(),
        result: fc.constantFrom("ok", "failed", "unchanged", "repaired" as const),
        step: fc.option(fc.constantFrom("apply_rules", "start_services"), { nil: undefined }),
        error: fc.option(fc.string({ minLength: 1 }).filter((s) => !/[\r\n]/.test(s)), {
          nil: undefined,
        }),
        warning: fc.option(fc.string({ minLength: 1 }).filter((s) => !/[\r\n]/.test(s)), {
          nil: undefined,
        }),
      }),
      (e) => {
        const clean = Object.fromEntries(
          Object.entries(e).filter(([, v]) => v !== undefined),
        ) as unknown as HistoryEntry;
        const line = formatEntry(clean);
        assert.ok(!line.includes("\n"));
        assert.deepEqual(parseEntry(line), clean);
      },
    ),
  );
});

Deno.test("newlines in an error cannot forge a second log line", () => {
  const line = formatEntry({
    time: "2026-01-02T03:04:05.000Z",
    from: "pro",
    to: "perso",
    flush: false,
    result: "failed",
    error: "boom\n2026-01-02T03:04:06.000Z perso -> anklume flush=yes result=ok",
  });
  assert.equal(line.split("\n").length, 1);
  assert.equal(parseHistory(line).entries.length, 1);
});

Deno.test("bad log lines are reported with their line number, good ones kept", () => {
  const text = [
    "2026-01-02T03:04:05.000Z none -> pro flush=yes result=ok",
    "garbage",
    "2026-01-02T03:04:05.000Z pro -> perso flush=maybe result=ok",
    "2026-01-02T03:04:05.000Z pro -> perso flush=no result=won",
    "not-a-time pro -> perso flush=no result=ok",
    '2026-01-02T03:04:05.000Z pro -> perso flush=no result=ok error="unterminated',
  ].join("\n");
  const { entries, errors } = parseHistory(text);
  assert.equal(entries.length, 1);
  assert.deepEqual(errors.map((e) => e.split(":")[0]), [
    "line 2",
    "line 3",
    "line 4",
    "line 5",
    "line 6",
  ]);
});

Deno.test("the log is appended to, created 0640, and read back", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/ai-switch.log`;
    assert.deepEqual(await readHistory(path), { entries: [], errors: [] });
    for (const to of ["pro", "perso"]) {
      const log = await openHistory(path);
      await log.append({
        time: new Date(0).toISOString(),
        from: "x",
        to,
        flush: true,
        result: "ok",
      });
      log.close();
    }
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o640);
    const { entries } = await readHistory(path);
    assert.deepEqual(entries.map((e) => e.to), ["pro", "perso"]);
    await assert.rejects(
      openHistory(`${dir}/missing/x.log`),
      /create its folder, or set --log-file/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
