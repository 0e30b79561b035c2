// A reload (SIGHUP) applies `log.level` at once, in the main thread and in the resolver's worker
// threads; a changed `log.format` is named as waiting for a restart. Before, a changed level was
// only listed as `restartNeeded`: raising it to debug to see a problem meant a restart, which
// loses the state the problem was in. A reload refuses a peer that is this host, as the start does
// (before, it primed it and the next start failed with ECONFIG).
// What the command line sets keeps overriding the file at a reload (before, a reload put the
// file's log level back over --log-level, and named --log-format's and --metrics' keys as waiting
// for a restart that would change nothing).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { needs } from '../helpers/prereq.ts';
import { hostWithLink } from '../helpers/netns.ts';
import { BUILT_BIN, requireBuilt, tmpdir, track, waitFor } from '../install/built.ts';

interface Line { msg?: string; name?: string; logLevel?: string; restartNeeded?: string[] }

test('SIGHUP applies log.level at once on every resolver thread; a changed log.format waits for a restart', { timeout: 180_000 }, async (t) => {
  if (!needs(t, { root: true, commands: ['ip', 'dig'] })) return;
  requireBuilt();
  const dir = tmpdir(t, 'reload-');
  const { net, ns } = hostWithLink(t, 'rld');
  const file = path.join(dir, 'shim6.json');
  const port = 5353;
  const config = (log: Record<string, unknown>): void => writeFileSync(file, JSON.stringify({
    listen: [`127.0.0.1:${port}`], upstreams: ['127.0.0.1:9'], resolverWorkers: 2, interfaces: ['rld0'], tun: { name: 'rldtun' },
    cacheFile: path.join(dir, 'caches.json'), controlSocket: path.join(dir, 'control.sock'), log,
  }));
  config({ level: 'info', format: 'json' });
  const d = track(t, spawn('ip', ['netns', 'exec', ns.name, process.execPath, BUILT_BIN, 'daemon', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] }));
  await waitFor(() => d.out().includes('daemon ready') || d.status() !== undefined, 'the daemon ready');
  assert.match(d.out(), /daemon ready/);
  const lines = (): Line[] => d.out().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Line);
  // Names spread over both threads (a name's thread is a hash of it): 16 names miss one of two threads with probability 2^-15.
  // EDNS version 1 is answered by the stub itself (BADVERS, logged like any answer): no upstream needed.
  const names = Array.from({ length: 16 }, (_, i) => `n${i}.reload.example.`);
  const ask = (): void => {
    for (const n of names) {
      const r = net.tryRun(ns, ['dig', '@127.0.0.1', '-p', String(port), n, 'AAAA', '+edns=1', '+noednsnegotiation', '+tries=1', '+time=10']);
      assert.match(r.stdout, /status: BADVERS/, r.stdout);
    }
  };
  const queryLines = (): Line[] => lines().filter((l) => l.msg === 'query');
  const reloads = (): Line[] => lines().filter((l) => l.msg === 'reloaded');
  const reload = async (log: Record<string, unknown>): Promise<Line> => {
    const n = reloads().length;
    config(log);
    process.kill(d.child.pid!, 'SIGHUP'); // `ip netns exec` execs the daemon: the same pid
    await waitFor(() => reloads().length > n, 'the reload');
    return reloads()[n]!;
  };
  const eachNameLogged = (times: number): Promise<void> =>
    waitFor(() => names.every((n) => queryLines().filter((l) => l.name === n).length >= times), `a query line for every name (${times})`);

  ask(); // info: not logged

  const toDebug = await reload({ level: 'debug', format: 'json' });
  assert.equal(toDebug.logLevel, 'debug');
  assert.equal(toDebug.restartNeeded, undefined, 'nothing waits for a restart');
  ask();
  await eachNameLogged(1);
  // Both threads answered some of them (so both logged), by the daemon's own count per thread.
  const status = spawnSync(process.execPath, [BUILT_BIN, 'status', '--json', '--socket', path.join(dir, 'control.sock')], { encoding: 'utf8' });
  const perThread = (JSON.parse(status.stdout) as { resolver: { workers: { queries: number[] } } }).resolver.workers.queries;
  assert.equal(perThread.length, 2);
  assert.ok(perThread.every((q) => q > 0), `queries per thread: ${perThread.join(', ')}`);

  // To warn with another format: the level applies, the format is named as waiting for a restart.
  const toWarn = await reload({ level: 'warn', format: 'text' });
  assert.equal(toWarn.logLevel, 'warn');
  assert.deepEqual(toWarn.restartNeeded, ['log.format']);
  ask(); // warn: not logged

  // Debug again: once every name's line of this round is in, a thread's line of the warn round
  // (or of the info round) would be in too, since each thread writes its lines in order.
  await reload({ level: 'debug', format: 'json' });
  ask();
  await eachNameLogged(2);
  for (const n of names) assert.equal(queryLines().filter((l) => l.name === n).length, 2, `${n}: logged in the two debug rounds only`);
});

