/**
 * Paths the daemon, as root, relies on (docs/security.md "Local user"): what
 * they name must be changeable by no one but root. A path is trusted when it
 * and every directory above it belong to root (or to this process's user) and
 * none is writable by group or others — except a sticky directory above it,
 * such as /tmp or the root of a bpffs mounted without a mode (1777): there
 * others may add entries of their own but cannot rename or remove root's.
 *
 * Nothing is followed: a symbolic link where a directory or a file is expected
 * is not trusted (resolve the path first, with realpath, when links are fine,
 * as for an installation's files). Must not know who asks or why.
 */
import { lstatSync, readdirSync, realpathSync, type Stats } from 'node:fs';
import path from 'node:path';

export interface TrustOptions {
  /** What `p` must be (default: either). */
  kind?: 'directory' | 'file';
  /** A missing `p` (or a missing directory above it) is trusted: the directories above that exist still must be. */
  missingOk?: boolean;
}

const S_ISVTX = 0o1000;

/** The users whose files root may trust: root, and the user this process runs as. */
function trustedOwner(uid: number): boolean {
  return uid === 0 || uid === (process.geteuid?.() ?? 0);
}

/** Why one entry is not trusted (`above`: a directory above the path, which may be sticky), or undefined. */
function entryProblem(p: string, st: Stats, above: boolean): string | undefined {
  if (st.isSymbolicLink()) return `${p} is a symbolic link`;
  if (above && !st.isDirectory()) return `${p} is not a directory`;
  if (!trustedOwner(st.uid)) return `${p} belongs to uid ${st.uid}`;
  const sticky = above && (st.mode & S_ISVTX) !== 0;
  if ((st.mode & 0o022) !== 0 && !sticky) return `${p} is writable by ${(st.mode & 0o002) !== 0 ? 'everyone' : `group ${st.gid}`} (mode ${(st.mode & 0o7777).toString(8)})`;
  return undefined;
}

/**
 * Why root cannot trust `p` (an absolute path), or undefined when it can: the
 * first entry from `/` down that another user could change or replace.
 */
export function untrustedReason(p: string, opts: TrustOptions = {}): string | undefined {
  const abs = path.resolve(p);
  const parts = abs.split('/').filter((s) => s !== '');
  let cur = '/';
  for (let i = 0; i <= parts.length; i++) {
    if (i > 0) cur = path.join(cur, parts[i - 1]!);
    const last = i === parts.length;
    let st: Stats;
    try {
      st = lstatSync(cur);
    } catch (err) {
      // Missing from here down: what root makes there is its own, in directories found trusted so far.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' && opts.missingOk) return undefined;
      return `${cur}: ${(err as Error).message}`;
    }
    const problem = entryProblem(cur, st, !last);
    if (problem) return problem;
    if (last && opts.kind === 'directory' && !st.isDirectory()) return `${cur} is not a directory`;
    if (last && opts.kind === 'file' && !st.isFile()) return `${cur} is not a regular file`;
  }
  return undefined;
}

/**
 * The first entry below the trusted directory `dir` (checked by the caller) that another user
 * owns or may write (no sticky exception here), or undefined. A symbolic link is trusted when
 * it is root's and its target is (untrustedReason). At most `limit` entries are looked at.
 */
export function untrustedBelow(dir: string, limit = 100_000): string | undefined {
  const stack = [dir];
  let seen = 0;
  while (stack.length > 0) {
    const d = stack.pop()!;
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (++seen > limit) return `${dir} holds more than ${limit} entries: not checked`;
      const p = path.join(d, e.name);
      const st = lstatSync(p);
      if (st.isSymbolicLink()) {
        // node_modules/.bin's links: the link is root's, and so is what it leads to.
        if (!trustedOwner(st.uid)) return `${p} belongs to uid ${st.uid}`;
        let target: string;
        try { target = realpathSync(p); } catch { continue; } // a dangling link leads nowhere
        const problem = untrustedReason(target);
        if (problem) return `${p} leads to ${target}: ${problem}`;
        continue;
      }
      const problem = entryProblem(p, st, false);
      if (problem) return problem;
      if (st.isDirectory()) stack.push(p);
    }
  }
  return undefined;
}
