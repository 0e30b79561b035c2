// What a daemon leaves on the host when it is killed (SIGKILL: no teardown), and what the next start
// and a clean stop make of it: every process, route and device is either gone or taken over, and
// `shim6 status` says what is there.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, lstatSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { CLANG, needs } from '../helpers/prereq.ts';
import { hostWithLink, type Netns } from '../helpers/netns.ts';
import { waitFor } from '../helpers/wait.ts';
import { BUILT_BIN, requireBuilt, tmpdir, track, type Proc } from '../install/built.ts';
import { LAB_ADDR, LAB_IF, nsExec } from '../../lab/topology.ts';
import { LAB_B_NAME } from '../../lab/dns.ts';
import { runStream } from '../../lab/run.ts';
import { labDaemonFiles } from '../../lab/daemons.ts';
import { controlRequest } from '../../shim/daemon/control/client.ts';
import { daemons, E2E_TIMEOUT_MS, freshLab, STREAM_RATE, waitLog } from './fixture.ts';
import { fileURLToPath } from 'node:url';

const fromSources = import.meta.url.endsWith('.ts');
const moduleUrl = (m: string): string => fileURLToPath(new URL(`../../${m}.${fromSources ? 'ts' : 'js'}`, import.meta.url));

/** The processes running in `ns` (`ip netns pids`, run from outside it: it would count itself). */
function pidsIn(ns: Netns): number[] {
  return String(spawnSync('ip', ['netns', 'pids', ns.name], { encoding: 'utf8' }).stdout).split(/\s+/).filter(Boolean).map(Number);
}

/** What runs in `ns`, pid and command line each (empty when nothing does). */
function runningIn(ns: Netns): string[] {
  const cmdline = (p: number): string => { try { return readFileSync(`/proc/${p}/cmdline`, 'utf8').replace(/\0/g, ' ').trim(); } catch { return '(gone)'; } };
  return pidsIn(ns).map((p) => `${p} ${cmdline(p)}`);
}

/** Wait until nothing runs in `ns`; fails naming what still does. */
async function nothingRunsIn(ns: Netns, what: string): Promise<void> {
  await waitFor(() => pidsIn(ns).length === 0, what).catch(() => undefined);
  assert.deepEqual(runningIn(ns), [], what);
}

/** `shim6 daemon` in `ns` with `config`, up (its ready line). */
async function startDaemon(t: TestContext, ns: Netns, config: string): Promise<Proc> {
  const d = track(t, spawn('ip', ['netns', 'exec', ns.name, process.execPath, BUILT_BIN, 'daemon', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] }));
  await waitFor(() => d.out().includes('daemon ready') || d.status() !== undefined, 'the daemon ready');
  assert.match(d.out(), /daemon ready/, d.out());
  return d;
}

test('the locator watcher\'s `ip monitor` dies with its process (SIGKILL) on a host where no address or link changes afterwards', { timeout: 120_000 }, async (t) => {
  if (!needs(t, { root: true, commands: ['ip'] })) return;
  // A quiet namespace: nothing makes an orphaned `ip monitor` write into its dead parent's socket
  // and die of SIGPIPE by chance (in the daemon, the TUN's removal did so, a second or more later).
  const { net, ns } = hostWithLink(t, 'lfw');
  const code = `const m = await import(${JSON.stringify(moduleUrl('shim/daemon/locators'))});` +
    'new m.LocatorWatcher([], () => {}).start(); console.log("watching"); setInterval(() => {}, 1000);';
  const p = net.spawn(ns, [process.execPath, ...(fromSources ? ['--import', 'tsx'] : []), '--input-type=module', '-e', code]);
  let out = '';
  p.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  await waitFor(() => out.includes('watching') && pidsIn(ns).length === 2, 'the watcher and its `ip monitor`');
  p.kill('SIGKILL');
  await nothingRunsIn(ns, 'the `ip monitor` gone with the process that started it');
});

