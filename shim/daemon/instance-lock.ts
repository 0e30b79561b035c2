/**
 * One `shim6 daemon` per network namespace. Its routes (tables 5533, 5534), rules
 * (preferences 5532–5534) and nftables tables have fixed names in the
 * namespace, and a start removes what "a crashed daemon" left of them: a second
 * daemon must be refused before it touches any of it, or its refused start
 * takes the running one's data plane down (found by a sysadmin's review).
 *
 * The claim is a lock (flock) on a file named after the network namespace
 * (the inode of /proc/self/ns/net) in the runtime directory
 * (`$RUNTIME_DIRECTORY`, which systemd sets for `RuntimeDirectory=shim6`, else
 * /run/shim6), which must be root's alone: no other user can take the lock
 * first. The kernel releases it when the process ends, killed with SIGKILL
 * too. The file holds the holder's pid, for the refusal's message. Node has no
 * flock: util-linux's `flock` takes it on the daemon's own open file (fd 3 of
 * the child), and the lock belongs to that open file, so it lasts until the
 * daemon closes it or ends.
 *
 * Beside it, the abstract Unix socket name of earlier versions, so that a
 * daemon of those (which knows only the name) and this one refuse each other.
 * Abstract names carry no permissions: any user may bind the name first. A
 * holder of the name is found by its socket's inode (/proc/net/unix, then
 * /proc/<pid>/fd); one running as root or as this daemon's user is a daemon
 * (refused), any other user's is a squatter: logged, and ignored, since the
 * lock already keeps one daemon per namespace.
 *
 * Owns the claim. Must not know what the daemon sets up.
 */
import net from 'node:net';
import { spawnSync } from 'node:child_process';
import { closeSync, constants, fstatSync, ftruncateSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, readSync, rmSync, statSync, writeSync } from 'node:fs';
import path from 'node:path';
import { EnvironmentError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { untrustedReason } from '../trusted-path.ts';

/** The abstract name (Node writes a leading NUL as the abstract namespace). */
export const INSTANCE_SOCKET = '\0shim6-daemon';

/** The runtime directory: systemd's `RuntimeDirectory=` (`$RUNTIME_DIRECTORY`), else /run/shim6. */
export function defaultRuntimeDirectory(env: NodeJS.ProcessEnv = process.env): string {
  const first = env.RUNTIME_DIRECTORY?.split(':')[0];
  return first && path.isAbsolute(first) ? first : '/run/shim6';
}

export interface InstanceClaim {
  /** The lock file (`daemon-netns-<inode>.lock`): files of this namespace's daemon go beside it, in the root-only runtime directory. */
  readonly lockFile: string;
  release(): void;
}

export interface ClaimOptions {
  /** Where the lock file is (default defaultRuntimeDirectory()); tests use their own. */
  lockDir?: string;
  /** Where a squatter of the abstract name is reported. */
  log?: Logger;
}

function running(pid: number | undefined): EnvironmentError {
  return new EnvironmentError('EDAEMON_RUNNING', `another shim6 daemon runs in this network namespace${pid === undefined ? '' : ` (pid ${pid})`}: there is one per namespace (its routes, rules and nftables tables have fixed names); nothing was changed`);
}

/** The pid a lock file holds, undefined when it holds none (yet). */
function lockHolder(fd: number): number | undefined {
  const buf = Buffer.alloc(16);
  const n = readSync(fd, buf, 0, buf.length, 0);
  const text = buf.subarray(0, n).toString('latin1');
  return /^\d{1,10}\n$/.test(text) ? Number(text) : undefined;
}

/** The lock of this network namespace, or EDAEMON_RUNNING (another process holds it) or EDAEMON_LOCK (it cannot be taken here). */
function lockNamespace(dir: string): { fd: number; file: string } {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o750 });
  } catch (err) {
    throw new EnvironmentError('EDAEMON_LOCK', `cannot make ${dir} for the one-daemon-per-namespace lock: ${(err as Error).message}`, dir);
  }
  const why = untrustedReason(dir, { kind: 'directory' });
  if (why) throw new EnvironmentError('EDAEMON_LOCK', `${why}: the one-daemon-per-namespace lock is kept only where no other user can change it (${dir})`, dir);
  const file = path.join(dir, `daemon-netns-${statSync('/proc/self/ns/net').ino}.lock`);
  // A holder removes the file as it releases the lock: a lock taken on a file that is no longer at
  // the path (opened just before) is no lock, and the file at the path is tried again.
  for (let attempt = 0; attempt < 8; attempt++) {
    const fd = openSync(file, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
    try {
      const r = spawnSync('flock', ['--nonblock', '--conflict-exit-code', '100', '3'], { stdio: ['ignore', 'ignore', 'pipe', fd], encoding: 'utf8', timeout: 10_000 });
      if (r.status === 100) throw running(lockHolder(fd));
      if (r.status !== 0) throw new EnvironmentError('EDAEMON_LOCK', `cannot lock ${file} (flock, util-linux): ${r.error?.message ?? (r.stderr.trim() || `exit ${r.status}`)}`, file);
      const here = lstatSync(file, { throwIfNoEntry: false });
      const locked = fstatSync(fd);
      if (here !== undefined && here.ino === locked.ino && here.dev === locked.dev) {
        ftruncateSync(fd, 0);
        // The pid only names the holder in a refusal: a full runtime directory (/run is a small
        // tmpfs) leaves the file empty, and the lock still is the claim.
        try { writeSync(fd, `${process.pid}\n`, 0); } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code !== 'ENOSPC' && code !== 'EDQUOT') throw err;
        }
        return { fd, file };
      }
    } catch (err) {
      closeSync(fd);
      throw err;
    }
    closeSync(fd);
  }
  throw new EnvironmentError('EDAEMON_LOCK', `${file} kept being replaced while it was locked`, file);
}

