// Protection that lasts (issue 17): an idle cleanup of a peer known to run
// shim6 is resumable — the next packet starts a new context, and the driver
// holds that packet meanwhile — and a daemon that restarts protects the peers
// of connections already open (`protect`) when it knows them to be capable.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { configuredPair, engineEvents, primeWith, rebootShimHost, sendShim, shimAlone, shimDeliveries, shimPair } from '../sim/shim-hosts.ts';
import { State } from '../../shim/engine/index.ts';
import { tryDecodeMessage } from '../../shim/wire/index.ts';
import { sent } from '../sim/trace.ts';
import { inPersistTimer, parseSocketTable, parseTcp6Peers, parseUnackedTcpFlows, withOpenedSince } from '../../shim/daemon/open-connections.ts';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { savedContexts, SAVED_CONTEXTS_MAX } from '../../shim/daemon/sink.ts';
import { liveContexts, orderLocators, restoredUlids } from '../../shim/daemon/daemon.ts';
import { Discovery } from '../../shim/daemon/discovery.ts';
import { Logger } from '../../shim/log.ts';
import type { Engine } from '../../shim/engine/index.ts';
import type { Millis } from '../../shim/time.ts';

test('idle cleanup of a capable peer is resumable; the next packet brings the context back, announced so the driver holds it', () => {
  const { sim, a, b } = configuredPair(201);
  let seen = a.host.events.length;
  sim.runFor(130_000); // fast profile: idleTimeout 120 s
  assert.equal(a.engine.contextCount, 0);
  const closed = engineEvents(a).slice(seen).find((e) => e.kind === 'context-closed');
  assert.ok(closed?.kind === 'context-closed' && closed.reason === 'idle' && closed.resumable, 'resumable: the positive cache knows B');
  seen = a.host.events.length;
  assert.equal(sendShim(sim, a, b), false, 'no context yet: the packet is the driver\'s to hold');
  sim.flush();
  assert.ok(engineEvents(a).slice(seen).some((e) => e.kind === 'context-initiated' && e.peerUlid === b.ulid));
  sim.runFor(1000);
  assert.equal(a.engine.status().contexts[0]?.state, State.ESTABLISHED);
  assert.ok(sendShim(sim, a, b));
});

test('an ICMPv6 error to a capable peer starts no context (it answers a packet; an informational message does)', () => {
  const { sim, a, b } = configuredPair(202);
  sim.runFor(130_000); // idle cleanup: no context left, B still known to run shim6
  assert.equal(a.engine.contextCount, 0);
  const seen = a.host.events.length;
  const icmp = (type: number) => ({ srcUlid: a.ulid, dstUlid: b.ulid, nextHeader: 58, payload: new Uint8Array([type, 0, 0, 0, 0, 0, 0, 0]) });
  for (const type of [1, 3, 4]) assert.equal(a.engine.encapsulate(sim.now, icmp(type)).kind, 'no-context');
  sim.flush();
  assert.equal(a.engine.contextCount, 0, 'Destination Unreachable, Time Exceeded, Parameter Problem: no context');
  assert.equal(engineEvents(a).slice(seen).some((e) => e.kind === 'context-initiated'), false);
  assert.equal(a.engine.encapsulate(sim.now, icmp(128)).kind, 'no-context');
  sim.flush();
  assert.ok(engineEvents(a).slice(seen).some((e) => e.kind === 'context-initiated' && e.peerUlid === b.ulid), 'an Echo Request does');
});

