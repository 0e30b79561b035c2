// Routes and policy rules in a real namespace with a real TUN: the peer ULID goes to the TUN with the
// right MTU/MSS, the daemon's own UDP does not, and close leaves the namespace as it was.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { needs } from '../helpers/prereq.ts';
import { NetLab, uniqueName } from '../helpers/netns.ts';
import { LinuxTun } from '../../shim/dataplane/tun-linux.ts';
import { Routes, tunMtuFor, advmssFor } from '../../shim/dataplane/routes.ts';

test('MTU arithmetic: 56 octets of encapsulation, TUN held at 1280, MSS always fits', () => {
  assert.equal(tunMtuFor(1500), 1444);
  assert.equal(advmssFor(1500), 1384);
  assert.equal(tunMtuFor(1280), 1280);
  assert.equal(advmssFor(1280), 1164);
  assert.ok(advmssFor(1280) + 60 + 56 <= 1280);
});

for (const netlink of [true, false]) test(`routes (kernel path's switches by ${netlink ? 'rtnetlink' : 'ip processes'}): peer ULID via the TUN, daemon UDP via the link, all removed on close`, async (t) => {
  if (!needs(t, { root: true, commands: ['ip'] })) return;
  const net = new NetLab(t);
  const a = net.ns('dpra');
  const b = net.ns('dprb');
  net.veth(a, 'dpp0', b, 'dpp1');
  net.addr(a, 'dpp0', 'fd00:71::a/64');
  const tun = LinuxTun.open({ name: uniqueName('dprt'), mtu: 1444 });
  t.after(() => tun.close());
  assert.equal(spawnSync('ip', ['link', 'set', 'dev', tun.name, 'netns', a.name]).status, 0);
  const rulesBefore = net.run(a, ['ip', '-6', 'rule', 'show']).stdout;
  const routes = new Routes({ tun: tun.name, port: 5533, pathMtu: 1500, netns: a.name, netlink });
  t.after(() => routes.close());
  routes.setup();
  assert.match(net.run(a, ['ip', 'link', 'show', tun.name]).stdout, /mtu 1444 .*state (UP|UNKNOWN)/);
  await routes.contextUp('fd00:71::a', 'fd00:71::b');
  const viaTun = net.run(a, ['ip', '-6', 'route', 'get', 'fd00:71::b']).stdout;
  assert.match(viaTun, new RegExp(`dev ${tun.name} .*src fd00:71::a`));
  assert.match(net.run(a, ['ip', '-6', 'route', 'show', 'table', '5533']).stdout, /fd00:71::b .*mtu 1444 advmss 1384/);
  const daemonUdp = net.run(a, ['ip', '-6', 'route', 'get', 'fd00:71::b', 'ipproto', 'udp', 'sport', '5533']).stdout;
  assert.match(daemonUdp, /dev dpp0/, 'the daemon\'s own UDP never enters the TUN');
  const otherUdp = net.run(a, ['ip', '-6', 'route', 'get', 'fd00:71::b', 'ipproto', 'udp', 'sport', '4000']).stdout;
  assert.match(otherUdp, new RegExp(`dev ${tun.name}`));
  // A host that forwards (a router, a container host): another host's packet to the peer's ULID
  // is forwarded as without shim6, not taken into the TUN (where no context is its own).
  net.sysctl(a, 'net.ipv6.conf.all.forwarding', '1');
  net.veth(a, 'dpl0', b, 'dpl1');
  net.addr(a, 'dpl0', 'fd00:73::a/64');
  const forwarded = net.run(a, ['ip', '-6', 'route', 'get', 'fd00:71::b', 'from', 'fd00:73::7', 'iif', 'dpl0']).stdout;
  assert.match(forwarded, /dev dpp0/, `a forwarded packet: ${forwarded}`);
  assert.doesNotMatch(forwarded, new RegExp(tun.name));
  // A kept local locator: its `local` route is in the second table, for packets from any link.
  assert.deepEqual(routes.keepLocals(['fd00:71::a']), []);
  assert.match(net.run(a, ['ip', '-6', 'route', 'show', 'table', '5534']).stdout, /local fd00:71::a dev lo/);
  // With no route in main (the prefix gone: renumbering), the daemon's UDP is unreachable, not looped into the TUN.
  await routes.contextUp('fd00:71::a', 'fd00:72::b');
  const noMain = spawnSync('ip', ['-n', a.name, '-6', 'route', 'get', 'fd00:72::b', 'ipproto', 'udp', 'sport', '5533'], { encoding: 'utf8' });
  assert.ok(noMain.status !== 0 || !noMain.stdout.includes(tun.name), `the daemon's UDP without a route in main: ${noMain.stdout}${noMain.stderr}`);
  await routes.contextDown('fd00:72::b');
  assert.deepEqual(routes.routed(), ['fd00:71::b']);
  await routes.contextDown('fd00:71::b');
  assert.match(net.run(a, ['ip', '-6', 'route', 'get', 'fd00:71::b']).stdout, /dev dpp0/);
  // The kernel path's switches (asynchronous, in order): into the TUN, out of it, in again.
  void routes.switchPath('fd00:71::a', 'fd00:71::b', 'tun');
  void routes.switchPath('fd00:71::a', 'fd00:71::b', 'kernel');
  await routes.switchPath('fd00:71::a', 'fd00:71::b', 'tun');
  assert.match(net.run(a, ['ip', '-6', 'route', 'get', 'fd00:71::b']).stdout, new RegExp(`dev ${tun.name} .*src fd00:71::a`));
  assert.deepEqual(routes.routed(), ['fd00:71::b']);
  await routes.switchPath('fd00:71::a', 'fd00:71::b', 'kernel');
  assert.match(net.run(a, ['ip', '-6', 'route', 'get', 'fd00:71::b']).stdout, /dev dpp0/);
  assert.deepEqual(routes.routed(), []);
  assert.doesNotMatch(net.run(a, ['ip', '-6', 'addr', 'show', 'dev', tun.name]).stdout, /fe80::5533:ffff/, 'the flush address went again');
  // The kernel encapsulation: the ULID goes where the new pair goes (its next hop and link), with the encapsulated MTU.
  await routes.switchPath('fd00:71::a', 'fd00:71::b', 'encap', { local: 'fd00:71::a', peer: 'fd00:71::c' });
  assert.match(net.run(a, ['ip', '-6', 'route', 'show', 'table', '5533']).stdout, /fd00:71::b via fd00:71::c dev dpp0 .*src fd00:71::a .*mtu 1444 advmss 1384/);
  await routes.switchPath('fd00:71::a', 'fd00:71::b', 'kernel');
  assert.equal(net.run(a, ['ip', '-6', 'route', 'show', 'table', '5533']).stdout.trim(), '');
  // Our ULID's address gone (removed while its contexts live on): the kernel refuses it as `src`, the route goes in without.
  await routes.contextUp('fd00:71::99', 'fd00:71::b');
  const noSrc = net.run(a, ['ip', '-6', 'route', 'show', 'table', '5533']).stdout;
  assert.match(noSrc, new RegExp(`fd00:71::b dev ${tun.name} .*mtu 1444`));
  assert.doesNotMatch(noSrc, /src/);
  await routes.switchPath('fd00:71::99', 'fd00:71::b', 'kernel');
  await routes.switchPath('fd00:71::99', 'fd00:71::b', 'tun');
  assert.match(net.run(a, ['ip', '-6', 'route', 'get', 'fd00:71::b']).stdout, new RegExp(`dev ${tun.name}`), 'the kernel path\'s switch into the TUN too');
  await routes.contextUp('fd00:71::a', 'fd00:71::b');
  routes.close();
  routes.close();
  assert.equal(net.run(a, ['ip', '-6', 'rule', 'show']).stdout, rulesBefore);
  assert.equal(net.run(a, ['ip', '-6', 'route', 'show', 'table', '5533']).stdout.trim(), '');
  assert.equal(net.run(a, ['ip', '-6', 'route', 'show', 'table', '5534']).stdout.trim(), '');
});

