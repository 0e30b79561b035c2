// ICMPv6 errors through the driver (in memory, real engines): the transport's errors reach the engine;
// an I1 to a host without the daemon ends in the negative cache at once; a Packet Too Big about an
// application packet reaches the application through the TUN translated to the ULIDs, and later packets
// too big for the context's path get a Packet Too Big from the driver itself. The same with real
// sockets, namespaces and daemons: test/e2e/icmp.test.ts.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { EngineDriver } from '../../shim/dataplane/engine-driver.ts';
import { Engine, type EngineEvent } from '../../shim/engine/index.ts';
import { MemoryNetwork, type MemoryTransport } from '../../shim/dataplane/udp.ts';
import { MemoryTun } from '../../shim/dataplane/tun.ts';
import { buildPacket, splitPacket, ulpChecksum, IPPROTO_ICMPV6, IPPROTO_TCP } from '../../shim/dataplane/ip6-packet.ts';
import { formatIpv6 } from '../../shim/wire/ipv6.ts';
import { hbaIdentity, A_PREFIXES, B_PREFIXES } from '../sim/shim-hosts.ts';
import { SimRng } from '../helpers/rng.ts';
import { waitFor } from '../helpers/wait.ts';

interface Node { driver: EngineDriver<Engine>; engine: Engine; tun: MemoryTun; transport: MemoryTransport; ulid: string; locators: string[]; events: EngineEvent[] }

async function node(t: TestContext, net: MemoryNetwork, seed: number, prefixes: readonly string[], name: string, plain?: Uint8Array[][], routes?: string[]): Promise<Node> {
  const id = hbaIdentity(prefixes, new SimRng(seed));
  const engine = new Engine({ localLocators: id.locators.map((address) => ({ address })), localUlid: id.ulid, cgaParams: id.params, profile: 'fast' }, new SimRng(seed));
  const tun = new MemoryTun(name, 1444);
  const transport = net.transport(5533);
  const events: EngineEvent[] = [];
  const driver = new EngineDriver<Engine>({
    engine, transport, tun, onEvent: (e) => events.push(e), holdMs: 60_000,
    ...(plain ? { sendPlain: (ps: readonly Uint8Array[]) => { plain.push([...ps]); routes?.push('plain'); return ps.length; } } : {}),
    ...(routes ? { routes: { contextUp: (_l: string, p: string) => { routes.push(`up ${p}`); }, contextDown: async (p: string) => { await new Promise((r) => setTimeout(r, 5)); routes.push(`down ${p}`); } } } : {}),
  });
  t.after(() => driver.close());
  for (const l of id.locators) await driver.bindLocator(l);
  driver.command((e, now) => e.setLocalLocators(now, id.locators.map((address) => ({ address }))));
  return { driver, engine, tun, transport, ulid: id.ulid, locators: [...id.locators], events };
}

/** An ICMPv6 error packet written into the TUN: its fields, and whether its checksum holds. */
function icmpOf(p: Uint8Array) {
  const s = splitPacket(p);
  assert.ok(s, 'an IPv6 packet');
  assert.equal(s.nextHeader, IPPROTO_ICMPV6);
  const icmp = s.payload;
  return {
    src: s.srcUlid, dst: s.dstUlid, type: icmp[0], code: icmp[1], info: new DataView(icmp.buffer, icmp.byteOffset).getUint32(4),
    checksumOk: ulpChecksum(s.srcUlid, s.dstUlid, IPPROTO_ICMPV6, icmp) === 0,
    inner: { src: formatIpv6(icmp, 16), dst: formatIpv6(icmp, 32), nextHeader: icmp[14], body: icmp.subarray(48) },
  };
}

test('an I1 to a host without the daemon: Port Unreachable through the transport puts it in the negative cache at once', async (t) => {
  const net = new MemoryNetwork();
  const a = await node(t, net, 31, A_PREFIXES, 'ia');
  const legacy = '2001:db8:1e9::1';
  net.host(legacy);
  a.driver.command((e, now) => e.prime(now, { ulid: legacy, locators: [], ttl: 300, source: 'dns' }));
  await waitFor(() => a.events.some((e) => e.kind === 'peer-unsupported'), 'peer-unsupported');
  const ev = a.events.find((e) => e.kind === 'peer-unsupported');
  assert.deepEqual(ev, { kind: 'peer-unsupported', peerUlid: legacy, address: legacy, reason: 'refused' });
  assert.equal(a.driver.stats.icmpIn, 1);
  assert.equal(a.driver.stats.icmpActed, 1);
  assert.equal(a.engine.status(a.driver.now()).capability!.negative[0]!.reason, 'refused');
});

