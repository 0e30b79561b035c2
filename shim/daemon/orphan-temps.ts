/**
 * Temp files a killed writer left. The daemon writes a file it must not leave half-written (the
 * cache file, resolv.conf) to a temp file named after its pid, flushes it and renames it over the
 * file: a SIGKILL or a power cut before the rename leaves the temp file. The next writer removes
 * those whose process is gone; a live process's (one running now, or a pid reused) are left.
 * Owns nothing but that sweep; must not know what the files hold.
 */
import { lstatSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';

/** Whether process `pid` is alive (signal 0: EPERM means it is, another user's). */
function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch (err) { return (err as NodeJS.ErrnoException).code === 'EPERM'; }
}

/**
 * Remove the regular files in `dir` named `<prefix><pid><suffix>` whose pid is not this process's
 * and not alive. Returns their paths.
 */
export function removeOrphanedTemps(dir: string, prefix: string, suffix: string): string[] {
  let names: string[];
  try { names = readdirSync(dir); } catch { return []; }
  const removed: string[] = [];
  for (const name of names) {
    if (!name.startsWith(prefix) || !name.endsWith(suffix) || name.length <= prefix.length + suffix.length) continue;
    const pid = name.slice(prefix.length, name.length - suffix.length);
    if (!/^[1-9]\d{0,9}$/.test(pid) || Number(pid) === process.pid || alive(Number(pid))) continue;
    const p = path.join(dir, name);
    try {
      if (!lstatSync(p).isFile()) continue;
      rmSync(p);
      removed.push(p);
    } catch { /* gone meanwhile, or not ours to remove */ }
  }
  return removed;
}