test('a crashed daemon\'s rules and kept local routes, of this version and of the one before, go at the next start', (t) => {
  if (!needs(t, { root: true, commands: ['ip'] })) return;
  const net = new NetLab(t);
  const a = net.ns('dprs');
  const rulesBefore = net.run(a, ['ip', '-6', 'rule', 'show']).stdout;
  const left = [
    ['rule', 'add', 'pref', '5532', 'ipproto', 'udp', 'sport', '5533', 'lookup', 'main'],
    ['rule', 'add', 'pref', '5533', 'not', 'ipproto', 'udp', 'sport', '5533', 'lookup', '5533'],
  ];
  for (const args of left) net.run(a, ['ip', '-6', ...args]);
  const routes = new Routes({ tun: 'dprsnone', port: 5533, netns: a.name });
  routes.removeStaleRules();
  assert.equal(net.run(a, ['ip', '-6', 'rule', 'show']).stdout, rulesBefore, 'the rules of the version before');
  for (const args of [
    ['rule', 'add', 'pref', '5532', 'ipproto', 'udp', 'sport', '5533', 'goto', '5534'],
    ['rule', 'add', 'pref', '5533', 'iif', 'lo', 'lookup', '5533'],
    ['rule', 'add', 'pref', '5534', 'lookup', '5534'],
    ['rule', 'add', 'pref', '5535', 'lookup', '5534'], // not at our preference: someone else's
    ['route', 'add', 'local', 'fd00:74::a/128', 'dev', 'lo', 'table', '5534'],
  ]) net.run(a, ['ip', '-6', ...args]);
  routes.removeStaleRules();
  const rules = net.run(a, ['ip', '-6', 'rule', 'show']).stdout;
  assert.doesNotMatch(rules, /^553[234]:/m);
  assert.match(rules, /^5535:/m);
  assert.equal(net.run(a, ['ip', '-6', 'route', 'show', 'table', '5534']).stdout.trim(), '');
});
