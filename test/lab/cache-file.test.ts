// The daemon's cache file (shim/daemon/sink.ts): written atomically, and a failed write leaves
// the file as it was and no temp file behind (each failed save on a full disk used to leave an
// empty `caches.json.<pid>.tmp`, one per daemon process, never removed).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { CACHE_FILE_MAX, CacheFileWriter, loadCaches, saveCaches } from '../../shim/daemon/sink.ts';
import { Logger } from '../../shim/log.ts';
import { tmpdir } from '../helpers/tmp.ts';
import { needs } from '../helpers/prereq.ts';
import { hostWithLink } from '../helpers/netns.ts';
import { BUILT_BIN, requireBuilt, track, waitFor, type Proc } from '../install/built.ts';

const SNAPSHOT = { positive: [], negative: [] } as unknown as Parameters<typeof saveCaches>[1];
const quiet = new Logger({ level: 'error', sink: { write: () => {} } });

test('saveCaches writes the file whole; loadCaches reads it back', (t) => {
  const file = path.join(tmpdir(t, 'caches-'), 'state', 'caches.json');
  saveCaches(file, SNAPSHOT);
  const st = statSync(file);
  assert.deepEqual(loadCaches(file, quiet), { ...SNAPSHOT, file: { inode: st.ino, born: st.birthtimeMs } }, 'the snapshot, and the file it was written to');
  assert.deepEqual(readdirSync(path.dirname(file)), ['caches.json']);
});

test('a save that fails leaves no temp file and the previous file as it was', (t) => {
  const dir = tmpdir(t, 'caches-');
  // The rename fails: the file's name is taken by a directory (as a write fails on a full disk).
  const blocked = path.join(dir, 'blocked.json');
  mkdirSync(blocked);
  assert.throws(() => saveCaches(blocked, SNAPSHOT));
  assert.deepEqual(readdirSync(dir), ['blocked.json'], 'no temp file left');
  // The write itself fails (the temp file's name is taken by a directory): the old file stays.
  const file = path.join(dir, 'caches.json');
  writeFileSync(file, 'previous\n');
  mkdirSync(`${file}.${process.pid}.tmp`);
  assert.throws(() => saveCaches(file, SNAPSHOT));
  assert.equal(readFileSync(file, 'utf8'), 'previous\n');
});

test('the daemon\'s writer skips a write that changes nothing but expiry times far ahead, and writes a change, a near expiry or a lost file', (t) => {
  const file = path.join(tmpdir(t, 'caches-'), 'caches.json');
  const writer = new CacheFileWriter(file, 1000);
  const entry = (expires: number): Parameters<typeof saveCaches>[1] => ({
    positive: [{ ulid: '2001:db8:1::1', locators: [], expires, source: 'dns' }], negative: [], contexts: [{ localUlid: '2001:db8:2::1', peerUlid: '2001:db8:1::1' }],
  }) as unknown as Parameters<typeof saveCaches>[1];
  assert.equal(writer.save(0, SNAPSHOT), true, 'the first write');
  assert.equal(writer.save(10, SNAPSHOT), false, 'nothing changed (an idle host)');
  assert.equal(writer.save(20, entry(5000)), true, 'an entry came');
  assert.equal(writer.save(30, entry(6000)), false, 'only its expiry moved, the file\'s is 4970 ms away');
  assert.equal(readFileSync(file, 'utf8').includes('5000'), true, 'the file keeps what was written');
  assert.equal(writer.save(4100, entry(9000)), true, 'the file\'s entry would expire within the slack');
  assert.equal(readFileSync(file, 'utf8').includes('9000'), true);
  rmSync(file);
  assert.equal(writer.save(4200, entry(9000)), true, 'a file gone from the disk is written again');
  assert.equal(writer.save(4300, { ...entry(9000), contexts: [] } as unknown as Parameters<typeof saveCaches>[1]), true, 'the contexts changed');
  assert.equal(writer.skipped, 2);
});

test('a save onto a full disk fails and leaves the previous file whole (a write that takes part of the data is not the end)', (t) => {
  if (!needs(t, { root: true, commands: ['mount', 'umount'] })) return;
  const dir = tmpdir(t, 'caches-full-');
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', dir]);
  try {
    fullDisk(dir);
  } finally {
    execFileSync('umount', ['-l', dir]); // before the temp directory's removal
  }
});