// The kernel encapsulation routes a re-homed context's peer ULID via a physical link (table 5533, not
// the TUN), and a route through a link outlives the process. A start removed the killed daemon's
// rules and tc programs but kept its table 5533: the route sent this host's packets to the peer's
// ULID unencapsulated out of the other link (a network's ingress filter drops them: their source is
// our ULID, of the failed link's prefix), and no `shim6 status` listed it.
test('a daemon killed while a context was on the kernel encapsulation left its peer ULID routed via a link; the next start removes that route, and status and table agree', { timeout: E2E_TIMEOUT_MS }, async (t) => {
  if (!needs(t, { root: true, commands: ['ip', 'knotd', 'kdig', 'nft', 'tc', CLANG, 'bpftool'] })) return;
  const lab = await freshLab(t);
  const s = await daemons(t, lab, {}, { dataPath: 'kernel' });
  const table = (): string => nsExec(lab.a, ['ip', '-6', 'route', 'show', 'table', '5533']).stdout.trim();
  const r = await runStream(lab, { to: LAB_B_NAME, resolver: s.resolverA, durationMs: 3000, failAtMs: 1000, failure: 'blackhole', rate: STREAM_RATE, graceMs: 20_000 });
  assert.equal(r.bytes_verified, r.bytes_sent, 'the stream re-homed onto Q');
  await waitLog(lab, 'a', (x) => x.msg === 'context on the kernel encapsulation' && x.peer === LAB_ADDR.bP);
  await waitFor(() => new RegExp(`^${LAB_ADDR.bP} via .* dev ${LAB_IF.Q} `, 'm').test(table()), `B's ULID routed via ${LAB_IF.Q} in A's table 5533`);
  await s.crash('a');
  assert.match(table(), new RegExp(`^${LAB_ADDR.bP} via `, 'm'), 'the killed daemon\'s route is still there');
  // Nothing will route B again: B stops, A's cache file is lost.
  await s.stopHost('b');
  rmSync(labDaemonFiles(lab, 'a').cache, { force: true });
  await s.start('a');
  const st = await controlRequest(labDaemonFiles(lab, 'a').control, 'status') as unknown as { daemon: { routed: string[] } };
  assert.deepEqual(st.daemon.routed, [], 'the new daemon routes nothing');
  assert.equal(table(), '', 'and table 5533 holds nothing either');
});

// A persistent TUN of the configured name (ip tuntap add) is attached to, not made: it outlives every
// daemon. The daemon said nothing of it, and its stop said `TUN removed` of a device still there.
test('a persistent TUN made before the start is used and said to be, taken again after SIGKILL, and left at the stop, which says so; one another user may open is refused', { timeout: 180_000 }, async (t) => {
  if (!needs(t, { root: true, commands: ['ip'] })) return;
  requireBuilt();
  const dir = tmpdir(t, 'leftover-tun-');
  const { net, ns } = hostWithLink(t, 'lfp');
  net.run(ns, ['ip', 'tuntap', 'add', 'lfptun', 'mode', 'tun']);
  const config = (tun: string): string => {
    const file = path.join(dir, `${tun}.json`);
    writeFileSync(file, JSON.stringify({ listen: [], interfaces: ['lfp0'], tun: { name: tun }, dataPath: 'tun', cacheFile: path.join(dir, 'caches.json'), controlSocket: path.join(dir, 'c.sock') }));
    return file;
  };
  const first = await startDaemon(t, ns, config('lfptun'));
  assert.match(first.out(), /the TUN is a persistent device made before the start: used, and left at the stop/, first.out());
  first.child.kill('SIGKILL');
  await first.exited();
  assert.equal(net.tryRun(ns, ['ip', 'link', 'show', 'lfptun']).status, 0, 'the persistent TUN outlives the killed daemon');
  const second = await startDaemon(t, ns, config('lfptun'));
  second.child.kill('SIGTERM');
  assert.equal(await second.exited(), 0, second.out());
  assert.match(second.out(), /stopped: routes and rules removed; the persistent TUN lfptun left/, second.out());
  assert.doesNotMatch(second.out(), /TUN removed/);
  assert.equal(net.tryRun(ns, ['ip', 'link', 'show', 'lfptun']).status, 0, 'left, as said');
  assert.doesNotMatch(net.run(ns, ['ip', '-6', 'rule']).stdout, /^553[234]:/m, 'no rule of ours');
  assert.equal(net.run(ns, ['ip', '-6', 'route', 'show', 'table', '5533']).stdout.trim(), '', 'nothing routed through it');

  // A persistent TUN user nobody may open would get what is routed into it whenever no daemon holds it.
  net.run(ns, ['ip', 'tuntap', 'add', 'lfpu', 'mode', 'tun', 'user', '65534']);
  const refused = track(t, spawn('ip', ['netns', 'exec', ns.name, process.execPath, BUILT_BIN, 'daemon', '--config', config('lfpu')], { stdio: ['ignore', 'pipe', 'pipe'] }));
  assert.equal(await refused.exited(), 1, refused.out());
  assert.match(refused.out(), /^shim6: error ETUNOPEN: cannot use TUN lfpu: it is a persistent TUN device that uid 65534 may open too/m, refused.out());
  assert.doesNotMatch(net.run(ns, ['ip', '-6', 'rule']).stdout, /^553[234]:/m, 'nothing set up');
});

