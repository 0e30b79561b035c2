// The kernel path's counters in a real namespace (shim/dataplane/kernel-path.ts): nftables counts a
// context's packets both ways (not the daemon's UDP, not neighbour discovery), before a host rule that
// drops what is sent; the table goes at close, and a crashed owner's table at the next open. Both
// readers: netlink (the addon, the default) and the `nft` process (where the addon is not built).
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, fstatSync, openSync } from 'node:fs';
import { needs, skipOrFail } from '../helpers/prereq.ts';
import { NetLab } from '../helpers/netns.ts';
import { KERNEL_TABLE, NftKernelPath } from '../../shim/dataplane/kernel-path.ts';

const A = 'fd00:5533:1::a', B = 'fd00:5533:1::b';

/** From A: 5 UDP datagrams to B:7777, 3 to B:5533 (the daemon's port), a TCP connect to B:9 (SYN out, RST in). */
const TRAFFIC = `const d=require('dgram').createSocket('udp6');d.bind(0,'${A}',async()=>{` +
  `const s=(p)=>new Promise((r)=>d.send(Buffer.alloc(8),p,'${B}',r));for(let i=0;i<5;i++)await s(7777);for(let i=0;i<3;i++)await s(5533);d.close();` +
  `require('net').connect({host:'${B}',port:9,localAddress:'${A}'}).on('error',()=>process.exit(0)).on('connect',()=>process.exit(0));` +
  // Black-holed, the SYN has no answer: once it is out (connect() sends it), nothing is left to count.
  `setTimeout(()=>process.exit(0),100)})`;

/** Namespaces `<prefix>a` (A on `<prefix>0`) and `<prefix>b` (B on `<prefix>1`), joined by a veth pair. */
function linkedPair(t: TestContext, prefix: string): { net: NetLab; a: ReturnType<NetLab['ns']>; b: ReturnType<NetLab['ns']> } {
  const net = new NetLab(t);
  const a = net.ns(`${prefix}a`), b = net.ns(`${prefix}b`);
  net.veth(a, `${prefix}0`, b, `${prefix}1`);
  net.addr(a, `${prefix}0`, `${A}/64`);
  net.addr(b, `${prefix}1`, `${B}/64`);
  return { net, a, b };
}

for (const reader of ['netlink', 'nft'] as const) test(`kernel path (${reader} reader): nftables counts a context's packets both ways (not the daemon's UDP), sent packets even when a host rule drops them; a reading fails when someone deletes our counters; nothing left behind, even after a crash`, async (t) => {
  if (!needs(t, { root: true, commands: ['ip', 'nft'] })) return;
  const { net, a, b } = linkedPair(t, 'kp');
  // B answers the SYN with an RST but sends no port-unreachable for the datagrams (rate-limited, so not countable).
  net.run(b, ['nft', 'add table ip6 kp; add chain ip6 kp out { type filter hook output priority 0; }; add rule ip6 kp out icmpv6 type destination-unreachable drop']);
  const hasTable = () => net.tryRun(a, ['nft', 'list', 'table', 'ip6', KERNEL_TABLE]).status === 0;
  // A crashed owner: the table stays (a process that opens it and is killed).
  const left = NftKernelPath.open({ port: 5533, netns: a.name, reader });
  left.watch(A, B);
  assert.ok(hasTable());
  const k = NftKernelPath.open({ port: 5533, netns: a.name, reader });
  t.after(() => k.close());
  assert.equal(k.readerKind, reader);
  await k.refresh();
  assert.equal(k.read(A, B), undefined, 'the stale table and its counters were removed');
  assert.equal(k.watch(A, B), true);
  await k.refresh();
  const packets = (c: ReturnType<typeof k.read>) => (c === undefined ? undefined : { outPackets: c.outPackets, inPackets: c.inPackets });
  assert.deepEqual(k.read(A, B), { outPackets: 0, inPackets: 0, outBytes: 0, inBytes: 0 });
  net.run(a, [process.execPath, '-e', TRAFFIC]);
  await k.refresh();
  assert.deepEqual(packets(k.read(A, B)), { outPackets: 6, inPackets: 1 }, '5 datagrams and a SYN out, the RST in; the datagrams to 5533 and ND not counted');
  // Octets of the IPv6 packets whole: 5 × (40 + 8 + 8) and a SYN (40 + 20 at least) out, an RST (40 + 20) in.
  const n = k.read(A, B)!;
  assert.ok(n.outBytes! >= 5 * 56 + 60 && n.outBytes! <= 5 * 56 + 100, `octets out ${n.outBytes}`);
  assert.equal(n.inBytes, 60, 'octets in: the RST');
  // The lab's black hole (test/helpers/netns.ts): dropped on the device's ingress and in output. What
  // the application sent still counts (as the TUN would have seen it); nothing arrives.
  net.blackhole(a, 'kp0');
  net.run(a, [process.execPath, '-e', TRAFFIC]);
  await k.refresh();
  const c = k.read(A, B)!;
  assert.ok(c.outPackets >= 12, `sent while black-holed: ${JSON.stringify(c)}`);
  assert.equal(c.inPackets, 1, 'nothing arrived');
  k.unwatch(A, B);
  await k.refresh();
  assert.equal(k.read(A, B), undefined);
  // Unwatched: its counters and both map elements are gone from the kernel's table.
  const table = net.run(a, ['nft', 'list', 'table', 'ip6', KERNEL_TABLE]).stdout;
  assert.doesNotMatch(table, /counter o\d|counter i\d|elements/, table);
  // Someone else deletes a watched context's counter: the reading fails (the driver counts three
  // such failures and moves every context to the TUN), and the last good counters stay.
  assert.equal(k.watch(A, B), true);
  await k.refresh();
  const before = k.read(A, B);
  assert.ok(before !== undefined);
  net.run(a, ['nft', 'delete', 'table', 'ip6', KERNEL_TABLE]);
  await assert.rejects(k.refresh(), /gone|did not answer/);
  assert.deepEqual(k.read(A, B), before);
  // With the table gone, a new context cannot be watched (it stays on the TUN path).
  assert.equal(k.watch(A, '2001:db8:77::2'), false);
  k.close();
  assert.equal(hasTable(), false, 'close removed the table');
  left.close(); // its table is gone already; closing it again removes nothing of k's
});

