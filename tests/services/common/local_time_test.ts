/**
 * The household's clock: times in the configured IANA zone, written the way
 * people write them, and right on both sides of a daylight saving change.
 */
import assert from "node:assert/strict";
import { LocalTime } from "../../../services/common/local_time.ts";
import { inQuietHours } from "../../../services/joi/agent/proactive.ts";

Deno.test("local time: clock and relative days in the household's zone, never ISO or UTC", () => {
  const t = new LocalTime("Europe/Bratislava");
  const now = Date.UTC(2026, 2, 4, 19, 0); // Wed 4 Mar 2026, 20:00 CET
  assert.equal(t.clock(Date.UTC(2026, 2, 4, 14, 28, 3)), "15:28");
  assert.equal(t.when(Date.UTC(2026, 2, 4, 14, 28), now), "today at 15:28");
  assert.equal(t.when(Date.UTC(2026, 2, 3, 22, 10), now), "yesterday at 23:10");
  assert.equal(t.when(Date.UTC(2026, 2, 5, 6, 0), now), "tomorrow at 07:00");
  assert.equal(t.when(Date.UTC(2026, 1, 28, 8, 5), now), "Sat 28 Feb at 09:05");
  assert.equal(t.when(Date.UTC(2025, 11, 24, 17, 0), now), "24 Dec 2025 at 18:00");
  // the local day decides "yesterday", not the UTC day: 23:30 UTC on the 3rd is the 4th here
  assert.equal(t.day(Date.UTC(2026, 2, 3, 23, 30), now), "today");
  assert.equal(t.long(now), "Wednesday 4 March 2026, 20:00");
  assert.equal(t.date("2026-03-05", now), "tomorrow");
  assert.equal(t.date("2026-03-09", now), "Mon 9 Mar");
  assert.equal(t.date("not a date", now), "not a date");
  for (const s of [t.when(now - 5 * 86_400_000, now), t.long(now), t.clock(now)]) {
    assert.doesNotMatch(s, /\d{4}-\d{2}-\d{2}|T\d{2}:|UTC|Z$/);
  }
  const sk = new LocalTime("Europe/Bratislava", "sk");
  assert.equal(sk.when(Date.UTC(2026, 2, 3, 22, 10), now), "včera o 23:10");
  assert.throws(() => new LocalTime("Europe/Bratslava"), /not an IANA time zone/);
});

Deno.test("local time: across the spring and autumn daylight saving changes", () => {
  const t = new LocalTime("Europe/Bratislava");
  // 29 Mar 2026: 02:00 CET becomes 03:00 CEST (01:00 UTC)
  const before = Date.UTC(2026, 2, 29, 0, 59);
  const after = Date.UTC(2026, 2, 29, 1, 1);
  assert.equal(t.clock(before), "01:59");
  assert.equal(t.clock(after), "03:01");
  assert.equal(t.when(Date.UTC(2026, 2, 29, 10, 0), after), "today at 12:00", "CEST: UTC+2");
  assert.equal(t.when(Date.UTC(2026, 2, 28, 10, 0), after), "yesterday at 11:00", "CET: UTC+1");
  // 25 Oct 2026: 03:00 CEST becomes 02:00 CET (01:00 UTC); 02:30 happens twice and says which
  assert.equal(t.clock(Date.UTC(2026, 9, 25, 0, 30)), "02:30 CEST");
  assert.equal(t.clock(Date.UTC(2026, 9, 25, 1, 30)), "02:30 CET");
  assert.equal(t.clock(Date.UTC(2026, 9, 25, 2, 30)), "03:30", "unambiguous again");
  assert.equal(t.clock(Date.UTC(2026, 9, 24, 23, 30)), "01:30");
  // another hemisphere's rules and another date: New York, 8 Mar 2026 02:00 EST -> 03:00 EDT
  const ny = new LocalTime("America/New_York");
  assert.equal(ny.clock(Date.UTC(2026, 2, 8, 6, 59)), "01:59");
  assert.equal(ny.clock(Date.UTC(2026, 2, 8, 7, 0)), "03:00");
  assert.equal(
    ny.when(Date.UTC(2026, 2, 8, 3, 0), Date.UTC(2026, 2, 8, 12, 0)),
    "yesterday at 22:00",
  );
});

Deno.test("quiet hours follow the household's wall clock across a daylight saving change", () => {
  const q = {
    weekday: { start: "23:00", end: "07:00" },
    weekend: { start: "23:00", end: "09:00" },
    timezone: "Europe/Bratislava",
  };
  // Sunday 29 Mar 2026 (the spring change): the weekend window ends at 09:00 CEST = 07:00 UTC
  assert.equal(inQuietHours(q, Date.UTC(2026, 2, 29, 6, 59)), true);
  assert.equal(inQuietHours(q, Date.UTC(2026, 2, 29, 7, 0)), false);
  // the Saturday before, still CET: 09:00 is 08:00 UTC
  assert.equal(inQuietHours(q, Date.UTC(2026, 2, 28, 7, 30)), true);
  assert.equal(inQuietHours(q, Date.UTC(2026, 2, 28, 8, 0)), false);
  // Monday after: 23:00 CEST is 21:00 UTC
  assert.equal(inQuietHours(q, Date.UTC(2026, 2, 30, 20, 59)), false);
  assert.equal(inQuietHours(q, Date.UTC(2026, 2, 30, 21, 0)), true);
});

Deno.test("local time: a zone without daylight saving, a half-hour offset, the southern hemisphere", () => {
  // Asia/Kolkata: UTC+05:30 all year, so the European change dates carry no marker
  const k = new LocalTime("Asia/Kolkata");
  assert.equal(k.clock(Date.UTC(2026, 9, 25, 0, 30)), "06:00");
  assert.equal(k.clock(Date.UTC(2026, 9, 25, 1, 30)), "07:00");
  assert.equal(
    k.when(Date.UTC(2026, 2, 28, 18, 40), Date.UTC(2026, 2, 29, 3, 0)),
    "today at 00:10",
  );
  const tokyo = new LocalTime("Asia/Tokyo");
  for (let h = 0; h < 48; h++) {
    // no instant of a DST-less zone is ever marked ambiguous
    assert.doesNotMatch(tokyo.clock(Date.UTC(2026, 9, 24, h, 30)), / /);
  }
  // Sydney goes back on 5 Apr 2026 (03:00 AEDT -> 02:00 AEST): 02:30 twice, each marked
  const syd = new LocalTime("Australia/Sydney");
  const first = syd.clock(Date.UTC(2026, 3, 4, 15, 30));
  const second = syd.clock(Date.UTC(2026, 3, 4, 16, 30));
  assert.match(first, /^02:30 \S+/);
  assert.match(second, /^02:30 \S+/);
  assert.notEqual(first, second);
  // and forward on 4 Oct 2026: 01:59 AEST is followed by 03:00 AEDT
  assert.equal(syd.clock(Date.UTC(2026, 9, 3, 15, 59)), "01:59");
  assert.equal(syd.clock(Date.UTC(2026, 9, 3, 16, 0)), "03:00");
});
