// Contexts set up again after a restart from the cache file's saved ULID pairs
// (shim/daemon/resume-saved.ts): which pairs a start takes, which it leaves, and
// when the file is too old for any; the stop's write of the file always happens
// (its `savedAt` is the stop's), where the periodic writes may be skipped; a skipped write of a
// file that names contexts moves its modification time, which a start after SIGKILL reads as
// when the pairs were last known live, while the file is the one its daemon wrote.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { copyFileSync, readFileSync, rmSync, statSync, utimesSync } from 'node:fs';
import { contextsToSetUpAgain, liveAtOf, SAVED_FRESH_MARGIN_MS, savedAtOf, savedFreshForMs } from '../../shim/daemon/resume-saved.ts';
import { CacheFileWriter, cacheFileTime, loadCaches, type CacheFile } from '../../shim/daemon/sink.ts';

import { Logger } from '../../shim/log.ts';
import { tmpdir } from '../helpers/tmp.ts';

/** What a cache file says of itself (`file`: its inode and creation time). */
const idIn = (file: string): unknown => (JSON.parse(readFileSync(file, 'utf8')) as CacheFile).file;

const IDLE = 600_000;
const NOW = 1_800_000_000_000;
const pair = (localUlid: string, peerUlid: string): { localUlid: string; peerUlid: string } => ({ localUlid, peerUlid });
const OURS = new Set(['2001:db8:b::1', '2001:db8:b::2']);
const base = { now: NOW, idleTimeoutMs: IDLE, isOurs: (u: string) => OURS.has(u), covered: () => false };

test('a recent file: each saved pair whose local ULID is ours and that nothing covers, once, in the file\'s order', () => {
  const saved = [
    pair('2001:db8:b::1', '2001:db8:a::1'),
    pair('2001:db8:9::1', '2001:db8:a::1'), // a local ULID that is not ours now
    pair('2001:db8:b::2', '2001:db8:a::2'), // covered: an open connection's context
    pair('2001:db8:b::1', '2001:db8:a::1'), // twice
    pair('2001:db8:b::1', '2001:db8:a::3'),
  ];
  const r = contextsToSetUpAgain(saved, { ...base, savedAt: NOW - 5000, covered: (l, p) => l === '2001:db8:b::2' && p === '2001:db8:a::2' });
  assert.deepEqual(r.pairs, [pair('2001:db8:b::1', '2001:db8:a::1'), pair('2001:db8:b::1', '2001:db8:a::3')]);
  assert.equal(r.stale, undefined);
  assert.equal(r.ageMs, 5000);
  assert.deepEqual({ notOurs: r.notOurs, covered: r.covered, over: r.over }, { notOurs: 1, covered: 1, over: 0 });
});

test('bounded: pairs over `max` are counted, not taken', () => {
  const saved = Array.from({ length: 10 }, (_, i) => pair('2001:db8:b::1', `2001:db8:a::${i + 1}`));
  const r = contextsToSetUpAgain(saved, { ...base, savedAt: NOW, max: 4 });
  assert.equal(r.pairs.length, 4);
  assert.equal(r.over, 6);
});

test('a stale file sets nothing up: older than the idle timeout + the margin, no write time (an older daemon\'s), or too far in the future', () => {
  const saved = [pair('2001:db8:b::1', '2001:db8:a::1')];
  assert.equal(savedFreshForMs(IDLE), IDLE + SAVED_FRESH_MARGIN_MS);
  assert.equal(contextsToSetUpAgain(saved, { ...base, savedAt: NOW - savedFreshForMs(IDLE) }).pairs.length, 1, 'just fresh enough');
  const old = contextsToSetUpAgain(saved, { ...base, savedAt: NOW - savedFreshForMs(IDLE) - 1 });
  assert.deepEqual([old.pairs, old.stale], [[], 'old']);
  assert.deepEqual(contextsToSetUpAgain(saved, { ...base, savedAt: undefined }).stale, 'no-time');
  assert.deepEqual(contextsToSetUpAgain(saved, { ...base, savedAt: NOW + SAVED_FRESH_MARGIN_MS + 1 }).stale, 'future');
  assert.equal(contextsToSetUpAgain(saved, { ...base, savedAt: NOW + 1000 }).pairs.length, 1, 'a small clock step back is within the margin');
  assert.deepEqual(contextsToSetUpAgain([], { ...base, savedAt: undefined }), { pairs: [], notOurs: 0, covered: 0, over: 0 }, 'nothing saved: nothing to say');
});

