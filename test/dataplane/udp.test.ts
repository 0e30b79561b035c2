// One compliance suite for UdpTransport, run against real dgram sockets on loopback and the in-memory network.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { DgramTransport, MemoryNetwork, type Datagram, type IcmpError, type UdpTransport } from '../../shim/dataplane/udp.ts';
import { NativeUdpTransport } from '../../shim/dataplane/udp-native.ts';
import { DEADLINE_MS } from '../helpers/wait.ts';
import { spawnSync } from 'node:child_process';
import { needs } from '../helpers/prereq.ts';
import { TREE_LOADER, treeModule } from '../helpers/tree.ts';

interface Pair { a: UdpTransport; b: UdpTransport; addrA: string; addrB: string }

function inbox(t: UdpTransport) {
  const got: Datagram[] = [];
  const waiters: Array<() => void> = [];
  t.onDatagram((d) => { got.push({ ...d, bytes: new Uint8Array(d.bytes) }); for (const w of waiters.splice(0)) w(); });
  return {
    got,
    async until(n: number, timeoutMs = DEADLINE_MS): Promise<Datagram[]> {
      const end = Date.now() + timeoutMs;
      while (got.length < n) {
        const left = end - Date.now();
        if (left <= 0) throw new Error(`timed out: ${got.length}/${n} datagrams`);
        await new Promise<void>((r) => { const tm = setTimeout(r, left); waiters.push(() => { clearTimeout(tm); r(); }); });
      }
      return got;
    },
  };
}

async function udpCompliance(t: TestContext, make: (t: TestContext) => Pair): Promise<void> {
  await t.test('a datagram arrives once, whole, with source, port and the locator it came in on', async (st) => {
    const { a, b, addrA, addrB } = make(st);
    const pa = await a.bind(addrA); const pb = await b.bind(addrB);
    const box = inbox(b);
    assert.equal(a.send(addrA, addrB, pb, new Uint8Array([1, 2]), new Uint8Array([3, 4, 5])), true);
    const [d] = await box.until(1);
    assert.deepEqual({ src: d!.src, srcPort: d!.srcPort, dst: d!.dst }, { src: addrA, srcPort: pa, dst: addrB });
    assert.deepEqual(d!.bytes, new Uint8Array([1, 2, 3, 4, 5]));
  });

  await t.test('the sender may reuse its buffers as soon as send returns', async (st) => {
    const { a, b, addrA, addrB } = make(st);
    await a.bind(addrA); const pb = await b.bind(addrB);
    const box = inbox(b);
    const buf = new Uint8Array([7, 7, 7]);
    a.send(addrA, addrB, pb, buf);
    buf.fill(0);
    assert.deepEqual((await box.until(1))[0]!.bytes, new Uint8Array([7, 7, 7]));
  });

  await t.test('sending from a locator that is not bound is refused', async (st) => {
    const { a, addrA, addrB } = make(st);
    assert.equal(a.send(addrA, addrB, 9, new Uint8Array(1)), false);
    assert.deepEqual(a.addresses(), []);
  });

  await t.test('a burst arrives complete and in order', async (st) => {
    const { a, b, addrA, addrB } = make(st);
    await a.bind(addrA); const pb = await b.bind(addrB);
    const box = inbox(b);
    for (let i = 0; i < 100; i++) a.send(addrA, addrB, pb, new Uint8Array([i]));
    assert.deepEqual((await box.until(100)).map((d) => d.bytes[0]), Array.from({ length: 100 }, (_, i) => i));
  });

  await t.test('after unbind and close nothing more is delivered', async (st) => {
    const { a, b, addrA, addrB } = make(st);
    await a.bind(addrA); const pb = await b.bind(addrB);
    const box = inbox(b);
    assert.deepEqual(b.addresses(), [addrB]);
    await b.unbind(addrB);
    assert.deepEqual(b.addresses(), []);
    a.send(addrA, addrB, pb, new Uint8Array([1]));
    await a.close(); await a.close();
    assert.equal(a.send(addrA, addrB, pb, new Uint8Array([1])), false);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(box.got.length, 0);
  });
}

test('UdpTransport compliance: real dgram sockets on loopback', async (t) => {
  await udpCompliance(t, (st) => {
    const a = new DgramTransport({ port: 0 }); const b = new DgramTransport({ port: 0 });
    st.after(async () => { await a.close(); await b.close(); });
    return { a, b, addrA: '::1', addrB: '::1' };
  });
});

test('UdpTransport compliance: native socket (recvmmsg/sendmmsg, IPV6_PKTINFO) on loopback', async (t) => {
  await udpCompliance(t, (st) => {
    const a = new NativeUdpTransport({ port: 0 }); const b = new NativeUdpTransport({ port: 0 });
    st.after(async () => { await a.close(); await b.close(); });
    return { a, b, addrA: '::1', addrB: '::1' };
  });
});

test('UdpTransport compliance: in-memory network', async (t) => {
  await udpCompliance(t, () => {
    const net = new MemoryNetwork();
    return { a: net.transport(), b: net.transport(), addrA: 'fd00::a', addrB: 'fd00::b' };
  });
});