test('kernel path (netlink reader): a reading of idle contexts reads the two sums only; one context\'s traffic brings the full reading, and only that context is named as moved', async (t) => {
  if (!needs(t, { root: true, commands: ['ip', 'nft'] })) return;
  const { net, a } = linkedPair(t, 'kq');
  const k = NftKernelPath.open({ port: 5533, netns: a.name });
  t.after(() => k.close());
  if (k.readerKind !== 'netlink') { skipOrFail(t, 'missing prerequisite: the native addon (npm run install builds it)'); return; }
  // 500 idle contexts besides A–B.
  const idle = Array.from({ length: 500 }, (_, i) => `2001:db8:77::${(i + 1).toString(16)}`);
  for (const p of idle) assert.equal(k.watch(A, p), true);
  assert.equal(k.watch(A, B), true);
  await k.refresh();
  assert.equal(k.readings.full, 1, 'contexts were watched: a full reading');
  assert.equal(k.moved().length, 501, 'first counters of every context');
  for (let i = 0; i < 10; i++) await k.refresh();
  assert.deepEqual(k.readings, { full: 1, sumsOnly: 10 }, 'nothing moved: the sums only');
  assert.deepEqual(k.moved(), []);
  net.run(a, [process.execPath, '-e', TRAFFIC]);
  await k.refresh();
  assert.equal(k.readings.full, 2, 'A–B carried packets: a full reading');
  assert.deepEqual(k.moved(), [[A, B]]);
  assert.equal(k.read(A, B)!.outPackets, 6, '5 datagrams and a SYN');
  assert.ok(k.read(A, B)!.inPackets >= 1, 'the RST (and port-unreachables)');
  assert.deepEqual(k.read(A, idle[0]!), { outPackets: 0, inPackets: 0, outBytes: 0, inBytes: 0 });
  await k.refresh();
  assert.equal(k.readings.full, 2, 'quiet again: the sums only');
  // A context unwatched (or watched) makes the next reading full.
  k.unwatch(A, idle[0]!);
  await k.refresh();
  assert.equal(k.readings.full, 3);
  assert.deepEqual(k.moved(), []);
});

test('kernel path: a tripwire that cannot be had (here: the log group would be read in this process\'s namespace, not the table\'s) leaves the table without it, says why, and the counters work', async (t) => {
  if (!needs(t, { root: true, commands: ['ip', 'nft'] })) return;
  const { net, a } = linkedPair(t, 'kw');
  const k = NftKernelPath.open({ port: 5533, netns: a.name, tripwire: { group: 5534, quietMs: 150 } });
  t.after(() => k.close());
  assert.equal(k.tripwire, undefined, 'no tripwire: the reader reads on its fixed clock');
  assert.match(k.tripwireError ?? '', /namespace/);
  const table = net.run(a, ['nft', 'list', 'table', 'ip6', KERNEL_TABLE]).stdout;
  assert.doesNotMatch(table, /awake|log group/, 'no tripwire chain in the table');
  assert.equal(k.watch(A, B), true);
  net.run(a, [process.execPath, '-e', TRAFFIC]);
  await k.refresh();
  assert.ok((k.read(A, B)?.outPackets ?? 0) > 0, 'counted');
  assert.ok((k.total() ?? 0) > 0, 'the sums counted too');
});

test('kernel path (netlink reader): when a failed reading cannot open its socket again (the namespace is gone), later calls and close touch no descriptor that is not the reader\'s', async (t) => {
  if (!needs(t, { root: true, commands: ['ip', 'nft'] })) return;
  const net = new NetLab(t);
  const a = net.ns('kd');
  const k = NftKernelPath.open({ port: 5533, netns: a.name });
  t.after(() => k.close());
  if (k.readerKind !== 'netlink') { skipOrFail(t, 'missing prerequisite: the native addon (npm run install builds it)'); return; }
  assert.equal(k.watch(A, B), true);
  await k.refresh();
  // The reading fails (our table deleted) and its socket cannot be made again (the namespace's file is gone).
  net.run(a, ['nft', 'delete', 'table', 'ip6', KERNEL_TABLE]);
  assert.equal(spawnSync('ip', ['netns', 'del', a.name]).status, 0);
  await assert.rejects(k.refresh(), /gone/);
  // The old socket's number is free: descriptors opened now take the lowest free numbers, that one among them.
  const fds = Array.from({ length: 32 }, () => openSync('/dev/null', 'r'));
  try {
    k.unwatch(A, B);
    assert.equal(k.watch(A, '2001:db8:77::2'), false, 'no socket: nothing can be watched');
    k.close();
    for (const fd of fds) assert.doesNotThrow(() => fstatSync(fd), `descriptor ${fd} is still open`);
  } finally {
    for (const fd of fds) try { closeSync(fd); } catch { /* closed by the defect */ }
  }
});