test('savedAtOf takes a positive finite number only (the file is input from disk)', () => {
  assert.equal(savedAtOf({ savedAt: NOW }), NOW);
  for (const bad of [undefined, {}, { savedAt: '1' }, { savedAt: -1 }, { savedAt: Infinity }, { savedAt: null }]) assert.equal(savedAtOf(bad), undefined);
});

test('the stop\'s write (force) is made even when only its time changed; a periodic one is skipped', (t) => {
  const file = path.join(tmpdir(t, 'caches-'), 'caches.json');
  const writer = new CacheFileWriter(file, 1000);
  const data = (savedAt: number): CacheFile => ({ positive: [], negative: [], contexts: [pair('2001:db8:b::1', '2001:db8:a::1')], savedAt });
  assert.equal(writer.save(NOW, data(NOW)), true);
  assert.equal(writer.save(NOW + 10, data(NOW + 10)), false, 'nothing but the time changed: skipped');
  assert.equal(writer.save(NOW + 20, data(NOW + 20), true), true, 'the stop\'s write');
  const quiet = new Logger({ level: 'error', sink: { write: () => {} } });
  assert.equal(savedAtOf(loadCaches(file, quiet)), NOW + 20);
  assert.ok(readFileSync(file, 'utf8').includes('"savedAt"'));
});

test('a file written long ago but touched recently (a skipped write: the contexts carried on) is fresh; its own time alone is not', () => {
  const saved = [pair('2001:db8:b::1', '2001:db8:a::1')];
  const old = NOW - savedFreshForMs(IDLE) - 60_000;
  assert.equal(contextsToSetUpAgain(saved, { ...base, savedAt: old }).stale, 'old');
  const r = contextsToSetUpAgain(saved, { ...base, savedAt: old, touchedAt: NOW - 30_000 });
  assert.deepEqual([r.pairs, r.stale, r.ageMs], [saved, undefined, 30_000]);
  assert.equal(contextsToSetUpAgain(saved, { ...base, savedAt: old, touchedAt: old - 5000 }).stale, 'old', 'a modification time older than savedAt changes nothing');
  assert.equal(contextsToSetUpAgain(saved, { ...base, savedAt: undefined, touchedAt: NOW }).stale, 'no-time', 'an older daemon\'s file (no savedAt) stays stale');
  assert.equal(contextsToSetUpAgain(saved, { ...base, savedAt: old, touchedAt: NOW + SAVED_FRESH_MARGIN_MS + 1 }).stale, 'future');
  assert.equal(liveAtOf(old, NOW), NOW);
  assert.equal(liveAtOf(old, undefined), old);
  assert.equal(liveAtOf(undefined, NOW), undefined);
});