test('SIGHUP refuses a configured peer that is an address of this host, as the start does: the running config is kept', { timeout: 120_000 }, async (t) => {
  if (!needs(t, { root: true, commands: ['ip'] })) return;
  requireBuilt();
  const dir = tmpdir(t, 'reload-us-');
  const { ns } = hostWithLink(t, 'rlu');
  const file = path.join(dir, 'shim6.json');
  const config = (peers: unknown[]): void => writeFileSync(file, JSON.stringify({
    listen: [], interfaces: ['rlu0'], tun: { name: 'rlutun' }, timers: { profile: 'fast' },
    cacheFile: path.join(dir, 'caches.json'), controlSocket: path.join(dir, 'control.sock'), log: { level: 'info', format: 'json' }, peers,
  }));
  config([]);
  const d = track(t, spawn('ip', ['netns', 'exec', ns.name, process.execPath, BUILT_BIN, 'daemon', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] }));
  await waitFor(() => d.out().includes('daemon ready') || d.status() !== undefined, 'the daemon ready');
  assert.match(d.out(), /daemon ready/);
  type Outcome = Line & { error?: string; peers?: number };
  const outcomes = (): Outcome[] => d.out().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Outcome)
    .filter((l) => l.msg === 'reloaded' || l.msg === 'reload: config rejected, keeping the running one');
  const reload = async (peers: unknown[]): Promise<Outcome> => {
    const n = outcomes().length;
    config(peers);
    process.kill(d.child.pid!, 'SIGHUP');
    await waitFor(() => outcomes().length > n, 'the reload taken or rejected');
    return outcomes()[n]!;
  };

  // 2001:db8:5533::1 is on rlu0: a context with it would be one with ourselves.
  const us = await reload([{ ulid: '2001:db8:5533::1' }]);
  assert.equal(us.msg, 'reload: config rejected, keeping the running one', JSON.stringify(us));
  assert.match(us.error ?? '', /peers\[0\]\.ulid: 2001:db8:5533::1 is an address of this host/);
  const asLocator = await reload([{ ulid: '2001:db8:77::1', locators: ['2001:db8:5533::1'] }]);
  assert.equal(asLocator.msg, 'reload: config rejected, keeping the running one', JSON.stringify(asLocator));
  assert.match(asLocator.error ?? '', /peers\[0\]\.locators\[0\]: 2001:db8:5533::1 is an address of this host/);
  // A peer elsewhere is still taken.
  const other = await reload([{ ulid: '2001:db8:77::1' }]);
  assert.equal(other.msg, 'reloaded', JSON.stringify(other));
  assert.equal(other.peers, 1);
  assert.equal(d.status(), undefined, 'the daemon runs on');
});

