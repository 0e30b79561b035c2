// Local locator discovery and watching: `ip -j` parsing, diffs, and a real
// namespace where an added address and a link going down are noticed at once.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { needs } from '../helpers/prereq.ts';
import { diffLocators, LocatorWatcher, onlyAbout, parseIpAddrJson, readLocalAddresses, type LocalAddress, type LocatorDiff } from '../../shim/daemon/locators.ts';
import { EnvironmentError } from '../../shim/errors.ts';
import { orderLocators } from '../../shim/daemon/daemon.ts';
import { MAX_LOCAL_LOCATORS } from '../../shim/engine/index.ts';
import { waitFor } from '../helpers/wait.ts';
import { TREE_LOADER, treeModule } from '../helpers/tree.ts';

const SAMPLE = JSON.stringify([
  { ifname: 'lo', flags: ['LOOPBACK', 'UP', 'LOWER_UP'], operstate: 'UNKNOWN', addr_info: [{ family: 'inet6', local: '::1', scope: 'host' }] },
  { ifname: 'labp', flags: ['BROADCAST', 'UP', 'LOWER_UP'], operstate: 'UP', addr_info: [
    { family: 'inet6', local: '2001:DB8:1::A', scope: 'global' },
    { family: 'inet6', local: 'fe80::1', scope: 'link' },
    { family: 'inet6', local: '2001:db8:1::bad', scope: 'global', tentative: true },
  ] },
  { ifname: 'labq', flags: ['BROADCAST', 'UP', 'NO-CARRIER'], operstate: 'LOWERLAYERDOWN', addr_info: [{ family: 'inet6', local: '2001:db8:2::a', scope: 'global' }] },
]);

test('ip -j addr: global, usable addresses with their link state', () => {
  assert.deepEqual(parseIpAddrJson(SAMPLE), [
    { address: '2001:db8:1::a', ifname: 'labp', up: true },
    { address: '2001:db8:2::a', ifname: 'labq', up: false },
  ]);
  assert.deepEqual(parseIpAddrJson(SAMPLE, ['labq']).map((a) => a.address), ['2001:db8:2::a']);
  assert.deepEqual(parseIpAddrJson('not json'), []);
  // RFC 4862 §5.5.4: preferred lifetime over (as `ip` shows it, flag or lifetime 0); a privacy address is an address like any other.
  const dep = JSON.stringify([{ ifname: 'labq', flags: ['UP', 'LOWER_UP'], operstate: 'UP', addr_info: [
    { family: 'inet6', local: '2001:db8:2::1', scope: 'global', deprecated: true, dynamic: true, valid_life_time: 100, preferred_life_time: 0 },
    { family: 'inet6', local: '2001:db8:2:0:5b03:f783:ed1a:719', scope: 'global', temporary: true, dynamic: true, valid_life_time: 19, preferred_life_time: 6 },
    { family: 'inet6', local: '2001:db8:2::2', scope: 'global', valid_life_time: 100, preferred_life_time: 0 },
  ] }]);
  assert.deepEqual(parseIpAddrJson(dep), [
    { address: '2001:db8:2::1', ifname: 'labq', up: true, deprecated: true },
    { address: '2001:db8:2:0:5b03:f783:ed1a:719', ifname: 'labq', up: true },
    { address: '2001:db8:2::2', ifname: 'labq', up: true, deprecated: true },
  ]);
});

