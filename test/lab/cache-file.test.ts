// The daemon's cache file (shim/daemon/sink.ts): written atomically, and a failed write leaves
// the file as it was and no temp file behind (each failed save on a full disk used to leave an
// empty `caches.json.<pid>.tmp`, one per daemon process, never removed).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { loadCaches, saveCaches } from '../../shim/daemon/sink.ts';
import { Logger } from '../../shim/log.ts';
import { tmpdir } from '../helpers/tmp.ts';

const SNAPSHOT = { positive: [], negative: [] } as unknown as Parameters<typeof saveCaches>[1];
const quiet = new Logger({ level: 'error', sink: { write: () => {} } });

test('saveCaches writes the file whole; loadCaches reads it back', (t) => {
  const file = path.join(tmpdir(t, 'caches-'), 'state', 'caches.json');
  saveCaches(file, SNAPSHOT);
  assert.deepEqual(loadCaches(file, quiet), SNAPSHOT);
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
