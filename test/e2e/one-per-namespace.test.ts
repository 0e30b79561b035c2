// One shim6 daemon per network namespace: a second one is refused before it touches anything.
// Before, a refused second start (its TUN busy, its port or control socket taken) had already
// removed the running daemon's nftables table, tc filters, rules and routes as "a crashed
// daemon's", and the running one went on reporting peers routed into a TUN nothing led to.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { needs } from '../helpers/prereq.ts';
import { hostWithLink } from '../helpers/netns.ts';
import { builtShim6 } from '../helpers/cli.ts';
import { BUILT_BIN, requireBuilt, tmpdir, track, waitFor } from '../install/built.ts';
import { claimNamespace } from '../../shim/daemon/instance-lock.ts';
import { defaultCacheFile } from '../../shim/daemon/config.ts';
import { EnvironmentError } from '../../shim/errors.ts';

test('the namespace claim: a second claim is refused with the holder\'s pid; released, it can be claimed again', async () => {
  const name = `\0shim6-test-claim-${process.pid}`;
  const first = await claimNamespace(name);
  await assert.rejects(claimNamespace(name), (e: unknown) => e instanceof EnvironmentError && e.code === 'EDAEMON_RUNNING' && e.message.includes(`(pid ${process.pid})`));
  first.release();
  first.release(); // idempotent
  (await claimNamespace(name)).release();
});

test('a configured peer with an address of this host (as ULID or locator) is refused at start, ECONFIG naming the key, nothing set up', { timeout: 180_000 }, async (t) => {
  if (!needs(t, { root: true, commands: ['ip'] })) return;
  requireBuilt();
  const dir = tmpdir(t, 'peer-us-');
  const { net, ns } = hostWithLink(t, 'pus');
  net.addr(ns, 'pus1', '2001:db8:77::1/64'); // on another interface than the daemon's
  const cases: Array<[unknown, RegExp]> = [
    [{ ulid: '2001:db8:5533::1' }, /ECONFIG: peers\[0\]\.ulid: 2001:db8:5533::1 is an address of this host/],
    [{ ulid: '2001:db8:99::1', locators: ['2001:db8:99::1', '2001:db8:77::1'] }, /ECONFIG: peers\[0\]\.locators\[1\]: 2001:db8:77::1 is an address of this host/],
  ];
  for (const [peer, why] of cases) {
    const file = path.join(dir, 'peer.json');
    writeFileSync(file, JSON.stringify({ listen: [], interfaces: ['pus0'], tun: { name: 'pustun' }, cacheFile: path.join(dir, 'c.json'), controlSocket: path.join(dir, 'c.sock'), peers: [peer] }));
    const r = track(t, spawn('ip', ['netns', 'exec', ns.name, process.execPath, BUILT_BIN, 'daemon', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] }));
    assert.equal(await r.exited(), 2, r.out());
    assert.match(r.out(), why);
    assert.doesNotMatch(net.run(ns, ['ip', '-6', 'rule']).stdout, /lookup 5533/, 'no rule set up');
  }
});

test('start errors a sysadmin meets name the cause: an interface that does not exist, a TUN name taken by a link of another kind', { timeout: 180_000 }, async (t) => {
  if (!needs(t, { root: true, commands: ['ip'] })) return;
  requireBuilt();
  const dir = tmpdir(t, 'start-errors-');
  const { net, ns } = hostWithLink(t, 'ser');
  const run = async (extra: Record<string, unknown>): Promise<string> => {
    const file = path.join(dir, 'c.json');
    writeFileSync(file, JSON.stringify({ listen: [], interfaces: ['ser0'], tun: { name: 'sertun' }, cacheFile: path.join(dir, 'c.json.cache'), controlSocket: path.join(dir, 'c.sock'), ...extra }));
    const r = track(t, spawn('ip', ['netns', 'exec', ns.name, process.execPath, BUILT_BIN, 'daemon', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] }));
    assert.equal(await r.exited(), 1, r.out());
    return r.out();
  };
  assert.match(await run({ interfaces: ['eth9'] }), /ENOLOCATOR: no global IPv6 address found on eth9 \(no such interface: eth9\)/);
  // The interface's only address is still in DAD (RFC 4862 §5.4: not ours yet, no locator): the
  // error said "no global IPv6 address found" beside an address `ip addr` shows.
  net.run(ns, ['sysctl', '-qw', 'net.ipv6.conf.ser1.accept_dad=1', 'net.ipv6.conf.ser1.dad_transmits=600']);
  net.run(ns, ['ip', '-6', 'addr', 'add', '2001:db8:5534::1/64', 'dev', 'ser1']);
  assert.match(await run({ interfaces: ['ser1'] }), /ENOLOCATOR: no global IPv6 address found on ser1 \(2001:db8:5534::1 on ser1 is tentative: its DAD is not done/);
  assert.match(await run({ tun: { name: 'ser1' } }), /ETUNOPEN: cannot open TUN ser1: .*\(ser1 exists and is not a TUN device: choose another tun\.name\)/);
  // A persistent TAP or multi-queue TUN of that name (ip tuntap add): the kernel says only "Invalid
  // argument", and the message blamed another process holding it.
  net.run(ns, ['ip', 'tuntap', 'add', 'sertap', 'mode', 'tap']);
  net.run(ns, ['ip', 'tuntap', 'add', 'sermq', 'mode', 'tun', 'multi_queue']);
  assert.match(await run({ tun: { name: 'sertap' } }), /ETUNOPEN: cannot open TUN sertap: .*\(sertap is a TAP device, not a TUN: choose another tun\.name\)/);
  assert.match(await run({ tun: { name: 'sermq' } }), /ETUNOPEN: cannot open TUN sermq: .*\(sermq is a multi-queue TUN device \(ip tuntap add … multi_queue\): remove it or choose another tun\.name\)/);
});