// With keep_addr_on_down=1 (recommended above), the kernel marks a DAD'd address on a link taken
// down `tentative`, and keeps it tentative through the DAD that follows the link's return. The same
// address, down: not removed (no locator withdrawn, no Update to every peer), but marked down
// (BROKEN, localLocatorDown). `ip -j -6 addr show dev rvla` before and after `ip link set rvla down`.
const UP_JSON = '[{"ifindex":3,"link":"rvlb","ifname":"rvla","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1500,"qdisc":"noqueue","operstate":"UP","group":"default","txqlen":1000,"addr_info":[{"family":"inet6","local":"2001:db8:1::1","prefixlen":64,"scope":"global","valid_life_time":4294967295,"preferred_life_time":4294967295},{"family":"inet6","local":"fe80::405e:c0ff:fe25:2684","prefixlen":64,"scope":"link","valid_life_time":4294967295,"preferred_life_time":4294967295}]}]';
const DOWN_JSON = '[{"ifindex":3,"link":"rvlb","ifname":"rvla","flags":["BROADCAST","MULTICAST"],"mtu":1500,"qdisc":"noqueue","operstate":"DOWN","group":"default","txqlen":1000,"addr_info":[{"family":"inet6","local":"2001:db8:1::1","prefixlen":64,"scope":"global","tentative":true,"valid_life_time":4294967295,"preferred_life_time":4294967295}]}]';

test('a link taken down (keep_addr_on_down=1: its addresses tentative) reads as its addresses going down, not as removed; a new tentative or dadfailed address is not ours', () => {
  const before = parseIpAddrJson(UP_JSON);
  const down = parseIpAddrJson(DOWN_JSON, [], before);
  assert.deepEqual(down, [{ address: '2001:db8:1::1', ifname: 'rvla', up: false }]);
  // The same reading with the address new: added to a link that is down, its DAD not run yet (it
  // may fail once the link is up): not ours, not even down; nor an RFC 4429 optimistic one.
  assert.deepEqual(parseIpAddrJson(DOWN_JSON), []);
  assert.deepEqual(parseIpAddrJson(UP_JSON.replace('"scope":"global",', '"scope":"global","optimistic":true,"tentative":true,')), []);
  const diff = diffLocators(before, down);
  assert.deepEqual({ wentDown: diff.wentDown, removed: diff.removed }, { wentDown: ['2001:db8:1::1'], removed: [] });
  // Back up, DAD running again: known, so still ours, still down until DAD is done.
  const dadAgain = UP_JSON.replace('"scope":"global",', '"scope":"global","tentative":true,');
  assert.deepEqual(parseIpAddrJson(dadAgain, [], down), [{ address: '2001:db8:1::1', ifname: 'rvla', up: false }]);
  assert.deepEqual(diffLocators(down, parseIpAddrJson(UP_JSON, [], down)).cameUp, ['2001:db8:1::1']);
  // A new address whose DAD runs on a link that is up is not ours yet; one whose DAD failed never is.
  assert.deepEqual(parseIpAddrJson(dadAgain), []);
  assert.deepEqual(parseIpAddrJson(DOWN_JSON.replace('"tentative":true', '"tentative":true,"dadfailed":true'), [], before), []);
});

test('diffs name what was added, removed, went down and came up', () => {
  const a = (address: string, up = true): LocalAddress => ({ address, ifname: 'x', up });
  assert.deepEqual(diffLocators([a('1::1'), a('2::1'), a('3::1', false)], [a('1::1', false), a('3::1'), a('4::1')]),
    { added: ['4::1'], removed: ['2::1'], wentDown: ['1::1'], cameUp: ['3::1'], deprecated: [], renewed: [] });
  assert.deepEqual(diffLocators([a('1::1'), { ...a('2::1'), deprecated: true }], [{ ...a('1::1'), deprecated: true }, a('2::1')]),
    { added: [], removed: [], wentDown: [], cameUp: [], deprecated: ['1::1'], renewed: ['2::1'] });
});