// A key read at start only (hba, cga.key, dnsUpdate.key) was only listed as waiting for a restart,
// whatever its file held: the reload said `reloaded`, and the next start (a reboot's) refused the
// configuration it had taken. Now a reload refuses what the start refuses.
test('SIGHUP refuses what the next start would (an HBA file that is not there, a CGA key that is no key): the running config is kept', { timeout: 120_000 }, async (t) => {
  if (!needs(t, { root: true, commands: ['ip'] })) return;
  requireBuilt();
  const dir = tmpdir(t, 'reload-files-');
  const { ns } = hostWithLink(t, 'rlk');
  const file = path.join(dir, 'shim6.json');
  const config = (extra: Record<string, unknown>): void => writeFileSync(file, JSON.stringify({
    listen: [], interfaces: ['rlk0'], tun: { name: 'rlktun' },
    cacheFile: path.join(dir, 'caches.json'), controlSocket: path.join(dir, 'control.sock'), log: { level: 'info', format: 'json' }, ...extra,
  }));
  config({});
  const d = track(t, spawn('ip', ['netns', 'exec', ns.name, process.execPath, BUILT_BIN, 'daemon', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] }));
  await waitFor(() => d.out().includes('daemon ready') || d.status() !== undefined, 'the daemon ready');
  assert.match(d.out(), /daemon ready/);
  type Outcome = Line & { error?: string };
  const outcomes = (): Outcome[] => d.out().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Outcome)
    .filter((l) => l.msg === 'reloaded' || l.msg === 'reload: config rejected, keeping the running one');
  const reload = async (extra: Record<string, unknown>): Promise<Outcome> => {
    const n = outcomes().length;
    config(extra);
    process.kill(d.child.pid!, 'SIGHUP');
    await waitFor(() => outcomes().length > n, 'the reload taken or rejected');
    return outcomes()[n]!;
  };
  const missing = path.join(dir, 'hba.json');
  const noHba = await reload({ hba: missing });
  assert.equal(noHba.msg, 'reload: config rejected, keeping the running one', JSON.stringify(noHba));
  assert.ok((noHba.error ?? '').includes(missing), JSON.stringify(noHba));
  const notKey = path.join(dir, 'rsa.pem');
  writeFileSync(notKey, 'not a key\n', { mode: 0o600 });
  const badKey = await reload({ cga: { key: notKey } });
  assert.equal(badKey.msg, 'reload: config rejected, keeping the running one', JSON.stringify(badKey));
  assert.ok((badKey.error ?? '').includes(notKey), JSON.stringify(badKey));
  const fine = await reload({ timers: { profile: 'fast' } });
  assert.equal(fine.msg, 'reloaded', JSON.stringify(fine));
  assert.deepEqual(fine.restartNeeded, ['timers']);
  assert.equal(d.status(), undefined, 'the daemon runs on');
});

test('SIGHUP keeps what the command line overrides: --log-level, --log-format and --metrics are not undone by the file, nor named as waiting for a restart', { timeout: 120_000 }, async (t) => {
  if (!needs(t, { root: true, commands: ['ip'] })) return;
  requireBuilt();
  const dir = tmpdir(t, 'reload-flags-');
  const { ns } = hostWithLink(t, 'rlf');
  const file = path.join(dir, 'shim6.json');
  // The file says info, text and no metrics; the flags say debug, json and a metrics port.
  writeFileSync(file, JSON.stringify({
    listen: [], interfaces: ['rlf0'], tun: { name: 'rlftun' },
    cacheFile: path.join(dir, 'caches.json'), controlSocket: path.join(dir, 'control.sock'), log: { level: 'info', format: 'text' },
  }));
  const d = track(t, spawn('ip', ['netns', 'exec', ns.name, process.execPath, BUILT_BIN, 'daemon', '--config', file,
    '--log-level', 'debug', '--log-format', 'json', '--metrics', '[::1]:9533'], { stdio: ['ignore', 'pipe', 'pipe'] }));
  await waitFor(() => d.out().includes('daemon ready') || d.status() !== undefined, 'the daemon ready');
  assert.match(d.out(), /daemon ready/);
  const reloads = (): Line[] => d.out().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Line).filter((l) => l.msg === 'reloaded');
  process.kill(d.child.pid!, 'SIGHUP'); // the file as it was: nothing changes
  await waitFor(() => reloads().length > 0, 'the reload');
  const [reloaded] = reloads();
  assert.equal(reloaded!.logLevel, undefined, `the level stays the flag's debug: ${JSON.stringify(reloaded)}`);
  assert.equal(reloaded!.restartNeeded, undefined, `nothing waits for a restart: ${JSON.stringify(reloaded)}`);
  // Still at debug after the reload: a debug record is still written (the json format of the flag).
  const before = d.out().length;
  process.kill(d.child.pid!, 'SIGHUP');
  await waitFor(() => reloads().length > 1, 'the second reload');
  assert.equal(reloads()[1]!.logLevel, undefined, 'the second reload leaves the level too');
  assert.ok(d.out().slice(before).split('\n').some((l) => l.startsWith('{')), 'lines are still json');
  assert.equal(d.status(), undefined, 'the daemon runs on');
});