test('a start refused for its dnsUpdate key ends with its error (exit 2), its TUN gone; a user that is not root is told ENOTROOT', { timeout: 180_000 }, async (t) => {
  if (!needs(t, { root: true, commands: ['ip', 'setpriv'] })) return;
  requireBuilt();
  const dir = tmpdir(t, 'key-refused-');
  const { net, ns } = hostWithLink(t, 'krf');
  const key = path.join(dir, 'bad.key');
  writeFileSync(key, 'nothing here\n');
  const file = path.join(dir, 'c.json');
  writeFileSync(file, JSON.stringify({ listen: [], interfaces: ['krf0'], tun: { name: 'krftun' }, cacheFile: path.join(dir, 'c.json.cache'), controlSocket: path.join(dir, 'c.sock'),
    dnsUpdate: { server: '2001:db8::53', zone: 'example.org', name: 'h.example.org', key } }));
  const r = track(t, spawn('ip', ['netns', 'exec', ns.name, process.execPath, BUILT_BIN, 'daemon', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] }));
  assert.equal(await r.exited(), 2, r.out());
  assert.match(r.out(), /EDNS_KEY: dnsUpdate\.key: /);
  assert.equal(net.tryRun(ns, ['ip', 'link', 'show', 'krftun']).status, 1, 'no TUN left');
  const user = track(t, spawn('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, BUILT_BIN, 'daemon'], { stdio: ['ignore', 'pipe', 'pipe'], cwd: '/' }));
  assert.equal(await user.exited(), 1, user.out());
  assert.match(user.out(), /^shim6: error ENOTROOT: shim6 daemon needs root/m);
});

test('a second shim6 daemon in the same namespace is refused (EDAEMON_RUNNING) and the running one keeps its rules, routes and tables', { timeout: 180_000 }, async (t) => {
  if (!needs(t, { root: true, commands: ['ip', 'nft'] })) return;
  requireBuilt();
  const dir = tmpdir(t, 'one-daemon-');
  const { net, ns } = hostWithLink(t, 'one');
  const config = (name: string, extra: Record<string, unknown>): string => {
    const file = path.join(dir, `${name}.json`);
    writeFileSync(file, JSON.stringify({
      listen: [], interfaces: ['one0'], tun: { name: `${name}tun` }, cacheFile: path.join(dir, `${name}-caches.json`),
      controlSocket: path.join(dir, `${name}.sock`), log: { level: 'info', format: 'json' }, ...extra,
    }));
    return file;
  };
  const a = track(t, spawn('ip', ['netns', 'exec', ns.name, process.execPath, BUILT_BIN, 'daemon', '--config', config('a', {})], { stdio: ['ignore', 'pipe', 'pipe'] }));
  await waitFor(() => a.out().includes('daemon ready') || a.status() !== undefined, 'daemon A ready');
  assert.match(a.out(), /daemon ready/);
  const state = (): string => [['ip', '-6', 'rule'], ['ip', '-6', 'route', 'show', 'table', '5533'], ['nft', 'list', 'tables']]
    .map((argv) => net.run(ns, argv).stdout).join('\n');
  const before = state();
  assert.match(before, /lookup 5533/, before);

  // The same config (its TUN is busy), and another TUN, port and control socket: both refused at once.
  for (const [what, file] of [['the same config', config('a', {})], ['another TUN, port and socket', config('b', { port: 5600 })]] as const) {
    const b = track(t, spawn('ip', ['netns', 'exec', ns.name, process.execPath, BUILT_BIN, 'daemon', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] }));
    assert.equal(await b.exited(), 1, `${what}: ${b.out()}`);
    assert.match(b.out(), /^shim6: error EDAEMON_RUNNING: another shim6 daemon runs in this network namespace \(pid \d+\)/m, what);
    assert.doesNotMatch(b.out(), /stopped: routes/, `${what}: nothing set up, nothing torn down`);
    assert.equal(state(), before, `${what}: A's rules, routes and tables untouched`);
  }
  const st = builtShim6(['status', '--socket', path.join(dir, 'a.sock')]);
  assert.equal(st.status, 0, st.stderr);
  a.child.kill('SIGTERM');
  assert.equal(await a.exited(), 0, a.out());
  // Gone with A, the claim lets the next daemon start.
  const c = track(t, spawn('ip', ['netns', 'exec', ns.name, process.execPath, BUILT_BIN, 'daemon', '--config', config('a', {})], { stdio: ['ignore', 'pipe', 'pipe'] }));
  await waitFor(() => c.out().includes('daemon ready') || c.status() !== undefined, 'the next daemon ready');
  assert.match(c.out(), /daemon ready/, c.out());
  c.child.kill('SIGTERM');
  assert.equal(await c.exited(), 0, c.out());
});