test('ip monitor output about the ignored links only (the TUN\'s flush address) causes no reading; anything else, or a line it cannot place, does', () => {
  // As `ip -6 monitor address link` prints them (captured in a namespace).
  const tunAdd = '7: labtun    inet6 fd00:ffff::1/128 scope link nodad \n       valid_lft forever preferred_lft forever\n';
  const tunDel = 'Deleted 7: labtun    inet6 fd00:ffff::1/128 scope link nodad \n       valid_lft forever preferred_lft forever\n';
  const linkUp = '3: zza@zzb: <NO-CARRIER,BROADCAST,MULTICAST,UP,M-DOWN> mtu 1500 qdisc noqueue state LOWERLAYERDOWN group default \n    link/ether 12:58:5d:de:9e:89 brd ff:ff:ff:ff:ff:ff\n';
  assert.equal(onlyAbout(tunAdd + tunDel, ['labtun']), true);
  assert.equal(onlyAbout(tunAdd + linkUp, ['labtun']), false);
  assert.equal(onlyAbout(linkUp, ['zza']), true, 'a name with its @peer');
  assert.equal(onlyAbout(tunAdd, []), false, 'nothing ignored');
  assert.equal(onlyAbout('fd00:ffff::1/128 scope link\n', ['labtun']), false, 'the middle of a line');
});

// `ip -j -6 addr` failing once (a fork refused under a task limit, its 5 s timeout on a loaded host)
// is no "the host has no address": the set stays as it was (no locator withdrawn, no local route
// dropped) and the watcher reads again shortly, though no event comes.
test('a failed `ip -j addr` reading is not taken for "every address removed": the set stands, and is read again shortly', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'fxl-ip-'));
  const oldPath = process.env.PATH;
  const fake = path.join(dir, 'ip');
  const ipSays = (script: string): void => { writeFileSync(fake, `#!/bin/sh\n${script}\n`); chmodSync(fake, 0o755); };
  ipSays('echo "fork: Resource temporarily unavailable" >&2; exit 1');
  process.env.PATH = `${dir}:${oldPath}`;
  const initial: LocalAddress[] = [
    { address: '2001:db8:1::a', ifname: 'eth0', up: true },
    { address: '2001:db8:2::a', ifname: 'eth1', up: true },
  ];
  const changes: LocatorDiff[] = [];
  const errors: Array<[string, number]> = [];
  const w = new LocatorWatcher([], (_now, diff) => changes.push(diff), 10, [], initial, (message, failures) => errors.push([message, failures]));
  t.after(() => { w.stop(); process.env.PATH = oldPath; rmSync(dir, { recursive: true, force: true }); });
  w.check();
  assert.deepEqual(changes, [], 'a reading that failed withdrew locators from the engine');
  assert.deepEqual(w.current, initial);
  assert.throws(() => readLocalAddresses(), (e: unknown) => e instanceof EnvironmentError && e.code === 'ENOLOCATOR' && e.message.includes('fork: Resource temporarily unavailable'), 'the start\'s reading: an error saying why');
  assert.equal(errors.length, 1);
  assert.match(errors[0]![0], /ip -j -6 addr show: exit 1: fork: Resource temporarily unavailable/);
  ipSays('echo "not json"'); // output it cannot read is no reading either
  await waitFor(() => errors.length >= 2, 'the reading made again after the failure');
  assert.deepEqual(changes, []);
  assert.match(errors[1]![0], /no JSON list/);
  assert.equal(errors[1]![1], 2, 'failures in a row');
  // `ip` works again (one address really gone meanwhile): the next reading, with no event, finds it.
  ipSays(`echo '${JSON.stringify([{ ifname: 'eth0', flags: ['UP', 'LOWER_UP'], operstate: 'UP', addr_info: [{ family: 'inet6', local: '2001:db8:1::a', scope: 'global' }] }])}'`);
  await waitFor(() => changes.length > 0, 'the reading made again after the failure');
  assert.deepEqual((changes as LocatorDiff[]).map((d) => d.removed), [['2001:db8:2::a']], 'the address really gone meanwhile');
  assert.deepEqual(w.current.map((a) => a.address), ['2001:db8:1::a']);
});