test('in-memory network: a black hole drops one direction silently', async () => {
  const net = new MemoryNetwork();
  const a = net.transport(5533); const b = net.transport(5533);
  await a.bind('fd00::a'); await b.bind('fd00::b');
  const boxA = inbox(a); const boxB = inbox(b);
  net.blackhole('fd00::a', 'fd00::b');
  a.send('fd00::a', 'fd00::b', 5533, new Uint8Array([1]));
  b.send('fd00::b', 'fd00::a', 5533, new Uint8Array([2]));
  await boxA.until(1);
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(boxB.got.length, 0);
  net.repair('fd00::a', 'fd00::b');
  a.send('fd00::a', 'fd00::b', 5533, new Uint8Array([3]));
  assert.equal((await boxB.until(1))[0]!.bytes[0], 3);
});

/**
 * ICMPv6 errors about what a transport sent (IPV6_RECVERR in the native one):
 * a datagram to a port nobody listens on draws Port Unreachable, quoting it,
 * and the transport keeps sending and receiving afterwards (the kernel's
 * pending socket error and libuv's POLLERR handling must not cost a datagram).
 */
async function icmpCompliance(t: TestContext, make: (t: TestContext) => Pair & { closedPort: () => Promise<number> }): Promise<void> {
  await t.test('a datagram to a closed port draws Port Unreachable quoting it, and nothing else is lost', async (st) => {
    const { a, b, addrA, addrB, closedPort } = make(st);
    await a.bind(addrA); const pb = await b.bind(addrB);
    const closed = await closedPort();
    const errors: IcmpError[] = [];
    a.onIcmpError!((e) => errors.push({ ...e, quoted: e.quoted.slice() }));
    const box = inbox(b);
    for (let round = 0; round < 3; round++) {
      assert.equal(a.send(addrA, addrB, closed, new Uint8Array([0x5a, round, 3, 4])), true);
      a.flush?.();
      const deadline = Date.now() + DEADLINE_MS;
      while (errors.length <= round && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      // Right after the error: a send (the socket's pending error must not eat it) and a receive.
      assert.equal(a.send(addrA, addrB, pb, new Uint8Array([round])), true);
      a.flush?.();
      await box.until(round + 1);
    }
    assert.equal(errors.length, 3, `errors: ${JSON.stringify(errors)}`);
    for (const [i, e] of errors.entries()) {
      assert.deepEqual({ type: e.type, code: e.code, src: e.src, dst: e.dst, dstPort: e.dstPort }, { type: 1, code: 4, src: addrA, dst: addrB, dstPort: closed });
      assert.deepEqual(e.quoted, new Uint8Array([0x5a, i, 3, 4]));
      assert.equal(e.offender, addrB);
    }
    assert.deepEqual(box.got.map((d) => d.bytes[0]), [0, 1, 2]);
  });
}

test('ICMPv6 errors: native socket (IPV6_RECVERR, MSG_ERRQUEUE) on loopback', async (t) => {
  await icmpCompliance(t, (st) => {
    const a = new NativeUdpTransport({ port: 0 }); const b = new NativeUdpTransport({ port: 0 });
    st.after(async () => { await a.close(); await b.close(); });
    return {
      a, b, addrA: '::1', addrB: '::1',
      closedPort: async () => { const c = new NativeUdpTransport({ port: 0 }); const p = await c.bind('::1'); await c.close(); return p; },
    };
  });
});

test('ICMPv6 errors: in-memory network (a host without the daemon)', async (t) => {
  await icmpCompliance(t, () => {
    const net = new MemoryNetwork();
    net.host('fd00::b');
    return { a: net.transport(), b: net.transport(), addrA: 'fd00::a', addrB: 'fd00::b', closedPort: async () => 9 };
  });
});

test('Node dgram sees no ICMPv6 errors (no IPV6_RECVERR): the transport offers no onIcmpError', () => {
  assert.equal((new DgramTransport({ port: 0 }) as UdpTransport).onIcmpError, undefined);
});

test('native socket: a GSO run the kernel refuses (segments over the path MTU) goes out datagram by datagram', async (t) => {
  if (!needs(t, { root: true, commands: ['ip'] })) return;
  // A namespace whose loopback has MTU 1300: 1400-octet datagrams need fragments, which UDP GSO cannot make (EINVAL).
  const ns = `udpgso${process.pid.toString(36)}`;
  t.after(() => { spawnSync('ip', ['netns', 'del', ns]); });
  assert.equal(spawnSync('ip', ['netns', 'add', ns]).status, 0);
  assert.equal(spawnSync('ip', ['-n', ns, 'link', 'set', 'lo', 'mtu', '1300', 'up']).status, 0);
  const script = `const { NativeUdpTransport } = await import(${JSON.stringify(treeModule('shim/dataplane/udp-native.ts'))});
    const a = new NativeUdpTransport({ port: 0 }), b = new NativeUdpTransport({ port: 0 });
    await a.bind('::1'); const pb = await b.bind('::1');
    const got = []; b.onDatagram((d) => got.push(d.bytes.length + ':' + d.bytes[0]));
    for (let i = 0; i < 3; i++) a.send('::1', '::1', pb, new Uint8Array(1400).fill(i));
    a.flush();
    const end = Date.now() + ${DEADLINE_MS};
    while (got.length < 3 && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
    console.log(JSON.stringify(got)); process.exit(0);`;
  const r = spawnSync('ip', ['netns', 'exec', ns, process.execPath, ...TREE_LOADER, '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 2 * DEADLINE_MS });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), ['1400:0', '1400:1', '1400:2']);
});
