/**
 * The daemon's glue between the resolver, the engine and the disk:
 * `EngineSink` adapts the resolver's CapabilitySink to `Engine.prime` and
 * `Engine.absent` (DNS said "no record"), always with the driver's
 * clock (the resolver's own clock is a different, monotonic one);
 * `loadCaches` / `saveCaches` keep the capability caches across restarts in
 * the cache file (written atomically, mode 0600).
 */
import { closeSync, constants, fstatSync, fsyncSync, mkdirSync, openSync, readSync, renameSync, rmSync, statSync, utimesSync } from 'node:fs';
import { removeOrphanedTemps } from './orphan-temps.ts';
import { writeAllSync } from './write-all.ts';
import path from 'node:path';
import type { Millis } from '../time.ts';
import { canonicalIpv6, formatIpv6Octets, type Ipv6 } from '../wire/ipv6.ts';
import type { Logger } from '../log.ts';
import { nameKeyToText, type CapabilitySink, type Ipv6Octets, type RecordOctets } from '../../resolver/capability-sink.ts';
import { recordFromOctets } from '../wire/capability-record.ts';
import type { Engine } from '../engine/index.ts';
import type { CacheSnapshot } from '../engine/capability.ts';

/** ULIDs whose DNS name is remembered (the most recently primed). */
const NAMES_MAX = 4096;

/** Primes the engine from DNS; tells it which names DNS has no record for. */
export class EngineSink implements CapabilitySink {
  primes = 0;
  absents = 0;
  /**
   * Peer ULID → the name whose record gave it, for status: the resolver's own entry goes with
   * the record's TTL while the context lives on. The last NAMES_MAX primed, oldest dropped first.
   */
  private readonly names = new Map<string, string>();

  constructor(
    private readonly run: (fn: (engine: Engine, now: Millis) => void) => void,
    private readonly log: Logger,
  ) {}

  prime(_resolverNow: Millis, octets: RecordOctets, ttlSeconds: number, nameKey: string): void {
    this.primes++;
    const record = recordFromOctets(octets);
    const locators = record.locators.map((l) => ({ address: l.address, flags: l.flags, priority: l.priority, weight: l.weight }));
    const name = nameKeyToText(nameKey);
    this.log.info('prime', { name, ulid: record.ulid, locators: locators.map((l) => l.address), ttl: ttlSeconds });
    this.names.delete(record.ulid);
    this.names.set(record.ulid, name);
    if (this.names.size > NAMES_MAX) this.names.delete(this.names.keys().next().value!);
    this.run((engine, now) => engine.prime(now, {
      ulid: record.ulid, locators, ttl: ttlSeconds, source: 'dns', ...(record.port !== undefined ? { port: record.port } : {}),
    }));
  }

  /** The name that primed `ulid` last, if remembered. */
  nameOf(ulid: string): string | undefined {
    return this.names.get(ulid);
  }

  absent(_resolverNow: Millis, nameKey: string, octets: Ipv6Octets[], ttlSeconds: number): void {
    this.absents++;
    const addresses = octets.map(formatIpv6Octets);
    this.log.debug('no capability record', { name: nameKeyToText(nameKey), addresses, ttl: ttlSeconds });
    this.run((engine, now) => engine.absent(now, { addresses: addresses.filter((a) => a.includes(':')), ttl: ttlSeconds }));
  }
}

/**
 * The largest cache file read (octets): the caches' bounds (10,000 positive entries of up to 32
 * locators, 10,000 negative ones, SAVED_CONTEXTS_MAX context pairs) take under 40 MB of JSON.
 */
export const CACHE_FILE_MAX = 64 * 1024 * 1024;

/**
 * Read the cache file; undefined when missing or unreadable (logged). Only a regular file, and
 * at most CACHE_FILE_MAX octets: a FIFO or device in its place must not hold up or fill the start.
 */
export function loadCaches(file: string, log: Logger): CacheFile | undefined {
  let text: string;
  try {
    text = readRegularFile(file, CACHE_FILE_MAX);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') log.warn('ignoring unreadable cache file', { file, error: (err as Error).message });
    return undefined;
  }
  try {
    const data = JSON.parse(text) as CacheFile;
    if (!Array.isArray(data.positive) || !Array.isArray(data.negative)) throw new Error('not a cache snapshot');
    return data;
  } catch (err) {
    log.warn('ignoring unreadable cache file', { file, error: (err as Error).message });
    return undefined;
  }
}