test('HBA members first (the first is the ULID); down links flagged BROKEN', () => {
  const hba = { format: 'shim6-hba-params/1' as const, sec: 0, publicKeyIncluded: false, publicKey: '00', members: [
    { prefix: '2001:db8:1::/64', address: '2001:db8:1::a', params: '00' }, { prefix: '2001:db8:2::/64', address: '2001:db8:2::a', params: '00' }] };
  const found: LocalAddress[] = [{ address: '2001:db8:9::a', ifname: 'o', up: true }, { address: '2001:db8:2::a', ifname: 'q', up: false }, { address: '2001:db8:1::a', ifname: 'p', up: true }];
  assert.deepEqual(orderLocators(found, hba).map((l) => [l.address, l.flags]), [['2001:db8:1::a', 0], ['2001:db8:2::a', 1], ['2001:db8:9::a', 0]]);
  // Deprecated addresses are announced BROKEN (peers stop sending there); a ULID whose address is gone stays, BROKEN.
  const dep = found.map((a) => (a.address === '2001:db8:9::a' ? { ...a, deprecated: true as const } : a));
  assert.deepEqual(orderLocators(dep, hba).map((l) => [l.address, l.flags]), [['2001:db8:1::a', 0], ['2001:db8:2::a', 1], ['2001:db8:9::a', 1]]);
  // Deprecated only while a preferred address is up: every one deprecated, none is withdrawn (RFC 4862 §5.5.4).
  const allDep = found.map((a) => ({ ...a, deprecated: true as const }));
  assert.deepEqual(orderLocators(allDep, hba).map((l) => [l.address, l.flags]), [['2001:db8:1::a', 0], ['2001:db8:2::a', 1], ['2001:db8:9::a', 0]]);
  assert.deepEqual(orderLocators(found.slice(0, 2), hba, undefined, '2001:db8:1::a').map((l) => [l.address, l.flags]), [['2001:db8:1::a', 1], ['2001:db8:2::a', 1], ['2001:db8:9::a', 0]]);
  // A generated CGA ULID goes first.
  assert.deepEqual(orderLocators(found, undefined, '2001:db8:2::a')[0]!.address, '2001:db8:2::a');
});

test('the watcher notices a new address and a link going down (real namespace)', { timeout: 120_000 }, async (t) => {
  if (!needs(t, { root: true, commands: ['ip'] })) return;
  const ns = `e2eloc${process.pid.toString(36)}`;
  const { ip, lines } = watcherInNamespace(t, ns, 'labw0', 'labw1');
  await startWatcher(t, ns, 'labw0', lines);
  const line = async (pred: (l: string) => boolean, what: string): Promise<string> => {
    await waitFor(() => lines.some(pred), `${what}; lines: ${lines.join(' | ')}`);
    return lines.find(pred)!;
  };
  let t0 = Date.now();
  ip('-6', 'addr', 'add', '2001:db8:77::1/64', 'dev', 'labw0', 'nodad');
  const added = JSON.parse(await line((l) => l.includes('2001:db8:77::1'), 'the new address')) as { t: number; diff: LocatorDiff };
  assert.deepEqual(added.diff.added, ['2001:db8:77::1']);
  t.diagnostic(`new address noticed after ${added.t - t0} ms`);
  t0 = Date.now();
  ip('link', 'set', 'labw1', 'down'); // labw0 loses carrier
  const down = JSON.parse(await line((l) => l.includes('wentDown":["2001:db8:77::1"'), 'the link going down')) as { t: number; diff: LocatorDiff };
  assert.deepEqual(down.diff.wentDown, ['2001:db8:77::1']);
  t.diagnostic(`link down noticed after ${down.t - t0} ms`);
});

