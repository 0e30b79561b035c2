// The log's reader going away (`shim6 daemon … 2>&1 | head`, a `| tee` that ended, a log collector
// restarted): the next line met EPIPE, which node raises as an uncaught `error` on stderr, and the
// process died without its stop — routes, rules, the DNS hand-over and the control socket left.
// `shim6 resolver` is the same daemon with the data plane off, with the same log. And the commands an
// operator pipes (`shim6 status | head`, `> /dev/full`): a stack trace, not an error line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { controlRequest } from '../../shim/daemon/control/client.ts';
import { ready, startResolver, startShim6, tmpdir } from './process.ts';
import { EXIT_FATAL } from '../../shim/daemon/process.ts';
import { shim6BadStdout } from '../helpers/cli.ts';

test('the log\'s reader gone (EPIPE on stderr): the daemon goes on, answers its control socket, and stops cleanly on SIGTERM', async (t) => {
  const sock = path.join(tmpdir(t, 'log-pipe-'), 'c.sock');
  const p = startResolver(t, sock);
  await ready(p);
  p.child.stderr!.destroy();
  // A reload logs a line, as does the stop: each one a write into the closed pipe.
  p.child.kill('SIGHUP');
  const st = await controlRequest(sock, 'status') as unknown as { daemon: { pid: number } };
  assert.equal(st.daemon.pid, p.child.pid);
  p.child.kill('SIGTERM');
  assert.equal(await p.exited(), 0, 'a clean stop (before: exit 1, an uncaught EPIPE)');
  assert.equal(existsSync(sock), false, 'the stop removed its control socket');
});

test('shim6 status, status --json and flush on a full or closed stdout: one error line naming it, exit 1, no stack trace', async (t) => {
  const sock = path.join(tmpdir(t, 'status-pipe-'), 'c.sock');
  const p = startResolver(t, sock);
  await ready(p);
  for (const args of [['status'], ['status', '--json'], ['flush']]) {
    for (const stdout of ['full', 'closed'] as const) {
      const r = await shim6BadStdout([...args, '--socket', sock], stdout);
      assert.equal(r.status, 1, `${args.join(' ')} > ${stdout}: ${r.stderr}`);
      assert.match(r.stderr, /^shim6: error E[A-Z]+: cannot write to stdout \(.*\)\n$/, `${args.join(' ')} > ${stdout}`);
    }
  }
  assert.equal(p.status(), undefined, 'the resolver runs on');
});

test('an uncaught error in the running daemon: logged with its stack, the clean stop (control socket removed), exit 70 for the service manager', async (t) => {
  const dir = tmpdir(t, 'fatal-');
  const sock = path.join(dir, 'c.sock');
  // The defect stands in for any: a throw outside every handler of the daemon, on SIGUSR2.
  const inject = path.join(dir, 'inject.cjs');
  writeFileSync(inject, "process.on('SIGUSR2', () => setImmediate(() => { throw new Error('injected defect'); }));\n");
  const p = startShim6(t, ['resolver', '--listen', '127.0.0.1:0', '--upstream', '127.0.0.1:9', '--no-engine', '--socket', sock],
    { env: { ...process.env, NODE_OPTIONS: `--require ${inject}` } });
  await ready(p);
  p.child.kill('SIGUSR2');
  assert.equal(await p.exited(), EXIT_FATAL, p.stderr());
  assert.match(p.stderr(), /fatal: an uncaught error; stopping.*injected defect/s);
  assert.match(p.stderr(), /stopping.*signal=fatal/);
  assert.equal(existsSync(sock), false, 'the stop removed its control socket');
});
