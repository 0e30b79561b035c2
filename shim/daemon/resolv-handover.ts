/**
 * The DNS hand-over (config `resolvConf: manage`, flag `--manage-resolv-conf`):
 * point the host's lookups at the stub while shim6 runs, and give the host its
 * own configuration back, byte for byte, when it stops — on a clean stop, on
 * SIGTERM, and at the next start after a crash (kill -9), from the copy saved
 * in the state directory before anything was changed.
 *
 * Two ways, chosen at start:
 * - `resolved`: systemd-resolved runs and there is a link to hang the stub on
 *   (the daemon's TUN): per-link DNS on that link with the `~.` routing domain
 *   (`resolvectl dns / domain / default-route`), as wg-quick does; undone with
 *   `resolvectl revert` (and by the kernel: the link goes with the daemon).
 * - `file`: /etc/resolv.conf is replaced by one naming the stub (its search,
 *   domain and options lines kept). The original — a regular file (content,
 *   mode, owner), a symbolic link (its target: resolved's stub file stays the
 *   same link), or nothing — is saved first. A file that cannot be replaced
 *   by rename (a bind mount, a read-only /etc with only the file writable) is
 *   rewritten in place.
 *
 * Owns the state file and its format; does not know the stub or the engine.
 * Every outside input (the state file, the host's resolv.conf) is bounded.
 */