test('a start that fails late (the stub\'s port taken: EUDPBIND; the control socket in use: ECONTROL_IN_USE) ends with its error line and never says stopped; a normal stop does', { timeout: 180_000 }, async (t) => {
  if (!needs(t, { root: true, commands: ['ip'] })) return;
  requireBuilt();
  const dir = tmpdir(t, 'late-errors-');
  const { net, ns } = hostWithLink(t, 'lat');
  const config = (name: string, port: number): string => {
    const file = path.join(dir, `${name}.json`);
    writeFileSync(file, JSON.stringify({
      listen: [`[::1]:${port}`], upstreams: ['[::1]:9'], interfaces: ['lat0'], tun: { name: 'lattun' },
      cacheFile: path.join(dir, `${name}-caches.json`), controlSocket: path.join(dir, `${name}.sock`),
    }));
    return file;
  };
  const start = (file: string) => track(t, spawn('ip', ['netns', 'exec', ns.name, process.execPath, BUILT_BIN, 'daemon', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] }));
  /** A process in the namespace holding a port or a socket until the test ends (it prints `held` once it does). */
  const holder = async (code: string): Promise<void> => {
    const p = net.spawn(ns, [process.execPath, '-e', code]);
    let out = '';
    p.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
    await waitFor(() => out.includes('held'), 'the holder');
  };
  const failed = async (file: string, code: string): Promise<void> => {
    const r = start(file);
    assert.equal(await r.exited(), 1, r.out());
    const lines = r.out().trimEnd().split('\n');
    assert.match(lines.at(-1)!, new RegExp(`^shim6: error ${code}: `), r.out());
    // It never ran: what it set up and undid on the way is not a daemon that stopped.
    assert.doesNotMatch(r.out(), /stopped/, `${code}: no stopped line; got:\n${r.out()}`);
    assert.equal(lines.filter((l) => l.includes('error')).length, 1, `${code}: one error line; got:\n${r.out()}`);
    assert.doesNotMatch(net.run(ns, ['ip', '-6', 'rule']).stdout, /lookup 5533/, `${code}: what it set up is undone`);
  };

  // The stub's port taken by another process: the resolver's bind fails, after routes, TUN and sockets.
  await holder(`const s=require('dgram').createSocket('udp6');s.bind(5353,'::1',()=>console.log('held'));`);
  await failed(config('port', 5353), 'EUDPBIND');
  // The control socket in use (someone accepts on it): fails after the stub is up.
  const busy = config('busy', 5354);
  await holder(`require('net').createServer(()=>{}).listen(${JSON.stringify(path.join(dir, 'busy.sock'))},()=>console.log('held'));`);
  await failed(busy, 'ECONTROL_IN_USE');

  // A start that succeeds says what it set up, and its stop says `stopped`.
  const ok = start(config('ok', 5355));
  await waitFor(() => ok.out().includes('daemon ready') || ok.status() !== undefined, 'the daemon ready');
  assert.match(ok.out(), /resolver upstreams[^]*resolver: listening[^]*daemon ready/, ok.out());
  ok.child.kill('SIGTERM');
  assert.equal(await ok.exited(), 0, ok.out());
  assert.match(ok.out(), /stopped: routes, rules(, kernel path counters)? and TUN removed/, ok.out());
});

