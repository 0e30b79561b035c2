// The namespace helper really builds links, really black-holes them, and leaves nothing behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { needs } from '../helpers/prereq.ts';
import { NetLab } from '../helpers/netns.ts';


test('netns: veth link reachable, black hole drops silently, link down fails, cleanup removes all', async (t) => {
  if (!needs(t, { root: true, commands: ['ip', 'nft'] })) return;
  const net = new NetLab();
  let names: string[] = [];
  try {
    const a = net.ns('dpa');
    const b = net.ns('dpb');
    names = [a.name, b.name];
    net.veth(a, 'dpp0', b, 'dpp1');
    net.addr(a, 'dpp0', 'fd00:d1::1/64');
    net.addr(b, 'dpp1', 'fd00:d1::2/64');
    assert.equal(net.run(a, ['sysctl', '-n', 'net.ipv6.conf.all.keep_addr_on_down']).stdout.trim(), '1');
    assert.equal(net.reach(a, 'fd00:d1::2'), true);
    net.blackhole(b, 'dpp1');
    assert.equal(net.reach(a, 'fd00:d1::2', { timeoutMs: 500 }), false);
    assert.match(net.run(a, ['ip', 'link', 'show', 'dpp0']).stdout, /state UP/);
    net.unblackhole(b, 'dpp1');
    assert.equal(net.reach(a, 'fd00:d1::2'), true);
    net.linkDown(a, 'dpp0');
    assert.equal(net.reach(a, 'fd00:d1::2', { timeoutMs: 500 }), false);
    assert.match(net.run(a, ['ip', '-6', 'addr', 'show', 'dev', 'dpp0']).stdout, /fd00:d1::1/, 'address kept on down');
    const sleeper = net.spawn(a, ['sleep', '30']);
    assert.ok(sleeper.pid);
  } finally {
    await net.cleanup();
  }
  const left = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;
  for (const n of names) assert.ok(!left.includes(n), `namespace ${n} removed`);
});
