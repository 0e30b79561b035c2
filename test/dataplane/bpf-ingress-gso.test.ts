// The kernel decapsulation (native/bpf/shim6_tc.bpf.c, shim6_ingress) and an skb holding several
// datagrams (UDP GSO across a veth, or GRO for the daemon's socket, which has UDP_GRO): each
// datagram has its own payload header, so the skb is not one encapsulated packet and must go to the
// daemon's socket whole, whatever the datagrams after the first carry. Two contexts on one locator
// pair (two ULID pairs between the same hosts, re-homed onto the same pair) put datagrams of both
// tags in one run of the peer's UDP GSO; before, only the second datagram's header was compared
// with the first's, and a run whose second datagram had another tag was decapsulated whole as the
// first one's packet (its IPv6 payload length covering every datagram after it), and neither
// datagram arrived.
// Runs BpfEncap in a namespace of its own (`ip netns exec` also gives it a mount namespace, where
// it mounts its own bpffs); the peer's daemon is a NativeUdpTransport in a second namespace.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CLANG, needs } from '../helpers/prereq.ts';
import { NetLab } from '../helpers/netns.ts';
import { DEADLINE_MS } from '../helpers/wait.ts';
import { TREE_LOADER, treeModule } from '../helpers/tree.ts';

test('kernel decapsulation: one skb of two datagrams with different context tags goes to the daemon\'s socket, each datagram whole', (t) => {
  if (!needs(t, { root: true, commands: ['ip', 'tc', CLANG, 'bpftool', 'mount'] })) return;
  const net = new NetLab(t);
  const peer = net.ns('gsp');
  const host = net.ns('gsh');
  net.veth(peer, 'gsp0', host, 'gsh0');
  net.addr(peer, 'gsp0', 'fd00:77::1/64');
  net.addr(host, 'gsh0', 'fd00:77::2/64');
  net.addr(host, 'gsh0', 'fd00:77::3/64');
  const T1 = 0x1111_2222_3333, T2 = 0x4444_5555_6666;
  // The peer's daemon: one UDP GSO run of two equal datagrams, one per context (tags T1, T2), each
  // a payload header and a UDP datagram from the peer's ULID to port 9999.
  const sender = `
    const { NativeUdpTransport } = await import(${JSON.stringify(treeModule('shim/dataplane/udp-native.ts'))});
    const { encodePayloadHeader } = await import(${JSON.stringify(treeModule('shim/wire/index.ts'))});
    const { ulpChecksum } = await import(${JSON.stringify(treeModule('shim/dataplane/ip6-packet.ts'))});
    const u = new NativeUdpTransport({ port: 5533 });
    await u.bind('fd00:77::1');
    for (const [tag, localUlid, text] of [[${T1}, 'fd00:77::2', 'first context '], [${T2}, 'fd00:77::3', 'second context']]) {
      const data = new TextEncoder().encode(text);
      const udp = new Uint8Array(8 + data.length);
      udp[0] = 4444 >> 8; udp[1] = 4444 & 0xff; udp[2] = 9999 >> 8; udp[3] = 9999 & 0xff; udp[4] = 0; udp[5] = udp.length;
      udp.set(data, 8);
      const sum = ulpChecksum('fd00:77::1', localUlid, 17, udp) || 0xffff;
      udp[6] = sum >> 8; udp[7] = sum & 0xff;
      u.send('fd00:77::1', 'fd00:77::2', 5533, encodePayloadHeader(17, tag), udp);
    }
    u.flush();
    await u.close();
  `;
  const script = `
    import { spawnSync } from 'node:child_process';
    import { createSocket } from 'node:dgram';
    import { mkdtempSync, rmSync } from 'node:fs';
    const { BpfEncap } = await import(${JSON.stringify(treeModule('shim/dataplane/bpf-encap.ts'))});
    const { NativeUdpTransport } = await import(${JSON.stringify(treeModule('shim/dataplane/udp-native.ts'))});
    const cacheDir = mkdtempSync('/tmp/shim6-bpf-gso-');
    const e = BpfEncap.open({ port: 5533, tun: 'gsotun', cacheDir, maxContexts: 16 });
    const out = { socket: [], inner: [] };
    const daemon = new NativeUdpTransport({ port: 5533 });
    const inner = createSocket('udp6');
    try {
      // Two contexts with the peer, from two of our ULIDs, on one locator pair.
      for (const [localUlid, localTag] of [['fd00:77::2', ${T1}], ['fd00:77::3', ${T2}]]) {
        if (!e.accept({ localUlid, peerUlid: 'fd00:77::1', localTag, peerLocators: ['fd00:77::1'] })) throw new Error('accept refused');
      }
      await daemon.bind('fd00:77::2');
      daemon.onDatagram((d) => out.socket.push({ tag: Number(BigInt.asUintN(47, BigInt('0x' + Buffer.from(d.bytes.subarray(2, 8)).toString('hex')))), length: d.bytes.length }));
      inner.on('message', (m) => out.inner.push(m.length));
      await new Promise((r) => inner.bind(9999, '::', r));
      const r = spawnSync('ip', ['netns', 'exec', ${JSON.stringify(peer.name)}, process.execPath, ...${JSON.stringify(TREE_LOADER)}, '--input-type=module', '-e', ${JSON.stringify(sender)}], { encoding: 'utf8', timeout: 60_000 });
      if (r.status !== 0) throw new Error('sender: ' + r.stderr);
      const until = Date.now() + ${DEADLINE_MS};
      while (out.socket.length + out.inner.length < 2 && Date.now() < until) await new Promise((r) => setTimeout(r, 25));
      await new Promise((r) => setTimeout(r, 200)); // anything more that was coming
      out.stats = e.stats();
    } finally {
      inner.close();
      await daemon.close();
      e.close();
      rmSync(cacheDir, { recursive: true, force: true });
    }
    console.log(JSON.stringify(out));
  `;
  const r = net.run(host, [process.execPath, ...TREE_LOADER, '--input-type=module', '-e', script], { timeoutMs: 120_000 });
  const res = JSON.parse(r.stdout.trim().split('\n').pop()!) as { socket: Array<{ tag: number; length: number }>; inner: number[]; stats: Record<string, number> };
  t.diagnostic(`daemon's socket: ${JSON.stringify(res.socket)}; decapsulated by the kernel: ${JSON.stringify(res.inner)}; programs: ${JSON.stringify(res.stats)}`);
  assert.deepEqual(res.socket, [{ tag: T1, length: 30 }, { tag: T2, length: 30 }], 'both datagrams reach the daemon\'s socket, each with its own payload header');
  assert.deepEqual(res.inner, [], 'the kernel decapsulated nothing of the run (before: the first context\'s datagram, with the second one after it)');
});
