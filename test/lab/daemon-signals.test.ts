// The daemon's signals (shim/daemon/process.ts): a SIGHUP that comes while the daemon starts
// is a reload once it is up (it was dropped: the configuration the operator had just changed was
// never applied, and nothing said so); one that comes while it stops reloads nothing (it primed
// peers into the engine being closed, and told systemd RELOADING=1 and READY=1 after STOPPING=1). Daemon.start is replaced by one the test lets finish, so the
// signal lands inside the start every time; the signals are emitted on `process`, as node does
// for a real one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Daemon } from '../../shim/daemon/daemon.ts';
import { runDaemon } from '../../shim/daemon/process.ts';
import { defaultConfig } from '../../shim/daemon/config.ts';
import { Logger } from '../../shim/log.ts';
import { waitFor } from '../helpers/wait.ts';
import { tmpdir } from '../helpers/tmp.ts';
import { writeFileSync } from 'node:fs';
import path from 'node:path';

interface FakeDaemon { reloads: number; stops: number; finishStop: () => void }

/** Daemon.start replaced until the test ends: `start()` resolves with a fake daemon when `up()` is called. */
function fakeStart(t: import('node:test').TestContext): { started: () => boolean; up: () => FakeDaemon } {
  const real = Daemon.start;
  let resolve: ((d: Daemon) => void) | undefined;
  Daemon.start = (() => new Promise<Daemon>((r) => { resolve = r; })) as typeof Daemon.start;
  t.after(() => { Daemon.start = real; });
  return {
    started: () => resolve !== undefined,
    up: () => {
      let finish: () => void = () => {};
      const fake: FakeDaemon = { reloads: 0, stops: 0, finishStop: () => finish() };
      resolve!({
        log: new Logger({ level: 'error', sink: { write: () => {} } }),
        reload: async () => { fake.reloads++; },
        stop: () => { fake.stops++; return new Promise<void>((r) => { finish = r; }); },
      } as unknown as Daemon);
      return fake;
    },
  };
}

test('a SIGHUP during the start reloads once the daemon is up, once however many came', async (t) => {
  const start = fakeStart(t);
  const log = new Logger({ level: 'error', sink: { write: () => {} } });
  const run = runDaemon(defaultConfig(), { log });
  await waitFor(() => start.started(), 'the start to begin');
  process.emit('SIGHUP', 'SIGHUP');
  process.emit('SIGHUP', 'SIGHUP');
  const d = start.up();
  await waitFor(() => d.reloads > 0, 'the reload asked for during the start');
  assert.equal(d.reloads, 1, 'one reload for the SIGHUPs that came during the start');
  process.emit('SIGTERM', 'SIGTERM');
  await waitFor(() => d.stops === 1, 'the stop');
  d.finishStop();
  await run;
  assert.equal(process.listenerCount('SIGHUP'), 0, 'the handlers are gone with the run');
});

test('a reload asked while the daemon stops (a SIGHUP after the SIGTERM) reloads nothing and tells the service manager nothing: said in the log', async (t) => {
  const file = path.join(tmpdir(t, 'signals-'), 'shim6.json');
  writeFileSync(file, JSON.stringify({ peers: [{ ulid: '2001:db8:77::1' }] }));
  const told: string[] = [];
  const logged: string[] = [];
  const commands: number[] = [];
  // A daemon in its stop (daemon.ts `stop()` set `stopping`; the Close Acks may take 3 s).
  const stopping = Object.assign(Object.create(Daemon.prototype) as object, {
    stopping: true, stopped: false, config: defaultConfig(),
    opts: { configFile: file, notify: { reloading: async () => { told.push('RELOADING'); }, ready: async () => { told.push('READY'); } } },
    log: { info: (msg: string) => { logged.push(msg); }, warn: (msg: string) => { logged.push(msg); }, error: (msg: string) => { logged.push(msg); }, setLevel: () => {} },
    driver: { command: () => { commands.push(1); return true; }, now: () => 0 }, engine: {}, routes: {},
  }) as unknown as Daemon;
  await stopping.reload();
  assert.deepEqual(told, [], 'no RELOADING=1 / READY=1 after STOPPING=1');
  assert.deepEqual(commands, [], 'nothing primed into the engine being closed');
  assert.deepEqual(logged, ['reload: the daemon is stopping; nothing reloaded']);
});
