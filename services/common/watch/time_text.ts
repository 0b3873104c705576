/**
 * Times and durations as the watches' messages write them: "14:02" for a
 * time of today, else as {@link LocalTime} writes it ("yesterday at 23:10",
 * "Mon 13 Apr at 14:02"), in the household's zone; durations as "29 min",
 * "2 h 5 min", "3 days".
 *
 * @module
 */
import { LocalTime } from "../local_time.ts";

/** `at` as "14:02" when it is on the same local day as `now`, else "Mon 13 Apr at 14:02". */
export function timeText(at: number, now: number, timeZone: string): string {
  const t = new LocalTime(timeZone);
  return t.day(at, now) === t.day(now, now) ? t.clock(at) : t.when(at, now);
}

/** A duration (ms) as "45 s", "29 min", "2 h 5 min" or "3 days". */
export function durationText(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  const min = Math.round(s / 60);
  if (min < 60) return `${min} min`;
  const h = Math.floor(min / 60);
  if (h < 48) return min % 60 ? `${h} h ${min % 60} min` : `${h} h`;
  return `${Math.floor(h / 24)} days`;
}
