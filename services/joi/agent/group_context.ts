/**
 * Lines of a group that were not addressed to joi (the group's rule is
 * `respond: mentioned` and the line neither mentioned nor named joi): joi
 * answers nothing and calls no model for them, but keeps the latest few, in
 * memory only and per channel, so that when someone does address joi it
 * knows what the group was just talking about. They reach the model as data
 * inside `<group_chat>`, never as a user turn, and never leave their channel.
 *
 * Bounded three ways: at most `maxLines` per channel, each at most
 * `maxChars`, none older than `maxAgeMs`.
 *
 * @module
 */

/** Options of {@link GroupContext}. */
export interface GroupContextOptions {
  /** Lines kept per channel (default 20). */
  maxLines?: number;
  /** Characters kept of one line (default 300). */
  maxChars?: number;
  /** Age after which a line is forgotten (default 6 hours). */
  maxAgeMs?: number;
}

interface Line {
  at: number;
  text: string;
}

/** The recent unaddressed lines of each group channel. */
export class GroupContext {
  readonly #lines = new Map<string, Line[]>();
  readonly #maxLines: number;
  readonly #maxChars: number;
  readonly #maxAge: number;

  constructor(o: GroupContextOptions = {}) {
    this.#maxLines = o.maxLines ?? 20;
    this.#maxChars = o.maxChars ?? 300;
    this.#maxAge = o.maxAgeMs ?? 6 * 3_600_000;
  }

  /** Keeps `sender`'s line `text` of `channel`. */
  add(channel: string, sender: string, text: string, at: number): void {
    const t = text.replace(/\s+/g, " ").trim();
    if (t === "") return;
    const cut = Array.from(t);
    const shown = cut.length > this.#maxChars ? `${cut.slice(0, this.#maxChars).join("")}…` : t;
    const list = this.#lines.get(channel) ?? [];
    list.push({ at, text: `${sender}: ${shown}` });
    if (list.length > this.#maxLines) list.splice(0, list.length - this.#maxLines);
    this.#lines.set(channel, list);
  }

  /** The kept lines of `channel`, oldest first, each as `<when> <sender>: <text>`. */
  lines(channel: string, now: number, when: (at: number) => string): string[] {
    const list = (this.#lines.get(channel) ?? []).filter((l) => now - l.at <= this.#maxAge);
    if (list.length) this.#lines.set(channel, list);
    else this.#lines.delete(channel);
    return list.map((l) => `${when(l.at)} ${l.text}`);
  }
}