// The daemon sets its TUN's MTU and brings it up. On a persistent TUN (ip tuntap add, the operator's
// device) both stayed after the stop, and `shim6 status` did not say the device was persistent.
test('a persistent TUN gets its MTU, down state and offloads back at the stop, and status (text and --json) says it is persistent', { timeout: 180_000 }, async (t) => {
  if (!needs(t, { root: true, commands: ['ip', 'ethtool'] })) return;
  requireBuilt();
  const dir = tmpdir(t, 'leftover-tunmtu-');
  const { net, ns } = hostWithLink(t, 'lfm');
  net.run(ns, ['ip', 'tuntap', 'add', 'lfmtun', 'mode', 'tun']);
  net.run(ns, ['ip', 'link', 'set', 'dev', 'lfmtun', 'mtu', '1600']);
  // MTU, up flag, the virtio header flag (IFF_VNET_HDR in tun_flags) and the offloads ethtool shows.
  const link = (): { mtu: number; up: boolean; vnetHdr: boolean; offloads: string } => {
    const j = JSON.parse(net.run(ns, ['ip', '-j', 'link', 'show', 'dev', 'lfmtun']).stdout) as Array<{ mtu: number; flags: string[] }>;
    const tunFlags = Number.parseInt(net.run(ns, ['cat', '/sys/class/net/lfmtun/tun_flags']).stdout, 16);
    const offloads = net.run(ns, ['ethtool', '-k', 'lfmtun']).stdout.split('\n').filter((l) => /^(tx-checksumming|tcp-segmentation-offload):/.test(l)).join('; ');
    return { mtu: j[0]!.mtu, up: j[0]!.flags.includes('UP'), vnetHdr: (tunFlags & 0x4000) !== 0, offloads };
  };
  const made = link();
  assert.deepEqual({ mtu: made.mtu, up: made.up, vnetHdr: made.vnetHdr }, { mtu: 1600, up: false, vnetHdr: false }, 'the operator\'s device as made');
  const sock = path.join(dir, 'c.sock');
  const file = path.join(dir, 'c.json');
  writeFileSync(file, JSON.stringify({ listen: [], interfaces: ['lfm0'], tun: { name: 'lfmtun' }, dataPath: 'tun', cacheFile: path.join(dir, 'caches.json'), controlSocket: sock }));
  const d = await startDaemon(t, ns, file);
  const during = link();
  assert.equal(during.up, true, 'the daemon brings it up');
  assert.equal(during.vnetHdr, true, 'with the virtio header (offloads on)');
  assert.notEqual(during.mtu, 1600, 'with its own MTU');
  const st = await controlRequest(sock, 'status') as unknown as { daemon: { tun: string; tunPersistent: unknown } };
  assert.equal(st.daemon.tun, 'lfmtun');
  assert.equal(st.daemon.tunPersistent, true, '--json says the TUN is persistent');
  const text = spawnSync(process.execPath, [BUILT_BIN, 'status', '--socket', sock], { encoding: 'utf8' });
  assert.equal(text.status, 0, text.stderr);
  assert.match(text.stdout, /^ {2}TUN lfmtun \(persistent: made before the start, left at the stop\), UDP port /m, text.stdout);
  d.child.kill('SIGTERM');
  assert.equal(await d.exited(), 0, d.out());
  assert.deepEqual(link(), made, 'the device as the operator left it: MTU, down, no virtio header, its offloads');
});

// A daemon killed with SIGKILL leaves its control socket. A start at the same path replaces it, but
// one whose controlSocket had changed never looked at the old path: the socket stayed for good, and
// `shim6 status` there said "connection refused". Only that very file goes, and only unheard.
test('a control socket a killed daemon left at its former controlSocket is removed by the next start; another process\'s socket put there is left', { timeout: 180_000 }, async (t) => {
  if (!needs(t, { root: true, commands: ['ip'] })) return;
  requireBuilt();
  const dir = tmpdir(t, 'leftover-ctl-');
  const { ns } = hostWithLink(t, 'lfc');
  const config = (sock: string): string => {
    const file = path.join(dir, `${path.basename(sock)}.json`);
    writeFileSync(file, JSON.stringify({ listen: [], interfaces: ['lfc0'], tun: { name: 'lfctun' }, dataPath: 'tun', cacheFile: path.join(dir, 'caches.json'), controlSocket: sock }));
    return file;
  };
  const [a, b, c] = ['a.sock', 'b.sock', 'c.sock'].map((n) => path.join(dir, n)) as [string, string, string];
  const first = await startDaemon(t, ns, config(a));
  first.child.kill('SIGKILL');
  await first.exited();
  assert.ok(lstatSync(a).isSocket(), 'the killed daemon\'s socket is left');
  const second = await startDaemon(t, ns, config(b));
  assert.equal(existsSync(a), false, `the former control socket is removed: ${second.out()}`);
  assert.match(second.out(), /removed the control socket a killed daemon left at its former controlSocket/);
  second.child.kill('SIGKILL');
  await second.exited();
  // Another process's live socket at the former path: never removed.
  rmSync(b);
  const other = net.createServer((s) => { s.on('error', () => s.destroy()); s.end('mine\n'); });
  await new Promise<void>((resolve) => other.listen(b, resolve));
  t.after(() => other.close());
  const third = await startDaemon(t, ns, config(c));
  assert.match(third.out(), /the former controlSocket of a killed daemon left alone/, third.out());
  assert.ok(lstatSync(b).isSocket(), 'the other process\'s socket stays');
  const answer = await new Promise<string>((resolve, reject) => {
    const conn = net.connect(b);
    let got = '';
    conn.on('data', (d: Buffer) => { got += d.toString(); });
    conn.on('end', () => resolve(got));
    conn.on('error', reject);
  });
  assert.equal(answer, 'mine\n', 'and still serves');
  third.child.kill('SIGTERM');
  assert.equal(await third.exited(), 0, third.out());
  assert.equal(existsSync(c), false, 'a clean stop removes its own socket');
  assert.ok(lstatSync(b).isSocket());
});