/** The text of `file` if it is a regular file of at most `max` octets (opened without blocking: a FIFO is refused, not waited on). */
function readRegularFile(file: string, max: number): string {
  const fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new Error('not a regular file');
    if (st.size > max) throw new Error(`larger than ${max} octets`);
    const buf = Buffer.allocUnsafe(st.size);
    let n = 0;
    for (let r; n < buf.length && (r = readSync(fd, buf, n, buf.length - n, null)) > 0;) n += r;
    return buf.toString('utf8', 0, n);
  } finally {
    closeSync(fd);
  }
}

/**
 * The ULID pairs of the contexts the cache file keeps beside the caches (`contexts`): at most this
 * many. After a restart they tell which local addresses that are no longer ours were our ULIDs
 * (a renumbered ULID keeps naming the connections bound to it; docs/operations.md "Renumbering").
 */
export const SAVED_CONTEXTS_MAX = 4096;

/** A live context's ULIDs, as the cache file keeps them. */
export interface SavedContext {
  localUlid: Ipv6;
  peerUlid: Ipv6;
}

/** The cache file: the engine's caches, and the ULID pairs of the contexts live when it was written. */
export interface CacheFile extends CacheSnapshot {
  readonly contexts?: SavedContext[];
  /**
   * When the file was written (wall-clock ms; an older file has none): how old its `contexts` are.
   * A clean stop always writes it, so a restart knows whether the pairs are recent enough to set up
   * again (resume-saved.ts); a skipped write (CacheFileWriter) leaves the older time and moves the
   * file's modification time instead when it names contexts (`cacheFileTime`).
   */
  readonly savedAt?: number;
  /**
   * The file the daemon wrote (saveCaches; a file without it is an older daemon's): its modification
   * time counts only while the file is that one (`cacheFileTime`), so a copy put in its place (a
   * backup restored: a new file, whose time is the copy's) is as old as its `savedAt`, not as fresh
   * as the copy.
   */
  readonly file?: FileId;
}

/**
 * A file's identity: its inode number and its creation time (ms; 0 where the file system keeps
 * none). The creation time tells a file from a later one given the same inode number (the file
 * deleted, a copy written in its place).
 */
export interface FileId {
  inode: number;
  born: number;
}

const fileIdOf = (st: { ino: number; birthtimeMs: number }): FileId => ({ inode: st.ino, born: st.birthtimeMs });

/**
 * The `contexts` of a cache file read back: well-formed pairs only (addresses canonical), at most
 * SAVED_CONTEXTS_MAX; anything else is skipped (the file is input from disk; an older file has none).
 */
export function savedContexts(data: unknown): SavedContext[] {
  const list = (data as { contexts?: unknown } | undefined)?.contexts;
  if (!Array.isArray(list)) return [];
  const out: SavedContext[] = [];
  for (const e of list.slice(0, SAVED_CONTEXTS_MAX)) {
    const { localUlid, peerUlid } = (typeof e === 'object' && e !== null ? e : {}) as Record<string, unknown>;
    if (typeof localUlid !== 'string' || typeof peerUlid !== 'string') continue;
    try {
      out.push({ localUlid: canonicalIpv6(localUlid), peerUlid: canonicalIpv6(peerUlid) });
    } catch { /* not an address: skipped */ }
  }
  return out;
}

/**
 * The caches' expiry times moved by `by` ms. The cache file keeps wall-clock times, which a
 * successor reads with its own clock; the engine's are its driver's (shim/clock.ts: CLOCK_BOOTTIME,
 * from the boot), which never follows a step of the wall clock:
 * the daemon moves them at the file, out (`Date.now() - driver.now()`) and in (the reverse).
 * Entries are input from disk on the way in: only a numeric `expires` is moved (the engine's
 * import validates the rest).
 */
export function shiftedTimes<T extends CacheSnapshot>(data: T, by: number): T {
  const move = <E>(e: E): E => {
    const t = (typeof e === 'object' && e !== null ? (e as { expires?: unknown }).expires : undefined);
    return typeof t === 'number' ? { ...e, expires: t + by } : e;
  };
  return by === 0 ? data : { ...data, positive: data.positive.map(move), negative: data.negative.map(move) };
}

/**
 * The temp files of `file` (saveCaches: `<file>.<pid>.tmp`) whose writer is gone — a daemon killed
 * (or a power cut) during a write left them, each up to the caches' size — removed (orphan-temps.ts).
 */