test('the watcher sees a link taken down as its addresses down, and back up, never removed (real namespace, keep_addr_on_down=1)', { timeout: 120_000 }, async (t) => {
  if (!needs(t, { root: true, commands: ['ip'] })) return;
  const ns = `e2elocd${process.pid.toString(36)}`;
  const { ip, lines } = watcherInNamespace(t, ns, 'labd0', 'labd1');
  ip('-6', 'addr', 'add', '2001:db8:78::1/64', 'dev', 'labd0'); // an ordinary address: DAD runs
  const tentative = (): boolean => spawnSync('ip', ['-n', ns, '-6', 'addr', 'show', 'dev', 'labd0'], { encoding: 'utf8' }).stdout.includes('tentative');
  await waitFor(() => !tentative(), 'DAD done');
  await startWatcher(t, ns, 'labd0', lines);
  const diffs = (): LocatorDiff[] => lines.filter((l) => l.startsWith('{')).map((l) => (JSON.parse(l) as { diff: LocatorDiff }).diff);
  assert.deepEqual(diffs(), [], 'nothing changed yet');
  ip('link', 'set', 'labd0', 'down');
  await waitFor(() => tentative(), 'the kernel marks the address of the downed link tentative');
  await waitFor(() => diffs().length > 0, `a change; lines: ${lines.join(' | ')}`);
  const first = diffs()[0]!;
  assert.deepEqual({ wentDown: first.wentDown, removed: first.removed }, { wentDown: ['2001:db8:78::1'], removed: [] }, `the link going down: ${JSON.stringify(first)}`);
  ip('link', 'set', 'labd0', 'up');
  await waitFor(() => diffs().some((d) => d.cameUp.includes('2001:db8:78::1')), `the address up again after its DAD; lines: ${lines.join(' | ')}`);
  assert.deepEqual(diffs().flatMap((d) => [...d.removed, ...d.added]), [], `never removed nor added again: ${lines.join(' | ')}`);
});

// An address whose state flaps (a DHCPv6 client fighting another, or an on-link node whose Router
// Advertisements toggle a SLAAC prefix's preferred lifetime between 0 and not, which RFC 4862
// §5.5.3 lets any RA do): every reading that sees it changed makes a new Locator List generation,
// a CGA Signature and an Update Request to every peer. Measured before: 395 RAs toggling one
// prefix, 395 locator changes. Under a storm of events the readings slow down (at most one per
// MAX_READING_GAP_MS), and the last state is read all the same.
test('an address flapping fast (deprecated and preferred again, hundreds of times) costs a bounded number of readings, and the last state is read (real namespace)', { timeout: 180_000 }, async (t) => {
  if (!needs(t, { root: true, commands: ['ip', 'sh', 'seq'] })) return;
  const ns = `e2elocf${process.pid.toString(36)}`;
  const { ip, lines } = watcherInNamespace(t, ns, 'labf0', 'labf1');
  const addr = '2001:db8:79::1';
  ip('-6', 'addr', 'add', `${addr}/64`, 'dev', 'labf0', 'nodad');
  await startWatcher(t, ns, 'labf0', lines);
  const diffs = (): LocatorDiff[] => lines.filter((l) => l.startsWith('{')).map((l) => (JSON.parse(l) as { diff: LocatorDiff }).diff);
  const toggles = 300;
  const change = (lft: string): string => `ip -6 addr change ${addr}/64 dev labf0 valid_lft forever preferred_lft ${lft}`;
  const t0 = Date.now();
  const flap = spawn('ip', ['netns', 'exec', ns, 'sh', '-c', `for i in $(seq ${toggles / 2}); do ${change('0')}; sleep 0.01; ${change('forever')}; sleep 0.01; done`], { stdio: 'ignore' });
  t.after(() => { flap.kill('SIGKILL'); });
  await new Promise((res) => flap.once('exit', res));
  const seconds = (Date.now() - t0) / 1000;
  ip('-6', 'addr', 'add', '2001:db8:79::2/64', 'dev', 'labf0', 'nodad'); // after the storm: the last reading sees it
  await waitFor(() => diffs().some((d) => d.added.includes('2001:db8:79::2')), `the address added after the flapping; lines: ${lines.slice(-5).join(' | ')}`);
  const flips = diffs().filter((d) => d.deprecated.includes(addr) || d.renewed.includes(addr)).length;
  t.diagnostic(`${toggles} toggles in ${seconds.toFixed(1)} s: ${flips} locator changes`);
  // At most one reading per MAX_READING_GAP_MS once the storm is on (a busy machine reads less, never more).
  assert.ok(flips <= 10 + (3 * seconds), `${flips} locator changes (each an Update Request to every peer) for ${toggles} toggles in ${seconds.toFixed(1)} s`);
  let deprecated = false;
  for (const d of diffs()) {
    if (d.deprecated.includes(addr)) deprecated = true;
    if (d.renewed.includes(addr)) deprecated = false;
  }
  assert.equal(deprecated, false, 'the last state read: preferred again');
});