import { closeSync, fsyncSync, lstatSync, openSync, readFileSync, readlinkSync, renameSync, rmSync, symlinkSync, writeFileSync, readSync, chmodSync, chownSync, mkdirSync, ftruncateSync, linkSync, statSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { writeAllSync } from './write-all.ts';
import { removeOrphanedTemps } from './orphan-temps.ts';
import { networkNamespaceName } from './netns-name.ts';
import path from 'node:path';
import { badValueCode, EnvironmentError, UsageError } from '../errors.ts';
import { hostPort, type Logger } from '../log.ts';
import type { SystemResolvers } from '../../resolver/config.ts';

export const RESOLV_CONF_PATH = '/etc/resolv.conf';
/**
 * The state directory: systemd's `StateDirectory=` (`$STATE_DIRECTORY`), else /var/lib/shim6; in
 * it netns/<name> when this named network namespace has a resolv.conf of its own (namespaceResolvConf).
 */
export function defaultStateDirectory(env: NodeJS.ProcessEnv = process.env, namespace = networkNamespaceName()): string {
  const first = env.STATE_DIRECTORY?.split(':')[0];
  const base = first && path.isAbsolute(first) ? first : '/var/lib/shim6';
  return namespace !== undefined && namespaceResolvConf(namespace) ? path.join(base, 'netns', namespace) : base;
}

/**
 * Whether /etc/resolv.conf here is the network namespace's own, /etc/netns/<name>/resolv.conf
 * (`ip netns exec` binds it there): its hand-over is then the namespace's, kept apart from the
 * host's and other namespaces' (before, one resolv-handover.json for all refused the second
 * namespace's; and after a crash another namespace's start took the state for its own file and
 * set it aside, the crashed one's resolv.conf left naming a dead stub). A namespace that
 * shares the host's resolv.conf (`nsenter --net`, or no such file) shares its hand-over too: one
 * file, one manager.
 */
function namespaceResolvConf(namespace: string): boolean {
  try {
    const here = statSync(RESOLV_CONF_PATH);
    const own = statSync(path.join('/etc/netns', namespace, 'resolv.conf'));
    return here.ino === own.ino && here.dev === own.dev;
  } catch {
    return false;
  }
}
/** The saved original and what was done, in the state directory. */
export const STATE_FILE = 'resolv-handover.json';
/** The first line of every resolv.conf shim6 writes: such a file is never saved as an original. */
const WRITTEN_BY_SHIM6 = '# Written by shim6';
/** resolv.conf files larger than this are not ours to copy (real ones are a few hundred octets). */
const MAX_RESOLV_CONF = 64 * 1024;
/** The resolver library reads at most three nameserver lines. */
const MAX_NAMESERVERS = 3;

export type ResolvConfMode = 'manage' | 'off';
export const RESOLV_CONF_MODES: readonly ResolvConfMode[] = ['manage', 'off'];

/** What stood at the resolv.conf path before the hand-over. */
type Original =
  | { kind: 'file'; content: string /* base64 */; mode: number; uid: number; gid: number }
  | { kind: 'symlink'; target: string }
  | { kind: 'absent' };

interface FileState {
  version: 1;
  how: 'file';
  pid: number;
  /** /proc/<pid>/stat start time: a pid alone may be reused after a crash. */
  startTime: string;
  path: string;
  original: Original;
  /** What we wrote (base64): restored only while the file still holds it. */
  written: string;
}
interface ResolvedState {
  version: 1;
  how: 'resolved';
  pid: number;
  startTime: string;
  link: string;
}
type State = FileState | ResolvedState;

/** Where a stub listens, as resolver/ and the daemon's config give it. */
export interface StubAddress { host: string; port: number }

/**
 * The addresses resolv.conf (or resolved) can name for the stub: listen
 * addresses on port 53 (a wildcard becomes its loopback). resolv.conf has no
 * ports: a stub on any other port only cannot be named, which is a mistake
 * found before anything starts (exit 2): ECONFIG naming the key `resolvConf`,
 * EINVALID naming the flag `--manage-resolv-conf` (`field`).
 */
export function stubNameservers(listen: readonly StubAddress[], field = 'resolvConf'): string[] {
  const code = badValueCode(field);
  if (listen.length === 0) throw new UsageError(code, `${field}: manage needs the stub resolver, and listen is empty`, field);
  const on53 = listen.filter((l) => l.port === 53);
  if (on53.length === 0) {
    const where = listen.map((l) => hostPort(l.host, l.port)).join(', ');
    const off = field.startsWith('--') ? `leave out ${field}` : 'set resolvConf: off';
    throw new UsageError(code, `${field}: manage cannot name the stub at ${where} in /etc/resolv.conf, which has no ports: listen on port 53, or ${off} and point the host at it another way`, field);
  }
  const names = on53.map((l) => (l.host === '0.0.0.0' ? '127.0.0.1' : l.host === '::' ? '::1' : l.host));
  return [...new Set(names)].slice(0, MAX_NAMESERVERS);
}


export interface HandoverOptions {
  /** Stub addresses for resolv.conf (stubNameservers). */
  nameservers: string[];
  /** The link for systemd-resolved's per-link DNS (the daemon's TUN); absent: always the file. */
  link?: string | undefined;
  stateDir: string;
  /** The file to manage (tests in a mount namespace use the real path; default /etc/resolv.conf). */
  resolvConf?: string;
  /** The resolvectl program (default `resolvectl` on PATH). */
  resolvectl?: string;
  log: Logger;
}

/**
 * How the hand-over would be done here: through systemd-resolved when it runs,
 * the host's resolv.conf goes to it (resolved's stub 127.0.0.53/54, or a link
 * into /run/systemd/resolve/) and there is a link to hang the stub on; else
 * the file.
 */
export function handoverMethod(link: string | undefined, resolvectl = 'resolvectl', file = RESOLV_CONF_PATH): 'resolved' | 'file' {
  if (link === undefined || !usesResolved(file)) return 'file';
  return resolvedRuns(resolvectl) ? 'resolved' : 'file';
}

function usesResolved(file: string): boolean {
  try {
    if (lstatSync(file).isSymbolicLink() && path.resolve(path.dirname(file), readlinkSync(file)).startsWith('/run/systemd/resolve/')) return true;
  } catch {
    return false;
  }
  return /^\s*nameserver\s+127\.0\.0\.5[34]\s*$/m.test(readBounded(file));
}

/** systemd-resolved answers on the bus (`resolvectl status` succeeds). */
export function resolvedRuns(resolvectl = 'resolvectl'): boolean {
  const r = spawnSync(resolvectl, ['--no-pager', 'status'], { stdio: 'ignore', timeout: 10_000 });
  return r.status === 0;
}

/**
 * The host's lookups, handed to the stub; `restore()` gives them back. Made
 * by `ResolvHandover.apply` once the stub answers (if it fails to start,
 * nothing was changed).
 */
export class ResolvHandover {
  private restored = false;
  private constructor(private readonly state: State, private readonly opts: HandoverOptions) {}

  /**
   * Save the original, then point the host at the stub. Refuses
   * (`ERESOLVCONF_BUSY`) while another live shim6 holds a hand-over; any
   * failure after the save undoes what was done.
   */
  static apply(opts: HandoverOptions): ResolvHandover {
    const file = opts.resolvConf ?? RESOLV_CONF_PATH;
    const stateFile = path.join(opts.stateDir, STATE_FILE);
    assertHandoverFree(opts.stateDir);
    if (readState(stateFile)) recover(opts.stateDir, opts.log, opts.resolvectl); // a crash left it: the original first
    const me = { pid: process.pid, startTime: procStartTime(process.pid) ?? '' };
    if (handoverMethod(opts.link, opts.resolvectl, file) === 'resolved') {
      const state: ResolvedState = { version: 1, how: 'resolved', ...me, link: opts.link! };
      saveState(opts.stateDir, state);
      const rc = opts.resolvectl ?? 'resolvectl';
      try {
        run(rc, ['dns', state.link, ...opts.nameservers]);
        run(rc, ['domain', state.link, '~.']);
        // default-route is newer (systemd 240); `~.` already makes the link a default route.
        spawnSync(rc, ['default-route', state.link, 'yes'], { stdio: 'ignore', timeout: 10_000 });
      } catch (err) {
        spawnSync(rc, ['revert', state.link], { stdio: 'ignore', timeout: 10_000 });
        rmSync(stateFile, { force: true });
        throw err;
      }
      opts.log.info('DNS handed over to systemd-resolved', { link: state.link, dns: opts.nameservers, domain: '~.' });
      return new ResolvHandover(state, opts);
    }
    const original = readOriginal(file);
    // A symlink's target (resolved's stub file) has the search domains: keep them too.
    const text = original.kind === 'file' ? Buffer.from(original.content, 'base64').toString('utf8') : original.kind === 'symlink' ? readBounded(file) : '';
    if (text.startsWith(WRITTEN_BY_SHIM6)) {
      // A hand-over whose state is gone (another state directory, a state directory removed): what
      // was there before is unknown, and this file names a stub that may be dead.
      throw new EnvironmentError('ERESOLVCONF', `${file} is one shim6 wrote (it begins "${WRITTEN_BY_SHIM6}"), and no hand-over state in ${opts.stateDir} says what was there before: not saved as the original; put the host's own resolv.conf back (or stop the shim6 that wrote it), then start again`, file);
    }
    const written = resolvConfText(opts.nameservers, text, opts.stateDir);
    const state: FileState = { version: 1, how: 'file', ...me, path: file, original, written: Buffer.from(written).toString('base64') };
    saveState(opts.stateDir, state);
    try {
      writeResolvConf(file, Buffer.from(written), original.kind === 'file' ? original : { mode: 0o644, uid: 0, gid: 0 });
    } catch (err) {
      // An in-place write cut short leaves the file empty or partial: the original back, as a
      // restore puts it (the state goes only once it is back; else it stays for the next start).
      const why = `cannot write ${file}: ${(err as Error).message}`;
      try {
        undo(state, opts.stateDir, opts.log, opts.resolvectl);
      } catch (undoErr) {
        throw new EnvironmentError('ERESOLVCONF', `${why}; ${(undoErr as Error).message}`, file);
      }
      throw new EnvironmentError('ERESOLVCONF', why, file);
    }
    opts.log.info('DNS handed over: resolv.conf names the stub', { file, nameservers: opts.nameservers, was: original.kind === 'symlink' ? `symlink to ${original.target}` : original.kind, saved: stateFile });
    return new ResolvHandover(state, opts);
  }

  /** Give the host its DNS configuration back (idempotent). */
  restore(): void {
    if (this.restored) return;
    this.restored = true;
    undo(this.state, this.opts.stateDir, this.opts.log, this.opts.resolvectl);
  }
}

/** Throws `ERESOLVCONF_BUSY` while another live shim6 holds a hand-over (checked before anything starts). */
export function assertHandoverFree(stateDir: string): void {
  const stateFile = path.join(stateDir, STATE_FILE);
  const held = readState(stateFile);
  if (held && held.pid !== process.pid && processAlive(held.pid, held.startTime)) {
    throw new EnvironmentError('ERESOLVCONF_BUSY', `another shim6 (pid ${held.pid}) has the host's DNS handed over (${stateFile}): stop it first, or run this one with resolvConf: off`, stateFile);
  }
}

/**
 * The host's resolver files as a start would read them (`--check-config`): while resolv.conf is
 * one shim6 wrote (a running daemon's hand-over, or one a killed daemon left, which the start
 * gives back first), the original saved in `stateDir` stands for it, since the stub's upstreams
 * come from there, not from the stub's own address.
 */
export function resolversAsAtStart(stateDir: string, sys: SystemResolvers): SystemResolvers {
  let state: State | undefined;
  try {
    state = readState(path.join(stateDir, STATE_FILE));
  } catch {
    return sys; // a damaged state: the start ignores it too
  }
  if (state?.how !== 'file' || !sys.resolvConf?.startsWith(WRITTEN_BY_SHIM6)) return sys;
  const o = state.original;
  if (o.kind === 'file') return { ...sys, resolvConf: Buffer.from(o.content, 'base64').toString('utf8') };
  if (o.kind === 'absent') return { ...sys, resolvConf: '' };
  try {
    return { ...sys, resolvConf: readFileSync(path.resolve(path.dirname(state.path), o.target), 'utf8') };
  } catch {
    return sys;
  }
}

/**
 * At start: a hand-over left by a shim6 that is gone (killed, crashed) is
 * undone — the original put back — before anything reads resolv.conf. One of
 * a live process is left alone. Returns true when something was restored.
 */
export function recover(stateDir: string, log: Logger, resolvectl?: string): boolean {
  const stateFile = path.join(stateDir, STATE_FILE);
  let state: State | undefined;
  try {
    state = readState(stateFile);
  } catch (err) {
    log.warn('ignoring an unreadable DNS hand-over state file', { file: stateFile, error: (err as Error).message });
    return false;
  }
  if (!state || processAlive(state.pid, state.startTime)) return false;
  log.info('undoing the DNS hand-over of a shim6 that did not stop cleanly', { pid: state.pid, how: state.how });
  undo(state, stateDir, log, resolvectl);
  return true;
}

function undo(state: State, stateDir: string, log: Logger, resolvectl = 'resolvectl'): void {
  const stateFile = path.join(stateDir, STATE_FILE);
  if (state.how === 'resolved') {
    // The link may be gone already (it goes with the daemon): resolved forgets it then.
    spawnSync(resolvectl, ['revert', state.link], { stdio: 'ignore', timeout: 10_000 });
    rmSync(stateFile, { force: true });
    log.info('DNS given back: systemd-resolved link settings reverted', { link: state.link });
    return;
  }
  const file = state.path;
  const as = state.original.kind === 'symlink' ? `symlink to ${state.original.target}` : state.original.kind;
  const now = readCurrent(file);
  if (isOriginal(file, state.original, now)) {
    // A restore that stopped (killed) after putting the original back and before removing the state.
    rmSync(stateFile, { force: true });
    log.info('DNS given back: resolv.conf already holds the original', { file, as });
    return;
  }
  if (!stillOurs(state, now)) {
    // Someone else (a DHCP client, an administrator) wrote it since: theirs is newer than our copy.
    const kept = path.join(stateDir, `resolv.conf.before-shim6.${state.pid}.json`);
    try {
      renameSync(stateFile, kept);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err; // another start recovered it meanwhile
    }
    log.warn('resolv.conf was changed by someone else while shim6 ran: left as it is', { file, original: kept });
    return;
  }
  try {
    restoreOriginal(file, state.original);
  } catch (err) {
    // The state stays: the next start (recover) tries again, and the original is there to copy by hand.
    throw new EnvironmentError('ERESOLVCONF', `cannot restore ${file} (the original stays saved in ${stateFile}): ${(err as Error).message}`, file);
  }
  rmSync(stateFile, { force: true });
  log.info('DNS given back: resolv.conf restored', { file, as });
}

/** The path holds the original already: the same symlink, nothing where there was nothing, the same octets. */
function isOriginal(file: string, original: Original, now: Buffer | undefined): boolean {
  if (original.kind === 'file') return now !== undefined && now.equals(Buffer.from(original.content, 'base64'));
  let st;
  try { st = lstatSync(file); } catch (err) { return (err as NodeJS.ErrnoException).code === 'ENOENT' && original.kind === 'absent'; }
  return original.kind === 'symlink' && st.isSymbolicLink() && readlinkSync(file) === original.target;
}

/**
 * Whether resolv.conf is still shim6's to put back: it holds what shim6 wrote, or the beginning
 * of it or of the original (empty included). An in-place write truncates the file first, so a
 * write cut short (a full disk, a kill between the truncation and the end of the write, in
 * apply or in a restore) leaves exactly that, and a restore must still put the original back.
 * Anything else was written by someone else since and is left alone.
 */
function stillOurs(state: FileState, now: Buffer | undefined): boolean {
  if (now === undefined) return false;
  const isStart = (whole: Buffer): boolean => now.length <= whole.length && whole.subarray(0, now.length).equals(now);
  return isStart(Buffer.from(state.written, 'base64')) || (state.original.kind === 'file' && isStart(Buffer.from(state.original.content, 'base64')));
}

function run(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 10_000 });
  if (r.status !== 0) {
    const why = r.error ? r.error.message : (r.stderr || '').trim().slice(0, 300) || `exit ${r.status}`;
    throw new EnvironmentError('ERESOLVCONF', `${cmd} ${args.join(' ')}: ${why}`);
  }
}