test('SIGHUP applies peers added and taken out to the engine: a peer added with mode off gets no discovery, one taken out is no longer off', { timeout: 120_000 }, async (t) => {
  if (!needs(t, { root: true, commands: ['ip', 'nft', 'dig'] })) return;
  requireBuilt();
  const dir = tmpdir(t, 'reload-peers-');
  const { net, ns } = hostWithLink(t, 'rlp');
  const file = path.join(dir, 'shim6.json');
  const socket = path.join(dir, 'control.sock');
  // Both on the link's prefix: a flow to either leaves through rlp0 (nobody answers there).
  const added = '2001:db8:5533::a';
  const removed = '2001:db8:5533::b';
  const config = (peers: unknown[]): void => writeFileSync(file, JSON.stringify({
    listen: [], interfaces: ['rlp0'], tun: { name: 'rlptun' }, timers: { profile: 'fast' }, discovery: 'integrated',
    cacheFile: path.join(dir, 'caches.json'), controlSocket: socket, log: { level: 'info', format: 'json' }, peers,
  }));
  config([{ ulid: removed, mode: 'off' }]);
  const d = track(t, spawn('ip', ['netns', 'exec', ns.name, process.execPath, BUILT_BIN, 'daemon', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] }));
  await waitFor(() => d.out().includes('daemon ready') || d.status() !== undefined, 'the daemon ready');
  assert.match(d.out(), /daemon ready/);
  const reloads = (): Line[] => d.out().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Line).filter((l) => l.msg === 'reloaded');
  config([{ ulid: added, mode: 'off' }]);
  process.kill(d.child.pid!, 'SIGHUP');
  await waitFor(() => reloads().length > 0, 'the reload');

  type Discovery = { flows: number; started: number; skipped: Record<string, number> };
  const discovery = (): Discovery => {
    const r = spawnSync(process.execPath, [BUILT_BIN, 'status', '--json', '--socket', socket], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return (JSON.parse(r.stdout) as { discovery: Discovery }).discovery;
  };
  // One new UDP flow to each (dig's query; its answer never comes).
  for (const to of [added, removed]) net.tryRun(ns, ['dig', `@${to}`, 'example.com', '+tries=1', '+time=1']);
  await waitFor(() => discovery().flows >= 2, 'both flows seen by discovery');
  const seen = discovery();
  const startedLines = (): Array<string | undefined> => d.out().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { msg?: string; peer?: string })
    .filter((l) => l.msg === 'discovery started').map((l) => l.peer);
  // The log reaches us after the status reply may have: every start is logged, so wait for as many lines as starts.
  await waitFor(() => startedLines().length >= seen.started, 'the discovery logged');
  const started = startedLines();
  assert.deepEqual(started, [removed], `the peer taken out is discovered as any other, the one added with mode off is not: ${JSON.stringify(seen)}`);
  assert.equal(seen.skipped.off, 1, JSON.stringify(seen));
});