/** A process holding a socket bound to the abstract name, with its real and effective uids. */
export interface NameHolder { pid: number; uid: number; euid: number }

/**
 * The processes holding a stream socket bound to the abstract `name` in this network namespace
 * (/proc/net/unix lists the sockets and their inodes; /proc/<pid>/fd links to them). Empty when
 * none can be seen (a holder in a pid namespace this one does not see).
 */
export function abstractNameHolders(name: string): NameHolder[] {
  // /proc/net/unix shows each NUL of the name as @; Node binds an abstract name padded with NULs to
  // the whole sun_path, so a name is the same with or without @s after it.
  const shown = `@${name.slice(1)}`;
  const inodes = new Set<string>();
  for (const line of readFileSync('/proc/net/unix', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    // Num RefCount Protocol Flags Type St Inode Path; Type 0001: SOCK_STREAM
    const p = f.slice(7).join(' ');
    if (f.length >= 8 && f[4] === '0001' && p.startsWith(shown) && /^@*$/.test(p.slice(shown.length))) inodes.add(f[6]!);
  }
  const holders: NameHolder[] = [];
  if (inodes.size === 0) return holders;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let fds: string[];
    try { fds = readdirSync(`/proc/${entry}/fd`); } catch { continue; } // gone, or not ours to read
    const holds = fds.some((fd) => {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${entry}/fd/${fd}`));
        return m !== null && inodes.has(m[1]!);
      } catch {
        return false;
      }
    });
    if (!holds) continue;
    try {
      const uids = /^Uid:\s+(\d+)\s+(\d+)/m.exec(readFileSync(`/proc/${entry}/status`, 'utf8'));
      if (uids) holders.push({ pid: Number(entry), uid: Number(uids[1]), euid: Number(uids[2]) });
    } catch { /* gone meanwhile */ }
  }
  return holders;
}

/** A holder that may be a daemon: root, or the user this daemon runs as. */
function mayBeDaemon(h: NameHolder): boolean {
  const me = process.geteuid?.() ?? 0;
  return [h.uid, h.euid].some((u) => u === 0 || u === me);
}

/**
 * Claim this network namespace for this daemon, or EnvironmentError EDAEMON_RUNNING (with the
 * running daemon's pid) and nothing changed. `name`: tests only.
 */
export async function claimNamespace(name = INSTANCE_SOCKET, opts: ClaimOptions = {}): Promise<InstanceClaim> {
  const lock = lockNamespace(opts.lockDir ?? defaultRuntimeDirectory());
  const unlock = (): void => { rmSync(lock.file, { force: true }); closeSync(lock.fd); };
  let server: net.Server | undefined = net.createServer((c) => { c.on('error', () => c.destroy()); c.end(`${process.pid}\n`); });
  try {
    await new Promise<void>((resolve, reject) => {
      server!.once('error', reject);
      server!.listen({ path: name }, () => { server!.off('error', reject); resolve(); });
    });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') { unlock(); throw err; }
    const holders = abstractNameHolders(name);
    const daemon = holders.find(mayBeDaemon);
    if (daemon !== undefined || holders.length === 0) { unlock(); throw running(daemon?.pid); }
    opts.log?.warn('the one-daemon name is held by a process of another user: ignored (the lock keeps one daemon per namespace)', {
      name: `@${name.slice(1)}`, pids: holders.map((h) => h.pid), uids: [...new Set(holders.map((h) => h.uid))], lock: lock.file,
    });
    server = undefined;
  }
  server?.unref();
  let held = true;
  return { lockFile: lock.file, release: () => { if (held) { held = false; server?.close(); unlock(); } } };
}
