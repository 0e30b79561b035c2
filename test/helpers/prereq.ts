/**
 * Prerequisites of tests that need real parts (root, namespaces, Knot, tshark…).
 * Outside CI a missing prerequisite skips the test and says why; under CI=true it
 * fails the test, so that a skipped test is never counted as a pass there.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { TestContext } from 'node:test';

export const IN_CI = process.env.CI === 'true' || process.env.CI === '1';

/** Whether `cmd` is installed; `a|b` names alternatives, any of which will do. */
export function haveCommand(cmd: string): boolean {
  return cmd.split('|').some((c) => spawnSync('sh', ['-c', `command -v ${c} || test -x /usr/sbin/${c}`], { stdio: 'ignore' }).status === 0);
}

/** The compiler of the kernel path's tc programs, as the daemon looks for it (shim/dataplane/bpf-encap.ts): Debian's clang-14 installs no `clang`. */
export const CLANG = 'clang|clang-14';

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

/**
 * Returns true when the test may go on. Otherwise skips it (outside CI) or
 * throws (under CI=true) naming what is missing.
 */
export function needs(t: TestContext, req: { root?: boolean; commands?: string[]; paths?: string[] }): boolean {
  const missing = missingPrereqs(req);
  if (missing.length === 0) return true;
  skipOrFail(t, `missing prerequisite: ${missing.join(', ')}`);
  return false;
}

/** What of `req` is missing here (empty: all there); for set-up shared by the tests of a file. */
export function missingPrereqs(req: { root?: boolean; commands?: string[]; paths?: string[] }): string[] {
  const missing: string[] = [];
  if (req.root && !isRoot()) missing.push('root');
  for (const c of req.commands ?? []) if (!haveCommand(c)) missing.push(c);
  for (const p of req.paths ?? []) if (!existsSync(p)) missing.push(p);
  return missing;
}

/** Skip the test saying `why` (outside CI), or throw under CI=true, where a missing prerequisite is a failure. */
export function skipOrFail(t: TestContext, why: string): void {
  if (IN_CI) throw new Error(`${why} (CI=true: a missing prerequisite is a failure)`);
  t.skip(why);
}
