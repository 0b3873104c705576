/**
 * Times as the household reads them: in its own IANA zone (policy.yaml
 * `household.timezone`) and written the way people write them, never ISO:
 * `15:28`, `today at 15:28`, `yesterday at 23:10`, `Sat 28 Mar at 09:05`,
 * `28 Mar 2025 at 09:05`. A wall-clock time that occurs twice on the night
 * clocks go back (02:30 twice in Europe) carries its zone abbreviation, so it
 * stays unambiguous; every other time carries none.
 *
 * All arithmetic is done by `Intl.DateTimeFormat` in the zone, so daylight
 * saving changes are handled by the runtime's time zone data, never by adding
 * offsets by hand. Formatters are built once per zone and language (building
 * one costs ~50 times a format).
 *
 * ```ts
 * const t = new LocalTime("Europe/Bratislava");
 * t.clock(Date.UTC(2026, 2, 28, 14, 28)); // "15:28"
 * t.when(Date.UTC(2026, 2, 28, 14, 28), Date.UTC(2026, 2, 28, 20, 0)); // "today at 15:28"
 * ```
 *
 * @module
 */

/** The languages joi speaks (policy.yaml `household.language`). */
export type Language = "en" | "sk";

/** A date and time split into the zone's wall-clock fields. */
export interface LocalParts {
  /** Full year. */
  year: number;
  /** 1-12. */
  month: number;
  /** 1-31. */
  day: number;
  /** 0-23. */
  hour: number;
  /** 0-59. */
  minute: number;
  /** 0 (Sunday) to 6 (Saturday). */
  weekday: number;
}

const LOCALES: Record<Language, string> = { en: "en-GB", sk: "sk-SK" };
const WORDS: Record<Language, { today: string; yesterday: string; tomorrow: string; at: string }> =
  {
    en: { today: "today", yesterday: "yesterday", tomorrow: "tomorrow", at: "at" },
    sk: { today: "dnes", yesterday: "včera", tomorrow: "zajtra", at: "o" },
  };
const WEEKDAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

type Formats = {
  parts: Intl.DateTimeFormat;
  clock: Intl.DateTimeFormat;
  dayMonth: Intl.DateTimeFormat;
  full: Intl.DateTimeFormat;
  long: Intl.DateTimeFormat;
  zone: Intl.DateTimeFormat;
};

const cache = new Map<string, Formats>();

function formats(timeZone: string, language: Language): Formats {
  const key = `${timeZone}|${language}`;
  let f = cache.get(key);
  if (f) return f;
  const locale = LOCALES[language];
  f = {
    parts: new Intl.DateTimeFormat("en-US", {
      timeZone,
      year: "numeric",
      month: "numeric",
      day: "numeric",
      hour: "numeric",
      minute: "numeric",
      weekday: "short",
      hourCycle: "h23",
    }),
    clock: new Intl.DateTimeFormat(locale, {
      timeZone,
      hour: "2-digit",
      minute: "2-digit",
      hourCycle: "h23",
    }),
    dayMonth: new Intl.DateTimeFormat(locale, {
      timeZone,
      weekday: "short",
      day: "numeric",
      month: "short",
    }),
    full: new Intl.DateTimeFormat(locale, {
      timeZone,
      day: "numeric",
      month: "short",
      year: "numeric",
    }),
    long: new Intl.DateTimeFormat(locale, {
      timeZone,
      weekday: "long",
      day: "numeric",
      month: "long",
      year: "numeric",
    }),
    zone: new Intl.DateTimeFormat(locale, { timeZone, timeZoneName: "short" }),
  };
  cache.set(key, f);
  return f;
}

/** Days since the epoch of a calendar date. */
function dayNumber(p: { year: number; month: number; day: number }): number {
  return Math.floor(Date.UTC(p.year, p.month - 1, p.day) / DAY_MS);
}

/** Renders instants in one household zone and language. */
export class LocalTime {
  /** The IANA zone. */
  readonly timeZone: string;
  /** The language dates are written in. */
  readonly language: Language;
  #f: Formats;