test('packets held for a DNS-primed peer whose I1 is refused leave as plain IPv6 at once, after its route is withdrawn', async (t) => {
  const net = new MemoryNetwork();
  const plain: Uint8Array[][] = [];
  const routes: string[] = [];
  const a = await node(t, net, 33, A_PREFIXES, 'ha', plain, routes);
  const legacy = '2001:db8:1e9::2';
  net.host(legacy);
  net.blackhole(legacy, a.locators[0]!); // the Port Unreachable waits until the SYN is held
  a.driver.command((e, now) => e.prime(now, { ulid: legacy, locators: [], ttl: 300, source: 'dns' }));
  assert.deepEqual(routes, [`up ${legacy}`], 'routed into the TUN while the context is set up (the handshake hold)');
  const syn = buildPacket(a.ulid, legacy, IPPROTO_TCP, new Uint8Array(20));
  a.tun.inject(syn);
  await waitFor(() => a.driver.stats.tunIn === 1, 'the SYN read from the TUN');
  assert.equal(a.driver.stats.noContext, 0, 'held');
  net.repair(legacy, a.locators[0]!);
  // The I1's retransmission (fast profile: 300 ms) draws the Port Unreachable now.
  await waitFor(() => plain.length === 1, 'the held SYN sent as plain IPv6');
  const hop = (p: Uint8Array, h: number) => { const c = p.slice(); c[7] = h; return c; };
  assert.deepEqual(plain[0], [hop(syn, 63)], 'as sent, one hop further');
  assert.deepEqual(routes, [`up ${legacy}`, `down ${legacy}`, 'plain'], 'plain only once the route is gone');
  assert.equal(a.driver.stats.plain, 1);
  // A packet the kernel had routed into the TUN before the route went: plain too; one at hop limit 1 goes nowhere.
  a.tun.inject(syn);
  a.tun.inject(hop(syn, 1));
  await waitFor(() => plain.length === 2 && a.driver.stats.drops['hop-limit'] === 1, 'the late SYN sent plain, the last hop dropped');
  assert.deepEqual(plain[1], [hop(syn, 63)]);
  assert.equal(a.driver.stats.noContext, 0);
});

test('Packet Too Big about an application packet: translated into the TUN; then the driver answers too-big packets itself', async (t) => {
  const net = new MemoryNetwork();
  const a = await node(t, net, 41, A_PREFIXES, 'pa');
  const b = await node(t, net, 42, B_PREFIXES, 'pb');
  a.driver.command((e, now) => e.prime(now, { ulid: b.ulid, locators: b.locators.map((address, i) => ({ address, flags: 0, priority: i, weight: 0 })), ttl: 300, source: 'configured' }));
  await waitFor(() => a.events.some((e) => e.kind === 'context-established'), 'context');
  const ctx = a.engine.status().contexts[0]!;
  // What A's daemon sent for a 1400-octet TCP packet: payload header (CT(peer)) + ULP, from the current pair.
  const tcp = new Uint8Array(1360).map((_, i) => i & 0xff);
  const sent = a.engine.encapsulate(a.driver.now(), { srcUlid: a.ulid, dstUlid: b.ulid, nextHeader: IPPROTO_TCP, payload: tcp });
  assert.equal(sent.kind, 'send');
  if (sent.kind !== 'send') return;
  const quoted = new Uint8Array([...sent.header, ...tcp]);
  const router = '2001:db8:77::1';
  a.transport.receiveError({ type: 2, code: 0, info: 1400, offender: router, src: ctx.pair.local, dst: ctx.pair.peer, dstPort: 5533, quoted });
  a.driver.flush();
  assert.equal(a.tun.written.length, 1, 'one ICMPv6 error into the TUN');
  const m = icmpOf(a.tun.written[0]!);
  assert.deepEqual({ src: m.src, dst: m.dst, type: m.type, code: m.code, info: m.info, checksumOk: m.checksumOk }, { src: router, dst: a.ulid, type: 2, code: 0, info: 1384, checksumOk: true });
  assert.deepEqual({ src: m.inner.src, dst: m.inner.dst, nextHeader: m.inner.nextHeader }, { src: a.ulid, dst: b.ulid, nextHeader: IPPROTO_TCP }, 'the quoted packet carries the ULIDs');
  assert.deepEqual(m.inner.body, tcp.subarray(0, m.inner.body.length), 'and the application\'s own bytes');
  assert.equal(1280 - 48, m.inner.body.length + 40, 'cut to fit 1280 octets');

  // The context now carries at most 1384-octet packets: a larger one gets the driver's own PTB.
  a.tun.inject(buildPacket(a.ulid, b.ulid, IPPROTO_TCP, new Uint8Array(1385 - 40).fill(0xbb)));
  await waitFor(() => a.tun.written.length === 2, 'the driver\'s Packet Too Big');
  const own = icmpOf(a.tun.written[1]!);
  assert.deepEqual({ src: own.src, dst: own.dst, type: own.type, info: own.info, checksumOk: own.checksumOk }, { src: b.ulid, dst: a.ulid, type: 2, info: 1384, checksumOk: true });
  assert.equal(a.driver.stats.tooBig, 1);
  a.tun.inject(buildPacket(a.ulid, b.ulid, IPPROTO_TCP, new Uint8Array(1384 - 40).fill(0xcc)));
  await waitFor(() => b.tun.written.length === 1, 'a packet that fits goes through');
  assert.equal(b.tun.written[0]!.length, 1384, 'and only that one: the too-big packet was not sent');

  // A forged error (wrong tag) changes nothing and reaches no one.
  const forged = quoted.slice(); forged[5]! ^= 0xff;
  a.transport.receiveError({ type: 2, code: 0, info: 1300, offender: router, src: ctx.pair.local, dst: ctx.pair.peer, dstPort: 5533, quoted: forged });
  a.driver.flush();
  assert.equal(a.tun.written.length, 2);
  assert.equal(a.engine.status().contexts[0]!.pathMtu, 1384);
  assert.equal(a.driver.stats.drops['icmp-unmatched'], 1);
});
