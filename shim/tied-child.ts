/**
 * Helper processes that must not outlive the daemon (`ip monitor`: it blocks in the kernel and
 * notices its parent's death only when it next writes, which on a quiet host is never). Run under
 * util-linux's `setpriv --pdeathsig KILL` (Debian's util-linux, essential), the kernel kills the
 * helper as its parent ends, SIGKILL included (prctl PR_SET_PDEATHSIG). Where setpriv is not
 * installed the helper runs as before. Must not know which helper it runs.
 */
import { accessSync, constants } from 'node:fs';
import path from 'node:path';

let setpriv: string | null | undefined;

/** setpriv's path on PATH (or /usr/bin), looked up once; null when not installed. */
function findSetpriv(): string | null {
  if (setpriv !== undefined) return setpriv;
  const dirs = [...(process.env.PATH ?? '').split(':').filter((d) => d !== ''), '/usr/bin', '/bin'];
  setpriv = null;
  for (const dir of dirs) {
    const p = path.join(dir, 'setpriv');
    try { accessSync(p, constants.X_OK); setpriv = p; break; } catch { /* not here */ }
  }
  return setpriv;
}

/** The command and arguments that run `cmd args` as a child killed when this process ends. */
export function tiedToUs(cmd: string, args: readonly string[]): [string, string[]] {
  const sp = findSetpriv();
  return sp === null ? [cmd, [...args]] : [sp, ['--pdeathsig', 'KILL', '--', cmd, ...args]];
}