test('daemons of two network namespaces keep apart their default cache files (caches and saved contexts); the initial namespace keeps /var/lib/shim6/caches.json', { timeout: 240_000 }, async (t) => {
  // Before, both wrote /var/lib/shim6/caches.json: the last to stop overwrote the other's saved
  // contexts, and a restart resumed the other daemon's contexts. Each daemon here sees a /var/lib
  // of the test's own (a private mount namespace, as if the host's), with `ip netns exec`.
  if (!needs(t, { root: true, commands: ['ip', 'unshare', 'mount'] })) return;
  requireBuilt();
  assert.equal(defaultCacheFile(), '/var/lib/shim6/caches.json', 'the initial namespace: unchanged');
  const dir = tmpdir(t, 'netns-caches-');
  const varLib = path.join(dir, 'var-lib');
  mkdirSync(varLib);
  const start = (prefix: string) => {
    const { ns } = hostWithLink(t, prefix);
    const file = path.join(dir, `${prefix}.json`);
    writeFileSync(file, JSON.stringify({ listen: [], interfaces: [`${prefix}0`], tun: { name: `${prefix}tun` }, dataPath: 'tun', controlSocket: path.join(dir, `${prefix}.sock`) }));
    const p = track(t, spawn('unshare', ['-m', '--propagation', 'private', 'sh', '-ec', 'mount --bind "$1" /var/lib; shift; exec "$@"', 'sh', varLib,
      'ip', 'netns', 'exec', ns.name, process.execPath, BUILT_BIN, 'daemon', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] }));
    return { ns, p };
  };
  const daemons = [start('mca'), start('mcb')];
  for (const { p } of daemons) {
    await waitFor(() => p.out().includes('daemon ready') || p.status() !== undefined, 'the daemon ready');
    assert.match(p.out(), /daemon ready/, p.out());
  }
  for (const { p } of daemons) {
    p.child.kill('SIGTERM');
    assert.equal(await p.exited(), 0, p.out());
  }
  const files = (readdirSync(varLib, { recursive: true }) as string[]).filter((f) => f.endsWith('caches.json')).sort();
  assert.deepEqual(files, daemons.map(({ ns }) => path.join('shim6/netns', ns.name, 'caches.json')).sort(), 'a cache file per namespace, named after it');
});

test('daemons of two network namespaces with default configurations both start, each with its own control socket, which `ip netns exec NAME shim6 status` finds', { timeout: 240_000 }, async (t) => {
  // Before, both bound /run/shim6/control.sock: the second start failed (ECONTROL_IN_USE), and
  // `shim6 status` in a namespace reached whichever held it. Each runs with a /var/lib and a
  // /run/shim6 of the test's own (a private mount namespace, as if the host's), with `ip netns exec`.
  if (!needs(t, { root: true, commands: ['ip', 'unshare', 'mount'] })) return;
  requireBuilt();
  const dir = tmpdir(t, 'netns-control-');
  const varLib = path.join(dir, 'var-lib');
  const run = path.join(dir, 'run-shim6');
  mkdirSync(varLib);
  mkdirSync(run, { mode: 0o700 });
  const inMounts = (ns: string, args: string[]) => spawn('unshare', ['-m', '--propagation', 'private', 'sh', '-ec', 'mount --bind "$1" /var/lib; mount --bind "$2" /run/shim6; shift 2; exec "$@"', 'sh', varLib, run,
    'ip', 'netns', 'exec', ns, process.execPath, BUILT_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const daemons = ['mcc', 'mcd'].map((prefix) => {
    const { ns } = hostWithLink(t, prefix);
    const file = path.join(dir, `${prefix}.json`);
    writeFileSync(file, JSON.stringify({ listen: [], interfaces: [`${prefix}0`], tun: { name: `${prefix}tun` }, dataPath: 'tun' }));
    return { ns, p: track(t, inMounts(ns.name, ['daemon', '--config', file])) };
  });
  for (const { p } of daemons) {
    await waitFor(() => p.out().includes('daemon ready') || p.status() !== undefined, 'the daemon ready');
    assert.match(p.out(), /daemon ready/, p.out());
  }
  for (const { ns, p } of daemons) {
    const control = path.join('/run/shim6/netns', ns.name, 'control.sock');
    assert.match(p.out(), new RegExp(`control=${control.replace(/[/.]/g, '\\$&')}`), p.out());
    const st = track(t, inMounts(ns.name, ['status', '--json']));
    assert.equal(await st.exited(), 0, st.out());
    const pid = (JSON.parse(st.out()) as { daemon?: { pid?: number } }).daemon?.pid;
    assert.equal(pid, p.child.pid, `status in ${ns.name} reached its own daemon: ${st.out()}`);
  }
  for (const { p } of daemons) {
    p.child.kill('SIGTERM');
    assert.equal(await p.exited(), 0, p.out());
  }
});
