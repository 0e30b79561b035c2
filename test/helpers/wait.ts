/**
 * Waiting in tests (issue 21): a test waits for a condition, never for a
 * duration it guessed, and its deadline is generous enough for a machine
 * whose CPUs are busy with other work. How long things took is a benchmark
 * figure: a test may print it (`t.diagnostic`), not assert it.
 *
 * Must not know: what is being waited for.
 */

/**
 * The deadline for something that takes milliseconds on a quiet machine (a
 * reply, a process start, a log line): 30 s. Only a hang reaches it, so a
 * passing test never pays it.
 */
export const DEADLINE_MS = 30_000;

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Poll `cond` every `pollMs` until it holds; throws naming `what` after `ms`. Every 25 ms unless
 * told: many conditions ask a daemon's status or run a program (kdig, nft, tc) each time.
 */
export async function waitFor(cond: () => boolean | Promise<boolean>, what: string, ms = DEADLINE_MS, pollMs = 25): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(pollMs);
  }
}

/** `p`, or a rejection naming `what` once `ms` have passed (the timer is cleared either way). */
export function within<T>(p: Promise<T>, what: string, ms = DEADLINE_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms); });
  return Promise.race([p, limit]).finally(() => clearTimeout(timer));
}
