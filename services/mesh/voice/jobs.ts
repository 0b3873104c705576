/**
 * The bounded voice job queue: at most one job runs at a time (whisper.cpp
 * and piper are CPU-heavy on a 2 GB VM), at most `maxQueue` wait. When a job
 * arrives at a full queue the OLDEST waiting job is dropped (its caller gets
 * the `dropped` value) and the drop is logged to the security log as
 * possible abuse: 120 voice notes an hour x 60 s would otherwise be a two
 * hour backlog.
 *
 * @module
 */
import type { Logger } from "../../common/log.ts";

interface Waiting {
  label: string;
  start: () => void;
  drop: () => void;
}

/** Options of {@link JobQueue}. */
export interface JobQueueOptions {
  /** Jobs allowed to wait while one runs (voice.max_queue, default 3). */
  maxQueue: number;
  log: Logger;
}

/** A one-at-a-time job queue with a bounded, drop-oldest backlog. */
export class JobQueue {
  readonly #maxQueue: number;
  readonly #log: Logger;
  readonly #waiting: Waiting[] = [];
  #running = false;
  /** Jobs dropped since start. */
  dropped = 0;

  constructor(options: JobQueueOptions) {
    this.#maxQueue = options.maxQueue;
    this.#log = options.log;
  }

  /** Jobs waiting (not counting the running one). */
  get depth(): number {
    return this.#waiting.length;
  }

  /** True while a job runs. */
  get busy(): boolean {
    return this.#running;
  }

  /**
   * Runs `job` when its turn comes. Resolves with its result, or with
   * `dropped()` if it was pushed out of the queue before it started.
   */
  submit<T>(label: string, job: () => Promise<T>, dropped: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const entry: Waiting = {
        label,
        start: () => {
          this.#running = true;
          job().then(resolve, reject).finally(() => {
            this.#running = false;
            this.#next();
          });
        },
        drop: () => resolve(dropped()),
      };
      if (!this.#running && this.#waiting.length === 0) {
        entry.start();
        return;
      }
      if (this.#waiting.length >= this.#maxQueue) {
        const old = this.#waiting.shift()!;
        this.dropped++;
        this.#log.security("voice_queue_overflow", {
          dropped: old.label,
          max_queue: this.#maxQueue,
          note: "oldest waiting voice job dropped: possible abuse",
        });
        old.drop();
      }
      this.#waiting.push(entry);
    });
  }

  #next(): void {
    const n = this.#waiting.shift();
    if (n) n.start();
  }
}