  /** Throws a RangeError naming the zone when the runtime does not know it. */
  constructor(timeZone: string, language: Language = "en") {
    try {
      this.#f = formats(timeZone, language);
    } catch {
      throw new RangeError(
        `${JSON.stringify(timeZone)} is not an IANA time zone name (e.g. "Europe/Bratislava")`,
      );
    }
    this.timeZone = timeZone;
    this.language = language;
  }

  /** The zone's wall-clock fields of `ms`. */
  parts(ms: number): LocalParts {
    const p: Record<string, string> = {};
    for (const part of this.#f.parts.formatToParts(new Date(ms))) p[part.type] = part.value;
    return {
      year: Number(p.year),
      month: Number(p.month),
      day: Number(p.day),
      hour: Number(p.hour),
      minute: Number(p.minute),
      weekday: WEEKDAYS.indexOf(p.weekday ?? ""),
    };
  }

  /** Minutes since local midnight of `ms`. */
  minuteOfDay(ms: number): number {
    const p = this.parts(ms);
    return p.hour * 60 + p.minute;
  }

  /** `15:28`, with the zone abbreviation when that wall time occurs twice that night. */
  clock(ms: number): string {
    const t = this.#f.clock.format(new Date(ms));
    return this.#ambiguous(ms) ? `${t} ${this.#zoneName(ms)}` : t;
  }

  /**
   * A moment relative to `now`: `today at 15:28`, `yesterday at 23:10`,
   * `tomorrow at 07:00`, `Sat 28 Mar at 09:05` within the year, else
   * `28 Mar 2025 at 09:05`.
   */
  when(ms: number, now: number): string {
    return `${this.day(ms, now)} ${WORDS[this.language].at} ${this.clock(ms)}`;
  }

  /** The local date of `ms` relative to `now`: `today`, `yesterday`, `Sat 28 Mar`, `28 Mar 2025`. */
  day(ms: number, now: number): string {
    const p = this.parts(ms);
    return this.#label(p, now, ms, this.#f);
  }

  /**
   * A calendar date (`2026-03-28`, as weather forecasts give it) relative to
   * `now` the way {@link day} says it; anything else is returned unchanged.
   */
  date(isoDate: string, now: number): string {
    const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(isoDate);
    if (!m) return isoDate;
    const p = { year: Number(m[1]), month: Number(m[2]), day: Number(m[3]) };
    const noonUtc = Date.UTC(p.year, p.month - 1, p.day, 12);
    if (Number.isNaN(noonUtc)) return isoDate;
    return this.#label(p, now, noonUtc, formats("UTC", this.language));
  }

  #label(
    p: { year: number; month: number; day: number },
    now: number,
    instant: number,
    f: Formats,
  ): string {
    const w = WORDS[this.language];
    const n = this.parts(now);
    const days = dayNumber(p) - dayNumber(n);
    if (days === 0) return w.today;
    if (days === -1) return w.yesterday;
    if (days === 1) return w.tomorrow;
    return p.year === n.year
      ? f.dayMonth.format(new Date(instant)).replace(/,/g, "")
      : f.full.format(new Date(instant));
  }

  /** `Wednesday 4 March 2026, 13:00` (for the model: what "now" is here). */
  long(ms: number): string {
    return `${this.#f.long.format(new Date(ms)).replace(/,/g, "")}, ${this.clock(ms)}`;
  }

  /** The zone's offset at `ms`, in minutes. */
  #offset(ms: number): number {
    const p = this.parts(ms);
    const wall = Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute);
    return Math.round((wall - (ms - (ms % 60_000))) / 60_000);
  }

  /** True when the wall time of `ms` also happens an offset change earlier or later. */
  #ambiguous(ms: number): boolean {
    const here = this.#offset(ms);
    for (const probe of [ms - 2 * HOUR_MS, ms + 2 * HOUR_MS]) {
      const other = this.#offset(probe);
      if (other === here) continue;
      // the same wall time at the other offset: does it fall on the other side?
      const twin = ms + (here - other) * 60_000;
      if (this.#offset(twin) === other && Math.abs(twin - ms) <= 2 * HOUR_MS) return true;
    }
    return false;
  }

  #zoneName(ms: number): string {
    return this.#f.zone.formatToParts(new Date(ms)).find((p) => p.type === "timeZoneName")
      ?.value ?? this.timeZone;
  }
}