/** The resolv.conf that names the stub: its nameservers, and the original's search, domain and options lines. */
export function resolvConfText(nameservers: readonly string[], original: string, stateDir: string): string {
  const kept: string[] = [];
  for (const line of original.split('\n')) {
    if (/^\s*(search|domain|options|sortlist)\s/.test(line)) kept.push(line.trimEnd());
  }
  return [
    `${WRITTEN_BY_SHIM6} (resolvConf: manage): the host's lookups go through its stub resolver.`,
    `# The original is saved in ${path.join(stateDir, STATE_FILE)} and put back when shim6 stops.`,
    ...nameservers.map((n) => `nameserver ${n}`),
    ...kept,
    '',
  ].join('\n');
}

function readOriginal(file: string): Original {
  let st;
  try {
    st = lstatSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'absent' };
    throw new EnvironmentError('ERESOLVCONF', `cannot read ${file}: ${(err as Error).message}`, file);
  }
  if (st.isSymbolicLink()) return { kind: 'symlink', target: readlinkSync(file) };
  if (!st.isFile()) throw new EnvironmentError('ERESOLVCONF', `${file} is not a regular file or a symbolic link: left alone`, file);
  if (st.size > MAX_RESOLV_CONF) throw new EnvironmentError('ERESOLVCONF', `${file} is ${st.size} octets, more than a resolv.conf holds (${MAX_RESOLV_CONF}): left alone`, file);
  return { kind: 'file', content: readFileSync(file).toString('base64'), mode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
}