test('protect(): a peer known to run shim6 gets a context at once; an unknown one does not', () => {
  const { sim, a, b } = configuredPair(203);
  const saved = a.engine.exportCaches(sim.now);
  // A "restart": a fresh engine with the saved caches (the same seed makes the same identities),
  // whose configuration still names B (its cache entry is the configuration's).
  const { sim: sim2, a: a2, b: b2 } = shimPair(203, { a: (ids) => ({ peers: [{ ulid: ids.b.ulid, mode: 'configured' }] }) });
  assert.equal(b2.ulid, b.ulid);
  a2.engine.importCaches(sim2.now, saved);
  assert.equal(a2.engine.protect(sim2.now, '2001:db8:99::1'), false, 'unknown peer: nothing');
  assert.equal(a2.engine.protect(sim2.now, b.ulid), true);
  assert.equal(a2.engine.protect(sim2.now, b.ulid), false, 'once');
  sim2.flush();
  assert.equal(engineEvents(a2).some((e) => e.kind === 'context-initiated'), false, 'the open connection is not held while the context comes up');
  sim2.runFor(1000);
  assert.equal(a2.engine.status().contexts[0]?.state, State.ESTABLISHED);
  void a;
});

test('the kernel socket table: peers of open TCP connections, global IPv6 only, each once', () => {
  const head = '  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n';
  const row = (remote: string, st: string) => `   0: B80D0120000000000000000001000000:1F90 ${remote}:C350 ${st} 00000000:00000000 00:00000000 00000000     0        0 1 1 0 20 4 30 10 -1\n`;
  const b1 = 'B80D0120000000000000000010000000'; // 2001:db8::10 in /proc's word order
  const text = head + row(b1, '01') + row(b1, '01') + row('B80D0120000000000000000020000000', '0A') + row('00000000000000000000000001000000', '01')
    + row('0000000000000000FFFF00000100007F', '01') + row('000080FE000000000000000001000000', '01') + row('B80D0120000000000000000030000000', '08');
  assert.deepEqual(parseTcp6Peers(text), ['2001:db8::10', '2001:db8::30']);
});

test('the kernel socket tables: each open connection with its local address; UDP sockets only when connected', () => {
  const head = '  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n';
  const row = (local: string, remote: string, st: string) => `  10: ${local}:C350 ${remote}:1B58 ${st} 00000000:00000000 00:00000000 00000000     0        0 1 2 0000000000000000 0\n`;
  const a1 = 'B80D0120000000000000000001000000'; // 2001:db8::1
  const a9 = 'B80D0120000000000000000009000000'; // 2001:db8::9
  const b1 = 'B80D0120000000000000000010000000'; // 2001:db8::10
  const any = '00000000000000000000000000000000';
  const udp = head + row(a1, b1, '01') + row(a1, b1, '01') + row(a9, b1, '01') + row(any, any, '07') + row(a1, any, '07')
    + row('0000000000000000FFFF00000100007F', '0000000000000000FFFF00000200007F', '01') + row('000080FE000000000000000001000000', b1, '01');
  assert.deepEqual(parseSocketTable(udp, 'udp'), [
    { local: '2001:db8::1', peer: '2001:db8::10', proto: 'udp' },
    { local: '2001:db8::9', peer: '2001:db8::10', proto: 'udp' },
  ], 'connected sockets, each local/peer pair once; unconnected (07), IPv4-mapped and link-local ones are no connection');
  const b2 = 'B80D0120000000000000000020000000'; // 2001:db8::20
  const b3 = 'B80D0120000000000000000030000000'; // 2001:db8::30
  const tcp = head + row(a9, b1, '01') + row(a1, b1, '0A') + row(a1, b1, '08') + row(a1, b2, '02') + row(a1, b3, '03');
  assert.deepEqual(parseSocketTable(tcp, 'tcp').map((c) => c.local), ['2001:db8::9', '2001:db8::1'], 'TCP: established and close-wait, with their own local address');
  assert.deepEqual(parseSocketTable(tcp, 'tcp', true).map((c) => c.peer), ['2001:db8::10', '2001:db8::10', '2001:db8::20'],
    'at a start, our connections still opening (SYN_SENT) too; never a peer\'s handshake (SYN_RECV), whose source anybody can forge');
});

