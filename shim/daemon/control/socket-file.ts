/**
 * The control socket's file: what may stand at its path before we bind, binding
 * without replacing anything, and removing the file only while it is still ours.
 * Owns the path; must not know what is spoken over the socket (server.ts).
 *
 * At the path we accept nothing (bind), a stale Unix socket (nobody listens:
 * removed, then bind), and nothing else: a live socket is ECONTROL_IN_USE, and a
 * regular file, directory, symbolic link, FIFO or device is ECONTROL_NOT_SOCKET
 * and is left untouched — a mistyped `--socket` must not delete what it names.
 *
 * Why the server binds a temporary name: libuv unlinks the path a Unix socket
 * server was bound to when it closes, whatever stands there by then (a restarted
 * daemon's socket, a regular file). So we bind a random name in the same
 * directory, hard-link the public name to it (link(2) fails rather than replace
 * anything that appeared meanwhile) and unlink the temporary name; libuv's unlink
 * on close then misses, and `removeSocketFile` removes the public name only if
 * it is still our inode.
 *
 * A daemon killed with SIGKILL leaves its socket file; the next start at the same path replaces it
 * (stale), but one whose `controlSocket` changed would never look at the old path. So the daemon
 * records the socket it bound (`recordSocketFile`, in its root-only runtime directory beside the
 * namespace lock) and the next start removes that very socket (same device and inode) once nobody
 * listens on it (`removeRecordedSocket`); any other file at the old path stays.
 */
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, fstatSync, linkSync, lstatSync, mkdirSync, openSync, readSync, renameSync, rmSync, unlinkSync, writeFileSync, constants, type BigIntStats } from 'node:fs';
import path from 'node:path';
import { EnvironmentError, UsageError } from '../../errors.ts';

/** sun_path holds 108 bytes with its NUL (unix(7)); Node 20 silently binds a cut-short path if longer. */
const MAX_SOCKET_PATH = 107;

/** Device and inode of the socket file we created: how we tell it from whatever replaced it. */
export interface SocketFileId { readonly dev: bigint; readonly ino: bigint }