/** The text at `file` (through a symlink), '' when unreadable or larger than a resolv.conf. */
function readBounded(file: string): string {
  try {
    const fd = openSync(file, 'r');
    try {
      const buf = Buffer.alloc(MAX_RESOLV_CONF);
      const n = readSync(fd, buf, 0, buf.length, 0);
      return n < buf.length ? buf.subarray(0, n).toString('utf8') : '';
    } finally {
      closeSync(fd);
    }
  } catch {
    return '';
  }
}

function readCurrent(file: string): Buffer | undefined {
  try {
    const st = lstatSync(file);
    if (!st.isFile() || st.size > MAX_RESOLV_CONF) return undefined;
    return readFileSync(file);
  } catch {
    return undefined;
  }
}

/**
 * Replace `file` with `data`: a new file renamed over it (atomic; replaces a
 * symlink itself, not its target), or, where rename cannot (a bind mount:
 * EBUSY; a read-only directory), the file rewritten in place: truncated, then
 * written whole (a short write, as on a full disk, is carried on until
 * `writeSync` fails), flushed to the disk. Either way the file is read back:
 * it holds `data` exactly, or this throws. An in-place write that fails leaves
 * the file empty or holding a beginning of `data` (undo() counts that as ours).
 */
function writeResolvConf(file: string, data: Buffer, meta: { mode: number; uid: number; gid: number }): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.shim6-${process.pid}`);
  // Those a writer killed before its rename left (a SIGKILL, a power cut): in /etc for good otherwise.
  removeOrphanedTemps(path.dirname(file), `.${path.basename(file)}.shim6-`, '');
  let renamed = false;
  try {
    writeFileSync(tmp, data, { mode: meta.mode, flag: 'wx' });
    try { chownSync(tmp, meta.uid, meta.gid); } catch { /* not root: keep ours */ }
    chmodSync(tmp, meta.mode);
    fsyncPath(tmp);
    renameSync(tmp, file);
    renamed = true;
  } catch (err) {
    rmSync(tmp, { force: true });
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EBUSY' && code !== 'EROFS' && code !== 'EACCES' && code !== 'EPERM' && code !== 'EXDEV') throw err;
    if (lstatSync(file, { throwIfNoEntry: false })?.isFile() !== true) throw err;
  }
  if (!renamed) {
    const fd = openSync(file, 'r+');
    try {
      ftruncateSync(fd, 0);
      writeAllSync(fd, data);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }
  const back = readCurrent(file);
  if (back === undefined || !back.equals(data)) {
    throw new Error(`${file} holds ${back === undefined ? 'no readable file' : `${back.length} octets`} after writing ${data.length}, not what was written`);
  }
}

function fsyncPath(p: string): void {
  const fd = openSync(p, 'r');
  try { fsyncSync(fd); } finally { closeSync(fd); }
}

function restoreOriginal(file: string, original: Original): void {
  if (original.kind === 'absent') { rmSync(file, { force: true }); return; }
  if (original.kind === 'file') {
    writeResolvConf(file, Buffer.from(original.content, 'base64'), original);
    return;
  }
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.shim6-${process.pid}`);
  rmSync(tmp, { force: true });
  symlinkSync(original.target, tmp);
  try {
    renameSync(tmp, file);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

/**
 * Take the hand-over: the state file created whole (a temp file, flushed, then linked to its name,
 * which fails when the name exists), so that of two managers that both found it free only one
 * takes it; the other gets ERESOLVCONF_BUSY and has changed nothing.
 */
function saveState(dir: string, state: State): void {
  const file = path.join(dir, STATE_FILE);
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    mkdirSync(dir, { recursive: true, mode: 0o750 });
    writeFileSync(tmp, JSON.stringify(state) + '\n', { mode: 0o600 });
    fsyncPath(tmp);
    linkSync(tmp, file);
    fsyncPath(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      let held: State | undefined;
      try { held = readState(file); } catch { /* damaged: its pid is unknown */ }
      throw new EnvironmentError('ERESOLVCONF_BUSY', `another shim6${held ? ` (pid ${held.pid})` : ''} took the host's DNS hand-over meanwhile (${file}): stop it first, or run this one with resolvConf: off`, file);
    }
    throw new EnvironmentError('ERESOLVCONF', `cannot save the DNS configuration in ${dir} before changing it: ${(err as Error).message}`, dir);
  } finally {
    rmSync(tmp, { force: true });
  }
}

