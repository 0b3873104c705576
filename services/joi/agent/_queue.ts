/**
 * The agent's work queues: one ordered queue per channel, so the messages of
 * a channel are handled in order while channels run independently; a full
 * channel refuses new work instead of growing without bound. Internal to the
 * agent folder.
 *
 * @module
 */
import type { Logger } from "../../common/log.ts";

/** Per-channel ordered job queues. */
export class ChannelQueues {
  #queues = new Map<string, { tail: Promise<void>; pending: number }>();
  #max: number;
  #log: Logger;

  /** At most `maxPerChannel` pending jobs per channel. */
  constructor(maxPerChannel: number, log: Logger) {
    this.#max = maxPerChannel;
    this.#log = log;
  }

  /** Queues `job` behind the channel's earlier jobs; false (logged) when the channel is full. */
  enqueue(channel: string, job: () => Promise<void>): boolean {
    let q = this.#queues.get(channel);
    if (!q) {
      q = { tail: Promise.resolve(), pending: 0 };
      this.#queues.set(channel, q);
    }
    if (q.pending >= this.#max) {
      this.#log.warn("agent_queue_full", { channel });
      return false;
    }
    q.pending++;
    const entry = q;
    entry.tail = entry.tail.then(job).catch((e) => {
      this.#log.error("agent_job_failed", { channel, error: (e as Error).message });
    }).finally(() => entry.pending--);
    return true;
  }

  /** Resolves when every queued job has run. */
  async idle(): Promise<void> {
    while ([...this.#queues.values()].some((q) => q.pending > 0)) {
      await Promise.all([...this.#queues.values()].map((q) => q.tail));
    }
  }

  /** Jobs pending over every channel. */
  depth(): number {
    let n = 0;
    for (const q of this.#queues.values()) n += q.pending;
    return n;
  }
}