function fullDisk(dir: string): void {
  const file = path.join(dir, 'caches.json');
  saveCaches(file, SNAPSHOT);
  const before = readFileSync(file, 'utf8');
  // 2,000 entries: about 200 KB of JSON, more than the 64 KiB the disk has.
  const big = {
    positive: Array.from({ length: 2000 }, (_, i) => ({ ulid: `2001:db8:1::${(i + 1).toString(16)}`, locators: [{ address: `2001:db8:2::${(i + 1).toString(16)}`, flags: 0, priority: 0, weight: 1 }], expires: 1e13, source: 'dns' })),
    negative: [],
  } as unknown as Parameters<typeof saveCaches>[1];
  assert.throws(() => saveCaches(file, big), { code: 'ENOSPC' });
  assert.equal(readFileSync(file, 'utf8'), before, 'the previous file, whole');
  assert.deepEqual(readdirSync(dir), ['caches.json'], 'no temp file left');
}

test('loadCaches reads only a regular file of a bounded size: a FIFO in its place is not waited on, a huge file is not read', (t) => {
  if (!needs(t, { commands: ['mkfifo', 'truncate'] })) return;
  const dir = tmpdir(t, 'caches-odd-');
  const lines: Record<string, unknown>[] = [];
  const log = new Logger({ format: 'json', sink: { write: (l) => lines.push(JSON.parse(l) as Record<string, unknown>) } });
  const fifo = path.join(dir, 'fifo.json');
  execFileSync('mkfifo', [fifo]);
  assert.equal(loadCaches(fifo, log), undefined);
  const huge = path.join(dir, 'huge.json');
  execFileSync('truncate', ['-s', String(CACHE_FILE_MAX + 1), huge]); // sparse: no disk used
  assert.equal(loadCaches(huge, log), undefined);
  assert.equal(loadCaches(path.join(dir, 'missing.json'), log), undefined);
  assert.deepEqual(lines.map((l) => [l.msg, l.file, l.error]), [
    ['ignoring unreadable cache file', fifo, 'not a regular file'],
    ['ignoring unreadable cache file', huge, `larger than ${CACHE_FILE_MAX} octets`],
  ], 'a missing file (the first start) is not worth a warning');
});

test('the cache file\'s times are wall-clock: a daemon whose clock is far from the wall clock (CLOCK_BOOTTIME, ten hours ahead as after a suspend; any clock step) leaves knowledge its successor keeps', { timeout: 120_000 }, async (t) => {
  if (!needs(t, { root: true, commands: ['ip', 'nft', 'dig', 'unshare'] })) return;
  requireBuilt();
  const dir = tmpdir(t, 'caches-clock-');
  const { net, ns } = hostWithLink(t, 'clk');
  const socket = path.join(dir, 'control.sock');
  const cacheFile = path.join(dir, 'caches.json');
  const file = path.join(dir, 'shim6.json');
  // Nobody answers at `silent`: its discovery fails into a negative entry held down for 30 min.
  const silent = '2001:db8:5533::5';
  writeFileSync(file, JSON.stringify({
    listen: [], interfaces: ['clk0'], tun: { name: 'clktun' }, timers: { profile: 'fast', noR1HolddownTime: 1_800_000 }, discovery: 'integrated',
    cacheFile, controlSocket: socket, log: { level: 'info', format: 'json' },
  }));
  // The daemon's clock (shim/clock.ts) counts from the boot, not from 1970, and does not follow a
  // step of the wall clock; the first daemon's boot was ten hours earlier still, as after a 10 h
  // suspend (a time namespace: its CLOCK_BOOTTIME ahead of the host's).
  const start = (pre: string[]): Proc => track(t, spawn('ip', ['netns', 'exec', ns.name, ...pre, process.execPath, BUILT_BIN, 'daemon', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] }));
  const ready = async (d: Proc): Promise<void> => {
    await waitFor(() => d.out().includes('daemon ready') || d.status() !== undefined, 'the daemon ready');
    assert.match(d.out(), /daemon ready/);
  };
  const negative = (): number => {
    const r = spawnSync(process.execPath, [BUILT_BIN, 'status', '--json', '--socket', socket], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return (JSON.parse(r.stdout) as { engine: { caches: { negative: number } } }).engine.caches.negative;
  };

  const first = start(['unshare', '--time', '--boottime', String(10 * 3600)]);
  await ready(first);
  net.tryRun(ns, ['dig', `@${silent}`, 'example.com', '+tries=1', '+time=1']);
  await waitFor(() => negative() === 1, `${silent} held down`);
  const stopAsked = Date.now();
  first.child.kill('SIGTERM');
  assert.equal(await first.exited(), 0);
  const saved = JSON.parse(readFileSync(cacheFile, 'utf8')) as { savedAt: number; negative: Array<{ expires: number }> };
  assert.ok(saved.savedAt > stopAsked - 600_000, `savedAt is wall-clock ms: ${saved.savedAt}, the stop asked at ${stopAsked}`);
  assert.ok(saved.negative[0]!.expires > stopAsked, `the entry expires after the stop, as its 30 min hold-down says: ${saved.negative[0]!.expires}`);

  const second = start([]);
  await ready(second);
  assert.equal(negative(), 1, 'the successor keeps the hold-down');
});