test('a skipped periodic write moves the file\'s modification time when it names contexts, and only then; its data stays', (t) => {
  const dir = tmpdir(t, 'caches-');
  const withPairs = new CacheFileWriter(path.join(dir, 'a.json'), 1000);
  const data = (savedAt: number, contexts = [pair('2001:db8:b::1', '2001:db8:a::1')]): CacheFile => ({ positive: [], negative: [], contexts, savedAt });
  assert.equal(withPairs.save(NOW, data(NOW)), true);
  const text = readFileSync(withPairs.file, 'utf8');
  assert.equal(withPairs.save(NOW + 300_000, data(NOW + 300_000)), false, 'skipped');
  assert.equal(cacheFileTime(withPairs.file, idIn(withPairs.file)), NOW + 300_000, 'touched');
  assert.equal(readFileSync(withPairs.file, 'utf8'), text, 'nothing written');
  assert.equal(savedAtOf(JSON.parse(text)), NOW);
  assert.deepEqual([withPairs.skipped, withPairs.touched], [1, 1]);
  const noPairs = new CacheFileWriter(path.join(dir, 'b.json'), 1000);
  assert.equal(noPairs.save(NOW, data(NOW, [])), true);
  const written = cacheFileTime(noPairs.file, idIn(noPairs.file));
  assert.equal(noPairs.save(NOW + 300_000, data(NOW + 300_000, [])), false);
  assert.equal(cacheFileTime(noPairs.file, idIn(noPairs.file)), written, 'an idle host\'s file (no contexts) is left alone');
  assert.deepEqual([noPairs.skipped, noPairs.touched], [1, 0]);
  assert.equal(cacheFileTime(path.join(dir, 'none.json'), { inode: 1, born: 1 }), undefined);
});

test('the modification time counts only while the file is the one its daemon wrote: a copy put in its place (a backup restored) is as old as its savedAt', (t) => {
  const dir = tmpdir(t, 'caches-');
  const writer = new CacheFileWriter(path.join(dir, 'caches.json'), 1000);
  const old = NOW - savedFreshForMs(IDLE) - 60_000;
  assert.equal(writer.save(old, { positive: [], negative: [], contexts: [pair('2001:db8:b::1', '2001:db8:a::1')], savedAt: old }), true);
  const id = idIn(writer.file);
  const st = statSync(writer.file);
  assert.deepEqual(id, { inode: st.ino, born: st.birthtimeMs }, 'the file names itself: its inode and creation time');
  utimesSync(writer.file, NOW / 1000, NOW / 1000);
  assert.equal(cacheFileTime(writer.file, id), NOW, 'the daemon\'s own file: its modification time');
  // A backup taken, and copied back later (cp: a new file, its modification time the copy's).
  const backup = path.join(dir, 'backup.json');
  copyFileSync(writer.file, backup);
  rmSync(writer.file);
  copyFileSync(backup, writer.file);
  utimesSync(writer.file, NOW / 1000, NOW / 1000);
  // The file system may give the copy the freed inode number: its creation time tells them apart.
  t.diagnostic(`the copy's inode: ${statSync(writer.file).ino === st.ino ? 'the same number' : 'another'}`);
  assert.equal(cacheFileTime(writer.file, idIn(writer.file)), undefined, 'the copy\'s time says nothing of its contexts');
  const saved = [pair('2001:db8:b::1', '2001:db8:a::1')];
  assert.equal(contextsToSetUpAgain(saved, { ...base, savedAt: old, touchedAt: cacheFileTime(writer.file, idIn(writer.file)) }).stale, 'old', 'so the copy is as old as its savedAt');
  // The running daemon's next check writes the file again instead of touching the copy: the copy's
  // time would not count after a SIGKILL, its own file's does.
  const data = { positive: [], negative: [], contexts: saved, savedAt: old };
  assert.equal(writer.save(old + 1000, data), true, 'another file in its place: written again, not touched');
  assert.equal(cacheFileTime(writer.file, idIn(writer.file)), statSync(writer.file).mtimeMs, 'the file written names itself again');
  assert.equal(writer.save(old + 2000, data), false, 'then skipped as before');
  for (const bad of [undefined, null, 7, { inode: st.ino }, { inode: String(st.ino), born: st.birthtimeMs }]) {
    assert.equal(cacheFileTime(writer.file, bad), undefined, `a file that does not name itself (an older daemon's, or damaged): ${JSON.stringify(bad)}`);
  }
});