// The kernel path's nftables table was removed as a crashed daemon's only by a start that took the
// kernel path again: after a switch to `dataPath: tun` it stayed for good (its counters and its
// log rule on every packet of the host), and a clean stop of the new daemon left it too.
test('a daemon killed on the kernel path with discovery on; the next start, on the TUN path with discovery off, removes both of its nftables tables', { timeout: 180_000 }, async (t) => {
  if (!needs(t, { root: true, commands: ['ip', 'nft'] })) return;
  requireBuilt();
  const dir = tmpdir(t, 'leftover-nft-');
  const { net, ns } = hostWithLink(t, 'lfn');
  const config = (extra: Record<string, unknown>): string => {
    const file = path.join(dir, 'c.json');
    writeFileSync(file, JSON.stringify({ listen: [], interfaces: ['lfn0'], tun: { name: 'lfntun' }, cacheFile: path.join(dir, 'caches.json'), controlSocket: path.join(dir, 'c.sock'), ...extra }));
    return file;
  };
  const tables = (): string => net.run(ns, ['nft', 'list', 'tables']).stdout.trim();
  const first = await startDaemon(t, ns, config({ dataPath: 'kernel', discovery: 'integrated' }));
  assert.match(tables(), /table ip6 shim6_kernel/, 'the kernel path\'s table');
  assert.match(tables(), /table ip6 shim6$/m, 'discovery\'s table');
  first.child.kill('SIGKILL');
  await first.exited();
  const second = await startDaemon(t, ns, config({ dataPath: 'tun', discovery: 'off' }));
  assert.equal(tables(), '', 'the killed daemon\'s tables gone at the start');
  second.child.kill('SIGTERM');
  assert.equal(await second.exited(), 0, second.out());
  assert.equal(tables(), '');
});

// The cache file is written to `<file>.<pid>.tmp` and renamed: a daemon killed (or a power cut)
// during a write left the temp file, up to the caches' tens of megabytes, one more per crash, for good.
test('the cache file\'s temp file a killed daemon left (another pid, gone) is removed at the next start; a live process\'s is not', { timeout: 180_000 }, async (t) => {
  if (!needs(t, { root: true, commands: ['ip'] })) return;
  requireBuilt();
  const dir = tmpdir(t, 'leftover-tmp-');
  const { ns } = hostWithLink(t, 'lft');
  const cache = path.join(dir, 'caches.json');
  const gone = spawnSync(process.execPath, ['-e', 'console.log(process.pid)'], { encoding: 'utf8' });
  const deadTmp = `${cache}.${Number(gone.stdout)}.tmp`;
  const liveTmp = `${cache}.${process.pid}.tmp`;
  writeFileSync(deadTmp, '{"positive":[');
  writeFileSync(liveTmp, '{"positive":[');
  const file = path.join(dir, 'c.json');
  writeFileSync(file, JSON.stringify({ listen: [], interfaces: ['lft0'], tun: { name: 'lfttun' }, cacheFile: cache, controlSocket: path.join(dir, 'c.sock') }));
  const d = await startDaemon(t, ns, file);
  assert.equal(existsSync(deadTmp), false, `${deadTmp} removed`);
  assert.equal(existsSync(liveTmp), true, 'a live process\'s temp file is left alone');
  d.child.kill('SIGTERM');
  assert.equal(await d.exited(), 0, d.out());
});