/** The state file, validated (outside input: a damaged file is refused whole). */
function readState(file: string): State | undefined {
  let text: string;
  try {
    const st = lstatSync(file);
    if (!st.isFile()) throw new EnvironmentError('ERESOLVCONF', `${file} is not a regular file`, file);
    if (st.size > 4 * MAX_RESOLV_CONF) throw new EnvironmentError('ERESOLVCONF', `${file} is too large to be a hand-over state`, file);
    text = readFileSync(file, 'utf8');
  } catch (err) {
    // ENOENT: no hand-over. EACCES: a state directory this user may not read (`shim6 resolver`
    // unprivileged): not its hand-over either; one it tries to make fails on the save, clearly.
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'EACCES') return undefined;
    if (err instanceof EnvironmentError) throw err;
    throw new EnvironmentError('ERESOLVCONF', `cannot read ${file}: ${(err as Error).message}`, file);
  }
  const s = parseState(text);
  if (!s) throw new EnvironmentError('ERESOLVCONF', `${file} is not a shim6 DNS hand-over state: move it away`, file);
  return s;
}

/** A state file's text as a State, or undefined when it is not one. */
export function parseState(text: string): State | undefined {
  let d: unknown;
  try { d = JSON.parse(text); } catch { return undefined; }
  if (typeof d !== 'object' || d === null) return undefined;
  const o = d as Record<string, unknown>;
  if (o.version !== 1 || !Number.isInteger(o.pid) || (o.pid as number) <= 0 || typeof o.startTime !== 'string') return undefined;
  if (o.how === 'resolved') {
    return typeof o.link === 'string' && /^[A-Za-z0-9_.@-]{1,15}$/.test(o.link) ? (o as unknown as ResolvedState) : undefined;
  }
  if (o.how !== 'file' || typeof o.path !== 'string' || !path.isAbsolute(o.path) || typeof o.written !== 'string') return undefined;
  const orig = o.original as Record<string, unknown> | null;
  if (typeof orig !== 'object' || orig === null) return undefined;
  const okFile = orig.kind === 'file' && typeof orig.content === 'string' && [orig.mode, orig.uid, orig.gid].every((n) => Number.isInteger(n) && (n as number) >= 0);
  const okLink = orig.kind === 'symlink' && typeof orig.target === 'string' && orig.target.length > 0 && orig.target.length < 4096 && !orig.target.includes('\0');
  if (!okFile && !okLink && orig.kind !== 'absent') return undefined;
  return o as unknown as FileState;
}

/** Field 22 of /proc/<pid>/stat (start time in clock ticks), undefined when there is no such process. */
function procStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may hold spaces: count after the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function processAlive(pid: number, startTime: string): boolean {
  const now = procStartTime(pid);
  return now !== undefined && (startTime === '' || now === startTime);
}