export function removeStaleCacheTemps(file: string): string[] {
  return removeOrphanedTemps(path.dirname(file), `${path.basename(file)}.`, '.tmp');
}

/**
 * Write the cache file atomically (temp file, fsync, rename); returns the file written (`file` in
 * it). A write that fails (a full or read-only disk) leaves the file as it was and no temp file
 * behind; the error goes to the caller.
 */
export function saveCaches(file: string, data: CacheFile): FileId {
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    // Never through a symbolic link planted at the temp file's name.
    const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o600);
    let id: FileId;
    try {
      // The rename keeps the inode and its creation time: the file names itself (`file`).
      id = fileIdOf(fstatSync(fd));
      const bytes = Buffer.from(JSON.stringify({ ...data, file: id }) + '\n');
      writeAllSync(fd, bytes);
      fsyncSync(fd); // the rename must not publish a file whose data a power cut loses
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
    return id;
  } catch (err) {
    try { rmSync(tmp, { force: true }); } catch { /* not a file we wrote (a directory of that name): left */ }
    throw err;
  }
}

/**
 * The cache file's modification time (wall-clock ms), when it can be read and the file is still the
 * one its daemon wrote (`id`: the file's `file`, what it says of itself): the last time a daemon
 * wrote it or found its `contexts` still live (CacheFileWriter touches it on a skipped write). A
 * copy in its place (another file, or one that does not say) has no such time: undefined.
 */
export function cacheFileTime(file: string, id: unknown): number | undefined {
  const st = statIfSame(file, id);
  const t = st?.mtimeMs;
  return t !== undefined && Number.isFinite(t) && t > 0 ? t : undefined;
}

/** The file's status when it is the file `id` names (inode and creation time), else undefined (another file, none, or `id` not a FileId). */
function statIfSame(file: string, id: unknown): { mtimeMs: number } | undefined {
  const { inode, born } = (typeof id === 'object' && id !== null ? id : {}) as Record<string, unknown>;
  if (typeof inode !== 'number' || typeof born !== 'number') return undefined;
  try {
    const st = statSync(file);
    const now = fileIdOf(st);
    return now.inode === inode && now.born === born ? st : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The daemon's writes of its cache file, skipping the ones that would change nothing a successor
 * reads: the same entries and contexts as the file written last, when only their expiry times
 * moved on (a live context's entry is kept `positiveTtl` ahead of its last proof) and the file's
 * earliest expiry is still more than `slackMs` away — so an idle host, or one whose contexts
 * carry on as they were, does not rewrite it every refresh (docs/operations.md "Protection that
 * lasts"). A file gone from the disk, or another file in its place, is written again. A skipped
 * write of a file that names contexts moves the file's modification time to `now` (no data
 * written, no fsync): the contexts it names were still live then, which a successor after SIGKILL
 * reads (`cacheFileTime`, resume-saved.ts) where the file's `savedAt` is as old as their last
 * change.
 */
export class CacheFileWriter {
  private last: { shape: string; earliest: number; file: FileId } | undefined;
  /** Writes skipped as unchanged (for tests and status). */
  skipped = 0;
  /** Skipped writes that moved the file's modification time (it names contexts). */
  touched = 0;

  constructor(readonly file: string, private readonly slackMs: number) {}

  /**
   * Write `data` unless the file already holds it (above) and `force` is not set (a clean stop:
   * its `savedAt` must be the stop's); true when it wrote. Errors as saveCaches.
   */
  save(now: number, data: CacheFile, force = false): boolean {
    let earliest = Infinity;
    const strip = (e: { expires: number }): object => {
      earliest = Math.min(earliest, e.expires);
      return { ...e, expires: 0 };
    };
    const shape = JSON.stringify({ p: data.positive.map(strip), n: data.negative.map(strip), c: data.contexts ?? [] });
    const last = this.last;
    // Only while the file is the one written last: a file gone, or another put in its place (a
    // backup restored, whose own time a successor does not trust), is written again.
    if (!force && last !== undefined && last.shape === shape && last.earliest - now > this.slackMs && statIfSame(this.file, last.file) !== undefined) {
      this.skipped++;
      if ((data.contexts?.length ?? 0) > 0) {
        utimesSync(this.file, now / 1000, now / 1000);
        this.touched++;
      }
      return false;
    }
    this.last = { shape, earliest, file: saveCaches(this.file, data) };
    return true;
  }
}
