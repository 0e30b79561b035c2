/**
 * Deadlines for answers that wait a short budget (the capability stage's wait
 * for a record after the address answer). One queue serves every waiter, so a
 * miss costs no timer of its own. Node's timers have a 1 ms granularity, while
 * on loopback the whole budget is ~0.05–0.2 ms: deadlines under 1 ms away are
 * checked once per event-loop turn (setImmediate, after that turn's I/O), longer
 * ones with one shared setTimeout.
 * It must not know what the waiters wait for.
 */

/** Something with a deadline (on the queue's clock) that may finish before it. */
export interface Deadlined {
  deadline: number;
  done: boolean;
}

export class DeadlineQueue<T extends Deadlined> {
  private items: T[] = [];
  private immediate: NodeJS.Immediate | undefined;
  private timeout: NodeJS.Timeout | undefined;
  private timeoutAt = Infinity;

  /** `now` is the clock the deadlines are on (ms); `onExpire` gets each item still not done at its deadline. */
  constructor(private readonly now: () => number, private readonly onExpire: (item: T) => void) {}

  add(item: T): void {
    this.items.push(item);
    this.schedule(item.deadline);
  }

  get size(): number { return this.items.length; }

  /** Stop all timers; items not done are left as they are (the owner is closing). */
  clear(): void {
    if (this.immediate) clearImmediate(this.immediate);
    if (this.timeout) clearTimeout(this.timeout);
    this.immediate = undefined;
    this.timeout = undefined;
    this.timeoutAt = Infinity;
    this.items = [];
  }

  private schedule(deadline: number): void {
    const wait = deadline - this.now();
    if (wait < 1) {
      this.immediate ??= setImmediate(this.sweep);
      return;
    }
    if (this.timeout && this.timeoutAt <= deadline) return;
    if (this.timeout) clearTimeout(this.timeout);
    this.timeoutAt = deadline;
    this.timeout = setTimeout(this.sweep, wait);
  }

  /** An own property, bound once: the hot path creates no closure per miss. */
  private readonly sweep = (): void => {
    this.immediate = undefined;
    if (this.timeout) clearTimeout(this.timeout);
    this.timeout = undefined;
    this.timeoutAt = Infinity;
    const now = this.now();
    const keep: T[] = [];
    const due: T[] = [];
    let next = Infinity;
    for (const it of this.items) {
      if (it.done) continue;
      if (it.deadline <= now) due.push(it);
      else { keep.push(it); if (it.deadline < next) next = it.deadline; }
    }
    this.items = keep;
    // A late sweep (a busy event loop) may find several due at once: expire them in deadline order.
    if (due.length > 1) due.sort((a, b) => a.deadline - b.deadline);
    for (const it of due) this.onExpire(it);
    if (keep.length > 0) this.schedule(next);
  };
}