test('the socket tables read again at a start: the first reading, then the connections opened since, each local/peer pair once', () => {
  const c = (local: string, peer: string, proto: 'tcp' | 'udp' = 'tcp') => ({ local, peer, proto });
  const first = [c('2001:db8::1', '2001:db8::10'), c('2001:db8::1', '2001:db8::20', 'udp')];
  const again = [c('2001:db8::1', '2001:db8::20'), c('2001:db8::1', '2001:db8::30'), c('2001:db8::9', '2001:db8::10')];
  assert.deepEqual(withOpenedSince(first, again), [...first, c('2001:db8::1', '2001:db8::30'), c('2001:db8::9', '2001:db8::10')],
    'a connection closed since stays (its peer is still protected); a pair already there is not added twice');
  assert.deepEqual(withOpenedSince([], again), again);
});

test('the kernel socket table: open TCP flows with octets in flight (send queue not empty), with their ports', () => {
  const head = '  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n';
  const row = (local: string, remote: string, st: string, tx: string, tr = '01') => `   0: ${local} ${remote} ${st} ${tx}:00000000 ${tr}:00000100 00000003     0        0 1 1 0 20 4 30 10 -1\n`;
  const a1 = 'B80D0120000000000000000001000000'; // 2001:db8::1
  const b1 = 'B80D0120000000000000000010000000'; // 2001:db8::10
  const text = head + row(`${a1}:C350`, `${b1}:1F90`, '01', '00002A10') + row(`${a1}:C351`, `${b1}:1F90`, '01', '00000000')
    + row(`${a1}:C352`, `${b1}:1F90`, '08', '00000001') + row(`${a1}:C353`, `${b1}:1F90`, '0A', '00000005')
    + row(`${a1}:C354`, `000080FE000000000000000001000000:1F90`, '01', '00000005') + row(`${a1}:0000`, `${b1}:1F90`, '01', '00000005')
    + 'junk\n' + row(`${a1}`, `${b1}:1F90`, '01', '00000005') + row(`${a1}:C355`, `${b1}:1F90`, '01', 'zz')
    + row(`${a1}:C356`, `${b1}:1F90`, '01', '00100000', '04') + row(`${a1}:C357`, `${b1}:1F90`, '01', '00000010', '00');
  assert.deepEqual(parseUnackedTcpFlows(text), [
    { local: '2001:db8::1', localPort: 0xc350, peer: '2001:db8::10', peerPort: 8080, persist: false },
    { local: '2001:db8::1', localPort: 0xc352, peer: '2001:db8::10', peerPort: 8080, persist: false },
    { local: '2001:db8::1', localPort: 0xc356, peer: '2001:db8::10', peerPort: 8080, persist: true },
    { local: '2001:db8::1', localPort: 0xc357, peer: '2001:db8::10', peerPort: 8080, persist: false },
  ], 'established and close-wait with a send queue, those in the persist timer (tr 04) marked; not an empty queue, a listener, a link-local peer, port 0 or a broken line');
  // The driver's second reading before a kick: this flow, in the persist timer now.
  const dir = mkdtempSync(path.join(tmpdir(), 'shim6-tcp6-'));
  try {
    const file = path.join(dir, 'tcp6');
    writeFileSync(file, text);
    const flow = (localPort: number, peer = '2001:db8::10') => ({ local: '2001:db8::1', localPort, peer, peerPort: 8080 });
    assert.deepEqual([...inPersistTimer([flow(0xc356), flow(0xc350), flow(0xc356, '2001:db8::11')], file), ...inPersistTimer([flow(0xc356)], path.join(dir, 'gone'))],
      [true, false, false, false], 'in the timer; not a flow with its retransmission timer, another peer\'s, or a table that cannot be read');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('protect() with the connection\'s local ULID: a ULID whose address is gone (kept BROKEN among the locators) carries the context again after a restart', () => {
  for (const peerKept of [true, false]) {
    const { sim, a, b } = configuredPair(209);
    const oldUlid = a.ulid; // the ULID the open connection is bound to
    const newUlid = a.locators[1]!;
    const saved = a.engine.exportCaches(sim.now);
    if (!peerKept) { a.engine.close(sim.now); sim.runFor(2000); assert.equal(b.engine.contextCount, 0); } // SIGTERM: Close first
    // The restart after the ULID's address was removed: the new engine's ULID is the next locator,
    // the old one is kept among the locators, BROKEN (the daemon's orderLocators `keep`).
    rebootShimHost(sim, a, { localUlid: newUlid, localLocators: [{ address: newUlid }, { address: oldUlid, flags: 0x01 }], peers: [{ ulid: b.ulid, mode: 'configured' }] });
    a.engine.importCaches(sim.now, saved);
    assert.equal(a.engine.protect(sim.now, b.ulid, '2001:db8:99::9'), false, 'a local address that is not ours starts nothing');
    assert.equal(a.engine.protect(sim.now, b.ulid, oldUlid), true);
    assert.equal(a.engine.protect(sim.now, b.ulid, oldUlid), false, 'once');
    sim.runFor(2000);
    const mine = a.engine.status().contexts;
    assert.equal(mine.length, 1);
    assert.equal(mine[0]!.state, State.ESTABLISHED);
    assert.equal(mine[0]!.localUlid, oldUlid, 'the context is the one the socket uses: old ULID ↔ B');
    assert.notEqual(mine[0]!.pair.local, oldUlid, 'its packets leave from a locator that is still there');
    const theirs = b.engine.status().contexts.filter((c) => c.state === State.ESTABLISHED);
    assert.deepEqual(theirs.map((c) => c.peerUlid), [oldUlid], `B's context names A by the old ULID (peer kept its context: ${peerKept})`);
    const before = shimDeliveries(sim, b).length;
    assert.equal(sendShim(sim, a, b, oldUlid), true, 'the connection\'s packets go through the context');
    sim.runFor(200);
    assert.equal(shimDeliveries(sim, b).length, before + 1);
  }
});

test('the default local ULID of protect() is the engine\'s own', () => {
  const { sim, a, b } = configuredPair(210);
  const saved = a.engine.exportCaches(sim.now);
  rebootShimHost(sim, a, { peers: [{ ulid: b.ulid, mode: 'configured' }] });
  a.engine.importCaches(sim.now, saved);
  assert.equal(a.engine.protect(sim.now, b.ulid), true);
  sim.runFor(2000);
  assert.equal(a.engine.status().contexts[0]?.localUlid, a.ulid);
});

test('the cache file\'s contexts: ULID pairs of live contexts, each local ULID kept first under the bound; read back leniently', () => {
  const traffic = (pairs: Array<[string, string]>) => ({ traffic: () => pairs.map(([localUlid, peerUlid], i) => ({ localUlid, peerUlid, contextTag: i, bytesIn: 0, bytesOut: 0 })) });
  const many: Array<[string, string]> = Array.from({ length: SAVED_CONTEXTS_MAX + 10 }, (_, i) => ['2001:db8::a', `2001:db8:b::${(i + 1).toString(16)}`]);
  const out = liveContexts(traffic([...many, ['2001:db8::a', '2001:db8:b::1'], ['2001:db8::c', '2001:db8:b::2']]));
  assert.equal(out.length, SAVED_CONTEXTS_MAX, 'bounded');
  assert.deepEqual(out.slice(0, 2), [{ localUlid: '2001:db8::a', peerUlid: '2001:db8:b::1' }, { localUlid: '2001:db8::c', peerUlid: '2001:db8:b::2' }], 'every local ULID before a second pair of any');
  assert.deepEqual(savedContexts({ positive: [], negative: [] }), [], 'a file of an earlier version: none');
  assert.deepEqual(savedContexts({ contexts: [{ localUlid: '2001:DB8:0::a', peerUlid: '2001:db8:b::1' }, { localUlid: 'x', peerUlid: '2001:db8::1' }, 7, null, { localUlid: '2001:db8::a' }] }),
    [{ localUlid: '2001:db8::a', peerUlid: '2001:db8:b::1' }], 'canonical addresses; malformed entries skipped');
  assert.equal(savedContexts({ contexts: many.map(([localUlid, peerUlid]) => ({ localUlid, peerUlid })) }).length, SAVED_CONTEXTS_MAX);
});

test('a restart keeps the ULIDs of open connections whose address is gone when the previous daemon\'s contexts had them; other addresses are left alone', () => {
  const found = [{ address: '2001:db8:2::a', ifname: 'q', up: true }, { address: '2001:db8:1::1:a', ifname: 'p', up: true }];
  const saved = [{ localUlid: '2001:db8:1::a', peerUlid: '2001:db8:1::b' }];
  const open = [
    { local: '2001:db8:1::a', peer: '2001:db8:1::b', proto: 'tcp' as const }, // bound to the old ULID
    { local: '2001:db8:1::a', peer: '2001:db8:9::9', proto: 'udp' as const },
    { local: '2001:db8:2::a', peer: '2001:db8:1::b', proto: 'tcp' as const }, // a locator of ours now
    { local: '2001:db8:7::7', peer: '2001:db8:1::b', proto: 'tcp' as const }, // neither: left alone
  ];
  const restored = restoredUlids(open, found, saved);
  assert.deepEqual(restored, ['2001:db8:1::a']);
  const hba = { members: [{ address: '2001:db8:1::a', params: '01' }, { address: '2001:db8:2::a', params: '02' }] } as unknown as Parameters<typeof orderLocators>[1];
  const proofs = new Map(restored.map((u) => [u, Uint8Array.of(1)]));
  const locals = orderLocators(found, hba, undefined, undefined, proofs);
  assert.deepEqual(locals.map((l) => [l.address, l.flags, l.priority]), [['2001:db8:2::a', 0, 0], ['2001:db8:1::1:a', 0, 1], ['2001:db8:1::a', 1, 2]],
    'kept BROKEN among the locators, after the others: the ULID is the first member the host still has, not the one that is gone');
  assert.deepEqual(locals.map((l) => l.cgaParams), [Uint8Array.of(2), undefined, Uint8Array.of(1)], 'each member, and the kept ULID, with its own PDS');
  assert.deepEqual(restoredUlids(open, found, []), [], 'no saved context had it: nothing kept');
});

test('discover(): integrated sends the I1 exchange itself, nothing held; independent probes first; negative and off start nothing', () => {
  for (const mode of ['integrated', 'independent'] as const) {
    const { sim, a, b } = shimPair(205, { a: { defaultMode: mode } });
    assert.equal(a.engine.discover(sim.now, b.ulid, a.ulid), 'not-local', 'our own address is no peer');
    assert.equal(a.engine.discover(sim.now, a.ulid, b.ulid), mode === 'integrated' ? 'started' : 'probing');
    assert.equal(a.engine.discover(sim.now, a.ulid, b.ulid), 'context', 'one discovery per destination at a time');
    sim.flush();
    assert.equal(engineEvents(a).some((e) => e.kind === 'context-initiated'), false, 'the application\'s flow is not held');
    sim.runFor(1000);
    if (mode === 'independent') {
      assert.ok(engineEvents(a).some((e) => e.kind === 'peer-supported' && e.peerUlid === b.ulid), 'the probe pair was answered');
      assert.equal(a.engine.contextCount, 0, 'the probe leaves no context');
      assert.equal(a.engine.protect(sim.now, b.ulid), true, 'the daemon then protects the flow');
      sim.runFor(1000);
    }
    assert.equal(a.engine.status().contexts[0]?.state, State.ESTABLISHED);
  }
  const { sim, a } = shimAlone(207, { peers: [{ ulid: '2001:db8:b9::1', mode: 'off' }] }, ['2001:db8:a1::/64']);
  assert.equal(a.engine.discover(sim.now, a.ulid, '2001:db8:b9::1'), 'off');
  a.engine.absent(sim.now, { addresses: ['2001:db8:b8::1'], ttl: 60 });
  assert.equal(a.engine.discover(sim.now, a.ulid, '2001:db8:b8::1'), 'negative');
  assert.equal(a.engine.contextCount, 0);
});

test('after the peer closed the context, packets still on their way start no new exchange; the peer\'s next exchange is answered', () => {
  const { sim, a, b } = configuredPair(208);
  b.engine.close(sim.now);
  sim.runFor(2000);
  assert.equal(a.engine.contextCount, 0);
  assert.ok(engineEvents(a).some((e) => e.kind === 'context-closed' && e.reason === 'peer-close'));
  const seen = engineEvents(a).length;
  assert.equal(sendShim(sim, a, b), false);
  sim.runFor(2000);
  assert.equal(a.engine.contextCount, 0, 'a straggler does not start a context towards a peer that just closed');
  assert.equal(engineEvents(a).slice(seen).some((e) => e.kind === 'context-initiated'), false);
  assert.equal(b.engine.protect(sim.now, a.ulid), true, 'the peer comes back');
  sim.runFor(2000);
  assert.equal(a.engine.status().contexts[0]?.state, State.ESTABLISHED);
});

test('after our own Close (a daemon stopping), our packets still on their way start no new exchange, while the Close is unanswered or after its Ack; protect() starts the next', () => {
  const { sim, a, b } = configuredPair(209);
  a.engine.close(sim.now);
  const seen = engineEvents(a).length;
  assert.equal(sendShim(sim, a, b), false, 'CLOSING: not carried');
  sim.runFor(2000);
  assert.equal(a.engine.contextCount, 0);
  assert.ok(engineEvents(a).some((e) => e.kind === 'context-closed' && e.reason === 'local-close'));
  assert.equal(sendShim(sim, a, b), false);
  sim.runFor(2000);
  assert.equal(a.engine.contextCount, 0, 'a straggler of ours does not start a context with the peer we just closed');
  assert.equal(b.engine.contextCount, 0, 'nothing left behind at the peer');
  assert.equal(engineEvents(a).slice(seen).some((e) => e.kind === 'context-initiated'), false);
  assert.equal(a.engine.protect(sim.now, b.ulid), true);
  sim.runFor(2000);
  assert.equal(a.engine.status().contexts[0]?.state, State.ESTABLISHED);
  assert.equal(sendShim(sim, a, b), true, 'carried again');
});

test('the daemon\'s discovery bounds: one per destination per 5 s, 64 in flight, 50 starts per second; outcomes free the slot', () => {
  let now = 1_000_000;
  const calls: string[] = [];
  const command = (<T>(fn: (e: Engine, t: Millis) => T): T => fn({ discover: (_t: Millis, _l: string, p: string) => { calls.push(p); return 'started'; } } as unknown as Engine, now as Millis)) as never;
  const d = new Discovery(command, new Logger({ level: 'error', format: 'json', component: 'test' }), () => now);
  const flow = (i: number) => ({ src: '2001:db8:a1::1', dst: `2001:db8:b1::${i.toString(16)}`, proto: 6 });
  d.onFlow(flow(1));
  d.onFlow(flow(1));
  assert.equal(calls.length, 1, 'the same destination again within 5 s: skipped');
  assert.equal(d.stats.skipped['per-destination'], 1);
  for (let i = 2; i <= 100; i++) d.onFlow(flow(i));
  assert.equal(calls.length, 50, 'the burst of 50 starts, then the rate bound');
  assert.ok((d.stats.skipped.rate ?? 0) >= 50);
  now += 1000; // 50 more tokens; the in-flight bound (64) now decides
  for (let i = 101; i <= 200; i++) d.onFlow(flow(i));
  assert.equal(calls.length, 64);
  assert.ok((d.stats.skipped['in-flight'] ?? 0) > 0);
  d.onEvent({ kind: 'context-failed', localUlid: '2001:db8:a1::1', peerUlid: flow(2).dst, reason: 'no-answer' });
  now += 1000;
  d.onFlow(flow(201));
  assert.equal(calls.length, 65, 'an outcome frees its slot');
  assert.equal(d.stats.failed, 1);
});

test('the daemon\'s discovery bounds run on a clock the wall clock\'s steps do not move: a step back of an hour stalls nothing', (t) => {
  const calls: string[] = [];
  const command = (<T>(fn: (e: Engine, t: Millis) => T): T => fn({ discover: (_t: Millis, _l: string, p: string) => { calls.push(p); return 'started'; } } as unknown as Engine, 0 as Millis)) as never;
  // The wall clock, which NTP may step.
  const wall = Date.now;
  let step = 0;
  Date.now = () => wall() + step;
  t.after(() => { Date.now = wall; });
  const d = new Discovery(command, new Logger({ level: 'error', format: 'json', component: 'test' })); // its own clock, as in the daemon
  const flow = (i: number) => ({ src: '2001:db8:a1::1', dst: `2001:db8:b1::${i.toString(16)}`, proto: 6 });
  d.onFlow(flow(1));
  assert.equal(calls.length, 1);
  step = -3_600_000; // stepped back an hour (a host whose clock ran ahead)
  for (let i = 2; i <= 11; i++) d.onFlow(flow(i));
  assert.equal(calls.length, 11, `new destinations are discovered as before the step: ${JSON.stringify(d.stats.skipped)}`);
  d.onFlow(flow(1));
  assert.equal(calls.length, 11, 'the same destination within 5 s: still skipped');
});

/**
 * Both daemons restarted in turn, under the rfc timers (the default profile: an I2 cycle of
 * 4 + 8 + 16 s, each ±50 %): B sets its saved context up again; A's old instance answers its I1
 * with an R1 and is gone before B's I2, which meets A's new instance, unable to verify the old
 * one's validator. 1.7 s later, B still in I2-SENT.
 */
function restartRace(): ReturnType<typeof configuredPair> & { i2At: number } {
  const rfc = { profile: 'rfc' } as const;
  const pair = configuredPair(205, { a: rfc, b: rfc });
  const { sim, a, b } = pair;
  const savedB = b.engine.exportCaches(sim.now);
  rebootShimHost(sim, b, rfc);
  b.engine.importCaches(sim.now, savedB);
  assert.equal(b.engine.protect(sim.now, a.ulid, b.ulid), true);
  sim.flush();
  sim.runFor(45); // B's I1 at A after 20 ms, A's R1 back at 40 ms, B's I2 on its way
  const i2At = sim.now;
  rebootShimHost(sim, a, rfc);
  sim.runFor(1700);
  assert.equal(b.engine.status().contexts[0]?.state, State.I2_SENT, 'B: waiting for the R2 to its I2 (the race these tests are about)');
  return { ...pair, i2At };
}

test('a restart race: B sets its saved context up again, A\'s old instance answers R1 and is gone before the I2; A\'s new one is established by B\'s R2 to its I1 (§7.4), and B by A\'s R2 to the I1 B sends with its I2\'s nonce right after that R2, long before its I2 cycle\'s first timeout', () => {
  const { sim, a, b, i2At } = restartRace();
  primeWith(sim, a, b);
  sendShim(sim, a, b);
  // A's I1 at B after 20 ms; B's R2 and its I1 at A after 40 ms; A's R2 at B after 60 ms.
  sim.runFor(150);
  assert.equal(a.engine.status().contexts[0]?.state, State.ESTABLISHED, 'A\'s new instance: established by B\'s R2 to its I1');
  assert.equal(b.engine.status().contexts[0]?.state, State.ESTABLISHED, 'B: established by A\'s R2 to its I1');
  // Before the first timeout of B's I2 cycle (2–6 s after its I2), where the fallback to I1 would have come.
  assert.ok(sim.now - i2At < 2000, `B established ${sim.now - i2At} ms after its I2, before the cycle's first timeout`);
  const aCtx = a.engine.status().contexts[0]!;
  const bCtx = b.engine.status().contexts[0]!;
  assert.equal(aCtx.peerContextTag, bCtx.contextTag, 'A sends with B\'s tag');
  assert.equal(bCtx.peerContextTag, aCtx.contextTag, 'B sends with A\'s tag');
  assert.ok(sendShim(sim, a, b) && sendShim(sim, b, a), 'both ends carry payload through the context');
  sim.runFor(1000);
  assert.equal(a.engine.status().contexts[0]?.reap, 'Operational', 'A\'s REAP Operational: B answers');
});

/** restartRace, with the I1 B sends with its I2's nonce (after its R2 to A's I1) lost on its way; A's first packet sent. */
function raceLosingBsI1(): ReturnType<typeof restartRace> & { lost: () => number } {
  const race = restartRace();
  const { sim, a, b } = race;
  let lost = 0;
  const isI1 = (p: { bytes: Uint8Array }): boolean => { const r = tryDecodeMessage(p.bytes); return r.ok && r.message.type === 'I1'; };
  for (const from of b.locators) for (const to of a.locators) sim.setLink(from, to, { dropIf: (p) => isI1(p) && lost++ === 0 }, 'forward');
  primeWith(sim, a, b);
  sendShim(sim, a, b);
  sim.runFor(150);
  return { ...race, lost: () => lost };
}

test('a restart race whose I1 from B is lost: B\'s I2 cycle, nudged by A\'s packets, falls back to I1 at its first timeout, and both are ESTABLISHED', () => {
  const { sim, a, b, lost } = raceLosingBsI1();
  assert.equal(lost(), 1, 'B\'s I1 was sent, and lost');
  assert.equal(a.engine.status().contexts[0]?.state, State.ESTABLISHED, 'A\'s new instance: established by B\'s R2 to its I1');
  assert.equal(b.engine.status().contexts[0]?.state, State.I2_SENT, 'B: still waiting for the R2 to its I2');
  // A talks every second, more often than B's I2 timer: each packet makes B send its I2 again (§12.2).
  const talking = sim.now;
  for (let i = 0; i < 60 && b.engine.status().contexts[0]?.state !== State.ESTABLISHED; i++) {
    sendShim(sim, a, b);
    sim.runFor(1000);
  }
  assert.equal(b.engine.status().contexts[0]?.state, State.ESTABLISHED, 'B fell back to I1 and was answered: established');
  // At the I2's first timeout (at most 6 s after the I2), not once the cycle ran out (14–42 s).
  assert.ok(sim.now - talking <= 6000, `B fell back to I1 at its first I2 timeout: established ${sim.now - talking} ms after A began talking`);
  sim.runFor(5000);
  assert.ok(sendShim(sim, a, b) && sendShim(sim, b, a), 'both ends carry payload through the context');
  sim.runFor(1000);
  assert.equal(a.engine.status().contexts[0]?.reap, 'Operational', 'A\'s REAP back to Operational: B answers its Probes');
});

test('a restart race whose I1 from B is lost, under a stream: B sends its I2 again at most once per half I2 timeout, not once per packet of A\'s (3,916 I2s in 4 s at 1,000 packets/s)', () => {
  const { sim, a, b } = raceLosingBsI1();
  assert.equal(b.engine.status().contexts[0]?.state, State.I2_SENT);
  const i2s = (): number => sent(sim, 'b').filter((l) => l.type === 'I2').length;
  const before = i2s();
  const talking = sim.now;
  for (let i = 0; i < 60_000 && b.engine.status().contexts[0]?.state !== State.ESTABLISHED; i++) {
    sendShim(sim, a, b); // a packet every millisecond
    sim.runFor(1);
  }
  assert.equal(b.engine.status().contexts[0]?.state, State.ESTABLISHED, 'B fell back to I1 at its first I2 timeout and was answered');
  const took = sim.now - talking;
  assert.ok(took <= 6000, `established ${took} ms after A began talking`);
  // One nudged I2 per i2Timeout / 2 (2 s under rfc) while the stream runs; the Retransmit timer's own are apart.
  assert.ok(i2s() - before <= Math.ceil(took / 2000) + 1, `I2s while A streamed for ${took} ms: ${i2s() - before}`);
});
