// What `--socket` may point at: a real `shim6 resolver` refuses a path that is not a
// Unix socket (exit 1, ECONTROL_NOT_SOCKET) and leaves it untouched, replaces a stale
// socket, refuses a live one; and a server's close() removes only its own socket file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { needs } from '../helpers/prereq.ts';
import { startControlServer } from '../../shim/daemon/control/server.ts';
import { controlRequest } from '../../shim/daemon/control/client.ts';
import { EnvironmentError } from '../../shim/errors.ts';
import { ready, runShim6, startResolver, tmpdir } from './process.ts';

const CONTENTS = 'not a socket: precious contents\n';

/** Start a resolver on `sock`, expect exit 1 with ECONTROL_NOT_SOCKET naming the path and `kind`. */
async function refused(t: import('node:test').TestContext, sock: string, kind: RegExp): Promise<void> {
  const p = startResolver(t, sock);
  assert.equal(await p.exited(), 1, p.stderr());
  assert.match(p.stderr(), /shim6: error ECONTROL_NOT_SOCKET: /);
  assert.ok(p.stderr().includes(sock), p.stderr());
  assert.match(p.stderr(), kind);
  assert.doesNotMatch(p.stderr(), /resolver ready/);
}

test('--socket naming a regular file, a directory, a symlink or a FIFO: exit 1 with ECONTROL_NOT_SOCKET, the path untouched', async (t) => {
  const dir = tmpdir(t);

  const file = path.join(dir, 'notes.txt');
  writeFileSync(file, CONTENTS, { mode: 0o640 });
  const before = lstatSync(file);
  await refused(t, file, /is a regular file/);
  const after = lstatSync(file);
  assert.equal(readFileSync(file, 'utf8'), CONTENTS);
  assert.deepEqual([after.ino, after.mode, after.size], [before.ino, before.mode, before.size]);

  const sub = path.join(dir, 'state');
  mkdirSync(sub);
  writeFileSync(path.join(sub, 'keep'), CONTENTS);
  await refused(t, sub, /is a directory/);
  assert.ok(lstatSync(sub).isDirectory());
  assert.equal(readFileSync(path.join(sub, 'keep'), 'utf8'), CONTENTS);

  const link = path.join(dir, 'link.sock');
  symlinkSync(file, link);
  await refused(t, link, /is a symbolic link/);
  assert.equal(readlinkSync(link), file);
  assert.equal(readFileSync(file, 'utf8'), CONTENTS);

  if (needs(t, { commands: ['mkfifo'] })) {
    const fifo = path.join(dir, 'fifo');
    assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
    await refused(t, fifo, /is a FIFO/);
    assert.ok(lstatSync(fifo).isFIFO());
  }
});

test('a stale socket (its server killed with SIGKILL) is replaced; a live one is refused (ECONTROL_IN_USE) and keeps serving', async (t) => {
  const sock = path.join(tmpdir(t), 'control.sock');
  const first = startResolver(t, sock);
  await ready(first);
  first.child.kill('SIGKILL');
  assert.equal(await first.exited(), 'SIGKILL');
  const stale = lstatSync(sock);
  assert.ok(stale.isSocket(), 'SIGKILL leaves the socket file behind');

  const second = startResolver(t, sock);
  await ready(second);
  assert.equal(lstatSync(sock).mode & 0o777, 0o600);
  let st = await runShim6(t, ['status', '--socket', sock]);
  assert.equal(st.status, 0, 'a live socket took the stale one\'s place: ' + st.stderr);

  const third = startResolver(t, sock);
  assert.equal(await third.exited(), 1, third.stderr());
  assert.match(third.stderr(), /shim6: error ECONTROL_IN_USE: /);
  st = await runShim6(t, ['status', '--socket', sock]);
  assert.equal(st.status, 0, 'the live server still answers: ' + st.stderr);

  second.child.kill('SIGTERM');
  assert.equal(await second.exited(), 0, second.stderr());
  assert.ok(!existsSync(sock), 'its own socket removed on a clean stop');
});

test('startControlServer: ECONTROL_NOT_SOCKET is an EnvironmentError naming the path', async (t) => {
  const file = path.join(tmpdir(t), 'plain');
  writeFileSync(file, CONTENTS);
  // A server that started anyway is closed, or it would keep this test file running.
  const err = await startControlServer(file, {}).then(async (s) => { await s.close(); return undefined; }, (e: unknown) => e);
  assert.ok(err instanceof EnvironmentError && err.code === 'ECONTROL_NOT_SOCKET' && err.path === file, String(err));
  assert.equal(readFileSync(file, 'utf8'), CONTENTS);
});

test('close() removes only the socket it created: not a file put in its place, nor the socket of a server started after it', async (t) => {
  const dir = tmpdir(t);
  const sock = path.join(dir, 'c.sock');
  const status = (): { who: string } => ({ who: 'a' });

  // Someone removed our socket and left a regular file there: close() keeps the file.
  let a = await startControlServer(sock, { status });
  unlinkSync(sock);
  writeFileSync(sock, CONTENTS);
  await a.close();
  assert.equal(readFileSync(sock, 'utf8'), CONTENTS);
  unlinkSync(sock);

  // A restart race: A's socket was removed and B now serves the path; A stopping late leaves B alone.
  a = await startControlServer(sock, { status });
  unlinkSync(sock);
  const b = await startControlServer(sock, { status: () => ({ who: 'b' }) });
  t.after(() => b.close());
  await a.close();
  assert.ok(lstatSync(sock).isSocket());
  assert.deepEqual(await controlRequest(sock, 'status'), { who: 'b' });
  await b.close();
  assert.ok(!existsSync(sock), 'B removed its own socket');
  assert.deepEqual(readdirSync(dir), [], 'no temporary socket names left behind');
});