/**
 * A namespace `name` with a veth pair `dev`/`peer`, both up, and keep_addr_on_down set: `ip` runs
 * in it; `lines` will hold the output of the watcher startWatcher runs there.
 */
function watcherInNamespace(t: TestContext, name: string, dev: string, peer: string): { ip: (...args: string[]) => void; lines: string[] } {
  const ip = (...args: string[]): void => { const r = spawnSync('ip', ['-n', name, ...args], { encoding: 'utf8' }); assert.equal(r.status, 0, r.stderr); };
  assert.equal(spawnSync('ip', ['netns', 'add', name]).status, 0);
  t.after(() => { spawnSync('ip', ['netns', 'del', name]); });
  spawnSync('ip', ['netns', 'exec', name, 'sysctl', '-qw', 'net.ipv6.conf.all.keep_addr_on_down=1', 'net.ipv6.conf.default.keep_addr_on_down=1']);
  ip('link', 'add', dev, 'type', 'veth', 'peer', 'name', peer);
  ip('link', 'set', dev, 'up');
  ip('link', 'set', peer, 'up');
  return { ip, lines: [] };
}

/** Start the watcher on `dev` in namespace `name`; its lines go to `lines`. It runs until its stdin closes (the end of the test). */
async function startWatcher(t: TestContext, name: string, dev: string, lines: string[]): Promise<void> {
  const code = `
    import { LocatorWatcher } from ${JSON.stringify(treeModule('shim/daemon/locators.ts'))};
    const w = new LocatorWatcher([${JSON.stringify(dev)}], (now, diff) => console.log(JSON.stringify({ t: Date.now(), diff })));
    w.start(); console.log('ready'); process.stdin.on('end', () => { w.stop(); process.exit(0); }); process.stdin.resume();`;
  const child = spawn('ip', ['netns', 'exec', name, process.execPath, ...TREE_LOADER, '--input-type=module', '-e', code], { stdio: ['pipe', 'pipe', 'inherit'] });
  t.after(() => { child.stdin.end(); });
  t.after(() => { child.kill('SIGKILL'); });
  let buf = '';
  child.stdout.on('data', (d: Buffer) => { buf += d.toString(); const parts = buf.split('\n'); buf = parts.pop() ?? ''; lines.push(...parts); });
  await waitFor(() => lines.includes('ready'), 'the watcher');
}

test('more addresses than a Locator List holds: the first MAX_LOCAL_LOCATORS in order, the ULID and the kept ULIDs always, preferred before deprecated', () => {
  const found: LocalAddress[] = Array.from({ length: 100 }, (_, i) => ({ address: `2001:db8:9::${(i + 1).toString(16)}`, ifname: 'o', up: true, ...(i % 2 === 0 ? { deprecated: true as const } : {}) }));
  const kept = new Map([['2001:db8:7::1', undefined], ['2001:db8:7::2', undefined]]);
  const l = orderLocators(found, undefined, '2001:db8:9::1', '2001:db8:9::1', kept);
  assert.equal(l.length, MAX_LOCAL_LOCATORS);
  assert.equal(l[0]!.address, '2001:db8:9::1', 'the ULID first');
  assert.deepEqual(l.slice(-2).map((x) => x.address), ['2001:db8:7::1', '2001:db8:7::2'], 'the kept ULIDs last');
  assert.ok(l.slice(1, -2).every((x) => x.flags === 0), 'preferred addresses before deprecated ones');
});