function lstatIfAny(p: string): BigIntStats | undefined {
  try {
    return lstatSync(p, { bigint: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

function kindOf(st: BigIntStats): string {
  if (st.isFile()) return 'a regular file';
  if (st.isDirectory()) return 'a directory';
  if (st.isSymbolicLink()) return 'a symbolic link';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  return 'not a Unix socket';
}

/**
 * The host refused to make the socket file (its directory cannot be made or written: permission,
 * a read-only file system, a file on the path): ECONTROL_BIND naming the socket the user gave,
 * never our temporary name beside it.
 */
function cannotBind(socketPath: string, err: unknown): EnvironmentError {
  const e = err as NodeJS.ErrnoException;
  const reason = e.code === 'EACCES' || e.code === 'EPERM' ? 'permission denied' : e.code === 'EROFS' ? 'read-only file system'
    : e.code === 'ENOTDIR' ? 'a path component is not a directory' : e.message;
  return new EnvironmentError('ECONTROL_BIND', `cannot make the control socket ${socketPath}: ${reason}${e.code ? ` (${e.code})` : ''}`, socketPath);
}

function inUse(socketPath: string, why: string): EnvironmentError {
  return new EnvironmentError('ECONTROL_IN_USE', `control socket ${socketPath} is in use: ${why}`, socketPath);
}

/**
 * What connecting to a socket file says: `live` (accepted, or EAGAIN: listening
 * with a full backlog), `stale` (ECONNREFUSED: nobody listens), `gone` (removed
 * meanwhile), or the errno that leaves us unsure (EACCES: another user's socket).
 */
function probe(socketPath: string): Promise<string> {
  return new Promise((resolve) => {
    const c = net.connect(socketPath);
    c.once('connect', () => { c.destroy(); resolve('live'); });
    c.once('error', (e: NodeJS.ErrnoException) => {
      const code = e.code ?? 'error';
      resolve(code === 'ECONNREFUSED' ? 'stale' : code === 'ENOENT' ? 'gone' : code === 'EAGAIN' ? 'live' : code);
    });
  });
}

/**
 * Make `socketPath` free for a new socket, removing only a stale Unix socket.
 * Throws ECONTROL_NOT_SOCKET (EnvironmentError) for anything that is not a socket
 * and ECONTROL_IN_USE (EnvironmentError) for a socket that may be live.
 */
export async function clearSocketPath(socketPath: string): Promise<void> {
  let st: BigIntStats | undefined;
  try { st = lstatIfAny(socketPath); } catch (err) { throw cannotBind(socketPath, err); }
  if (!st) return;
  if (!st.isSocket()) {
    throw new EnvironmentError('ECONTROL_NOT_SOCKET', `control socket path ${socketPath} is ${kindOf(st)}, not a Unix socket; left untouched (remove it yourself or choose another path)`, socketPath);
  }
  const state = await probe(socketPath);
  if (state === 'gone') return;
  if (state === 'live') throw inUse(socketPath, 'a running process accepts connections on it');
  if (state !== 'stale') throw inUse(socketPath, `connecting to it failed with ${state}, so it may be live; left untouched`);
  const again = lstatIfAny(socketPath);
  // Remove only the very file we probed; anything that took its place meets link(2) in bindSocketFile.
  if (again && again.dev === st.dev && again.ino === st.ino) unlinkSync(socketPath);
}

/**
 * Why `socketPath` cannot be a control socket: too long for a Unix socket path, counting the
 * temporary name beside it (bindSocketFile); undefined when it fits. The daemon's config
 * refuses such a `controlSocket` (config.ts), the bind any other path.
 */
export function socketPathProblem(socketPath: string): string | undefined {
  const tmp = path.join(path.dirname(socketPath), '.ctl-00000000');
  if (Buffer.byteLength(socketPath) <= MAX_SOCKET_PATH && Buffer.byteLength(tmp) <= MAX_SOCKET_PATH) return undefined;
  return `too long for a Unix socket path (with the temporary name .ctl-XXXXXXXX beside it, at most ${MAX_SOCKET_PATH} octets)`;
}

/**
 * Bind `server` and publish it at `socketPath`, mode 0600 from the start; the
 * path must be free (clearSocketPath). A file that appeared meanwhile is never
 * replaced: that is ECONTROL_IN_USE; a directory the host will not let us make or
 * write, ECONTROL_BIND.
 */
export async function bindSocketFile(server: net.Server, socketPath: string): Promise<SocketFileId> {
  const dir = path.dirname(socketPath);
  const tmp = path.join(dir, `.ctl-${randomBytes(4).toString('hex')}`);
  const why = socketPathProblem(socketPath);
  if (why !== undefined) throw new UsageError('ECONTROL_PATH', `control socket path ${socketPath}: ${why}`, '--socket');
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    // The bind inside listen() is synchronous, so the process-wide umask is narrowed only around that call.
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      const oldMask = process.umask(0o177);
      try {
        server.listen(tmp, () => { server.off('error', reject); resolve(); });
      } finally {
        process.umask(oldMask);
      }
    });
  } catch (err) {
    throw cannotBind(socketPath, err);
  }
  try {
    chmodSync(tmp, 0o600);
    linkSync(tmp, socketPath);
  } catch (err) {
    await new Promise<void>((resolve) => server.close(() => resolve())); // libuv unlinks tmp
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw inUse(socketPath, 'another file appeared at the path while we started');
    throw err;
  }
  unlinkSync(tmp);
  const st = lstatSync(socketPath, { bigint: true });
  return { dev: st.dev, ino: st.ino };
}

/**
 * Remove `socketPath` if it is still the socket file `id`; someone else's file
 * stays. Never throws (a stop must go on): false when nothing was removed.
 */
export function removeSocketFile(socketPath: string, id: SocketFileId): boolean {
  try {
    const st = lstatIfAny(socketPath);
    if (!st || !st.isSocket() || st.dev !== id.dev || st.ino !== id.ino) return false;
    unlinkSync(socketPath);
    return true;
  } catch {
    return false;
  }
}

/** What the daemon records of its control socket (recordSocketFile). */
interface SocketRecord { path: string; dev: string; ino: string }

/**
 * Record, in `record`, that the control socket at `socketPath` is the file `id`: the next start
 * removes it if a SIGKILL left it (removeRecordedSocket). Written to a temp file and renamed.
 * Never throws (a full or read-only runtime directory leaves no record): the error's message, or
 * undefined when written.
 */
export function recordSocketFile(record: string, socketPath: string, id: SocketFileId): string | undefined {
  const tmp = `${record}.${process.pid}.tmp`;
  try {
    const data: SocketRecord = { path: path.resolve(socketPath), dev: String(id.dev), ino: String(id.ino) };
    writeFileSync(tmp, JSON.stringify(data) + '\n', { mode: 0o600, flag: 'w' });
    renameSync(tmp, record);
    return undefined;
  } catch (err) {
    rmSync(tmp, { force: true });
    return (err as Error).message;
  }
}

/** Remove the record a clean stop leaves no reason for. Never throws. */
export function forgetSocketRecord(record: string): void {
  try { rmSync(record, { force: true }); } catch { /* a read-only runtime directory: the next start finds the socket gone */ }
}

/** The record at `record` (a regular file of at most 4 KiB, not followed through a link), undefined when absent or unreadable. */
function readRecord(record: string): SocketRecord | undefined {
  let fd: number;
  try { fd = openSync(record, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK); } catch { return undefined; }
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || st.size > 4096) return undefined;
    const buf = Buffer.alloc(4096);
    const n = readSync(fd, buf, 0, buf.length, 0);
    const r = JSON.parse(buf.subarray(0, n).toString('utf8')) as Partial<SocketRecord> | null;
    if (typeof r?.path !== 'string' || !path.isAbsolute(r.path) || !/^\d{1,20}$/.test(String(r.dev)) || !/^\d{1,20}$/.test(String(r.ino))) return undefined;
    return { path: r.path, dev: String(r.dev), ino: String(r.ino) };
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/** What removeRecordedSocket did with the socket file a previous daemon recorded at another path. */
export interface RecordedSocketOutcome {
  path: string;
  /** `removed`: the previous daemon's socket, nobody listening; `gone`: nothing there any more; `replaced`: another file stands there (left); `live`: someone listens on it (left). */
  outcome: 'removed' | 'gone' | 'replaced' | 'live';
}

/**
 * The control socket a previous daemon of this namespace recorded in `record` (recordSocketFile),
 * when it is at another path than `current` (the same path is clearSocketPath's): removed if it is
 * still that very socket file (device and inode) and nobody listens on it; left otherwise. The
 * record is removed. Undefined when there is no record, or it names `current`. Never throws.
 */
export async function removeRecordedSocket(record: string, current: string): Promise<RecordedSocketOutcome | undefined> {
  const r = readRecord(record);
  forgetSocketRecord(record);
  if (r === undefined || r.path === path.resolve(current)) return undefined;
  try {
    const st = lstatIfAny(r.path);
    if (st === undefined) return { path: r.path, outcome: 'gone' };
    if (!st.isSocket() || String(st.dev) !== r.dev || String(st.ino) !== r.ino) return { path: r.path, outcome: 'replaced' };
    const state = await probe(r.path);
    if (state === 'gone') return { path: r.path, outcome: 'gone' };
    if (state !== 'stale') return { path: r.path, outcome: 'live' };
    return { path: r.path, outcome: removeSocketFile(r.path, st) ? 'removed' : 'replaced' };
  } catch {
    return { path: r.path, outcome: 'live' };
  }
}
