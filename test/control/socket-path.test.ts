// What `--socket` may point at: a real `shim6 resolver` refuses a path that is not a
// Unix socket (exit 1, ECONTROL_NOT_SOCKET) and leaves it untouched, replaces a stale
// socket, refuses a live one; and a server's close() removes only its own socket file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { needs } from '../helpers/prereq.ts';
import { startControlServer } from '../../shim/daemon/control/server.ts';
import { controlRequest, DEFAULT_CONTROL_SOCKET, defaultControlSocket, runtimeDefaultControlSocket } from '../../shim/daemon/control/client.ts';
import { EnvironmentError } from '../../shim/errors.ts';
import { ready, runShim6, startResolver, startShim6, tmpdir } from './process.ts';

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

test('a control socket that cannot be made (a file on its path, a directory another user may not write): exit 1 with ECONTROL_BIND naming the socket, not a temporary name', async (t) => {
  const dir = tmpdir(t);
  const file = path.join(dir, 'plain');
  writeFileSync(file, CONTENTS);
  const underFile = path.join(file, 'control.sock');
  const p = startResolver(t, underFile);
  assert.equal(await p.exited(), 1, p.stderr());
  assert.match(p.stderr(), /^shim6: error ECONTROL_BIND: cannot make the control socket /m);
  assert.ok(p.stderr().includes(underFile), p.stderr());
  assert.equal(readFileSync(file, 'utf8'), CONTENTS);

  if (!needs(t, { root: true, commands: ['setpriv', 'unshare', 'ip'] })) return;
  chmodSync(dir, 0o755);
  const roots = path.join(dir, 'roots');
  mkdirSync(roots, { mode: 0o755 });
  const sock = path.join(roots, 'control.sock');
  // As nobody, in a network namespace of its own (it binds nothing on the host).
  const asNobody = ['unshare', '-n', 'sh', '-c', 'ip link set lo up && exec "$@"', 'sh', 'setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'];
  const q = startShim6(t, ['resolver', '--listen', '127.0.0.1:0', '--upstream', '127.0.0.1:9', '--no-engine', '--socket', sock], { as: asNobody, cwd: dir });
  assert.equal(await q.exited(), 1, q.stderr());
  assert.match(q.stderr(), /^shim6: error ECONTROL_BIND: cannot make the control socket .*permission denied/m);
  assert.ok(q.stderr().includes(sock), q.stderr());
  assert.doesNotMatch(q.stderr(), /\.ctl-/, 'the temporary name is ours, not the user\'s');
  assert.deepEqual(readdirSync(roots), [], 'nothing left behind');
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

test('the default control socket: root\'s /run/shim6/control.sock; another user\'s $XDG_RUNTIME_DIR/shim6/control.sock when that is a directory of theirs, else none (ENOTROOT naming --socket)', (t) => {
  const dir = tmpdir(t);
  // A user other than root who owns `dir` (as root: make nobody own it).
  const me = process.getuid!();
  const uid = me === 0 ? 65534 : me;
  if (me === 0) chownSync(dir, uid, uid);
  assert.equal(defaultControlSocket(0, { XDG_RUNTIME_DIR: dir }), DEFAULT_CONTROL_SOCKET);
  assert.equal(defaultControlSocket(uid, { XDG_RUNTIME_DIR: dir }), path.join(dir, 'shim6/control.sock'));
  for (const env of [{}, { XDG_RUNTIME_DIR: '' }, { XDG_RUNTIME_DIR: 'relative/dir' }, { XDG_RUNTIME_DIR: path.join(dir, 'missing') }]) {
    assert.equal(defaultControlSocket(uid, env), undefined, JSON.stringify(env));
  }
  // Another user's directory is not this user's runtime directory.
  assert.equal(defaultControlSocket(uid + 1, { XDG_RUNTIME_DIR: dir }), undefined);
  assert.throws(() => runtimeDefaultControlSocket('shim6 resolver', uid, {}), (e: unknown) => e instanceof EnvironmentError && e.code === 'ENOTROOT'
    && e.message === 'shim6 resolver: the default control socket /run/shim6/control.sock is root\'s, and XDG_RUNTIME_DIR names no directory of this user\'s: give --socket PATH (where this user may create a socket)');
  assert.throws(() => runtimeDefaultControlSocket('shim6 status', uid, {}), /shim6 status: .*give --socket PATH \(the resolver's\), or run it as root for the daemon's/);
});

test('shim6 resolver, status and flush as a user other than root: the socket in $XDG_RUNTIME_DIR by default; without it ENOTROOT naming --socket before anything is bound', async (t) => {
  if (!needs(t, { root: true, commands: ['setpriv', 'unshare', 'ip'] })) return;
  const dir = tmpdir(t);
  chmodSync(dir, 0o755);
  const xdg = path.join(dir, 'xdg');
  mkdirSync(xdg, { mode: 0o700 });
  chownSync(xdg, 65534, 65534);
  const nobody = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'];
  // The resolver in a network namespace of its own: it binds nothing on the host.
  const inNetns = ['unshare', '-n', 'sh', '-c', 'ip link set lo up && exec "$@"', 'sh', ...nobody];
  const resolverArgs = ['resolver', '--listen', '127.0.0.1:0', '--upstream', '127.0.0.1:9', '--no-engine'];
  const { XDG_RUNTIME_DIR: _, ...noXdg } = process.env;

  const refused = startShim6(t, resolverArgs, { as: inNetns, env: noXdg, cwd: dir });
  assert.equal(await refused.exited(), 1, refused.stderr());
  assert.match(refused.stderr(), /^shim6: error ENOTROOT: shim6 resolver: the default control socket \/run\/shim6\/control\.sock is root's, .*give --socket PATH/);
  assert.doesNotMatch(refused.stderr(), /listening|resolver ready/, 'nothing was bound');
  const status = await runShim6(t, ['status'], { as: nobody, env: noXdg, cwd: dir });
  assert.equal(status.status, 1);
  assert.match(status.stderr, /^shim6: error ENOTROOT: shim6 status: .*give --socket PATH/);

  const env = { ...noXdg, XDG_RUNTIME_DIR: xdg };
  const p = startShim6(t, resolverArgs, { as: inNetns, env, cwd: dir });
  await ready(p);
  const sock = path.join(xdg, 'shim6/control.sock');
  assert.ok(lstatSync(sock).isSocket());
  const st = await runShim6(t, ['status', '--json'], { as: nobody, env, cwd: dir });
  assert.equal(st.status, 0, st.stderr);
  assert.ok((JSON.parse(st.stdout) as { resolver?: unknown }).resolver, st.stdout);
  const fl = await runShim6(t, ['flush'], { as: nobody, env, cwd: dir });
  assert.equal(fl.status, 0, fl.stderr);
  p.child.kill('SIGTERM');
  assert.equal(await p.exited(), 0, p.stderr());
  assert.equal(existsSync(sock), false, 'the socket is removed on stop');
});

test('--socket "" (an unset variable: --socket "$SOCK") is EINVALID naming the flag on every command: not the default socket, not a port', async () => {
  const { shim6Async } = await import('../helpers/cli.ts');
  const cases = [
    ['status', '--socket', ''],
    ['flush', '--socket', ''],
    ['pcap', '--live', '/dev/null', '--socket', ''],
    ['pcap', '--stop', '--socket', ''],
    // The port out of range: the old code refused it before binding anything (it ran on the default socket otherwise).
    ['resolver', '--socket', '', '--listen', '127.0.0.1:99999', '--no-engine'],
  ];
  const results = await Promise.all(cases.map((args) => shim6Async(args)));
  for (const [i, args] of cases.entries()) {
    assert.equal(results[i]!.status, 2, `${args.join(' ')}: ${results[i]!.stderr}`);
    assert.equal(results[i]!.stderr, 'shim6: error EINVALID: --socket: invalid value "": expected the path of a Unix socket\n', args.join(' '));
  }
});
