/**
 * One compliance suite for every TunDevice (wireguard-go tun/tuntest style):
 * the same checks run against the real Linux TUN in a namespace and against
 * the in-memory twin, so the twin cannot drift from what the kernel does.
 */
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import type { TunDevice } from '../../shim/dataplane/tun.ts';
import { buildUdpPacket, splitPacket, IPPROTO_UDP } from '../../shim/dataplane/ip6-packet.ts';
import { DEADLINE_MS } from '../helpers/wait.ts';

/** The kernel side of a TUN under test. */
export interface TunHarness {
  tun: TunDevice;
  /** Our address on the kernel side (packets written to the device to it are delivered). */
  local: string;
  /** An address the kernel routes into the device. */
  remote: string;
  /** Make the kernel send a UDP datagram from `local` to remote:port (it must come out of the device). */
  kernelSend(port: number, data: Uint8Array): Promise<void>;
  /** Listen on local:port; resolves with datagrams the kernel delivered. */
  kernelListen(port: number): Promise<{ next(timeoutMs: number): Promise<{ src: string; data: Uint8Array }> }>;
}

function collect(tun: TunDevice) {
  const got: Uint8Array[] = [];
  const batches: number[] = [];
  const waiters: Array<() => void> = [];
  tun.onPackets((ps) => {
    batches.push(ps.length);
    // Views are only valid during the call: copy what we keep.
    for (const p of ps) got.push(p.slice());
    for (const w of waiters.splice(0)) w();
  });
  const udpTo = (port: number) => got.filter((p) => {
    const s = splitPacket(p);
    return s && s.nextHeader === IPPROTO_UDP && ((s.payload[2]! << 8) | s.payload[3]!) === port;
  });
  return {
    got, batches, udpTo,
    async waitFor(pred: () => boolean, timeoutMs: number): Promise<void> {
      const end = Date.now() + timeoutMs;
      while (!pred()) {
        const left = end - Date.now();
        if (left <= 0) throw new Error('timed out waiting for packets from the TUN');
        await new Promise<void>((r) => { const t = setTimeout(r, left); waiters.push(() => { clearTimeout(t); r(); }); });
      }
    },
  };
}

/** Runs every compliance check as a subtest of `t`. */
export async function tunCompliance(t: TestContext, make: (t: TestContext) => Promise<TunHarness>): Promise<void> {
  await t.test('a packet the kernel routes into the device comes out whole, with its header', async (st) => {
    const h = await make(st);
    const c = collect(h.tun);
    const data = new TextEncoder().encode('hello through the tun');
    await h.kernelSend(4001, data);
    await c.waitFor(() => c.udpTo(4001).length > 0, DEADLINE_MS);
    const s = splitPacket(c.udpTo(4001)[0]!)!;
    assert.equal(s.srcUlid, h.local);
    assert.equal(s.dstUlid, h.remote);
    assert.deepEqual(s.payload.subarray(8), data);
  });

  await t.test('a packet written to the device is delivered by the kernel', async (st) => {
    const h = await make(st);
    const l = await h.kernelListen(4002);
    const data = new TextEncoder().encode('hello from the tun');
    assert.equal(h.tun.write([buildUdpPacket(h.remote, h.local, 999, 4002, data)]), 1);
    const got = await l.next(DEADLINE_MS);
    assert.equal(got.src, h.remote);
    assert.deepEqual(got.data, data);
  });

  await t.test('write2 (header + body) delivers one packet', async (st) => {
    const h = await make(st);
    const l = await h.kernelListen(4003);
    const p = buildUdpPacket(h.remote, h.local, 999, 4003, new Uint8Array([1, 2, 3, 4, 5]));
    assert.equal(h.tun.write2(p.subarray(0, 40), p.subarray(40)), true);
    assert.deepEqual((await l.next(DEADLINE_MS)).data, new Uint8Array([1, 2, 3, 4, 5]));
  });

  await t.test('a burst arrives complete and in order, in batches', async (st) => {
    const h = await make(st);
    const c = collect(h.tun);
    const n = 200;
    for (let i = 0; i < n; i++) await h.kernelSend(4004, new Uint8Array([i >> 8, i & 0xff]));
    await c.waitFor(() => c.udpTo(4004).length >= n, DEADLINE_MS);
    const seq = c.udpTo(4004).map((p) => { const s = splitPacket(p)!; return (s.payload[8]! << 8) | s.payload[9]!; });
    assert.deepEqual(seq, Array.from({ length: n }, (_, i) => i));
    const l = await h.kernelListen(4005);
    const batch = Array.from({ length: 32 }, (_, i) => buildUdpPacket(h.remote, h.local, 999, 4005, new Uint8Array([i])));
    assert.equal(h.tun.write(batch), 32);
    const back: number[] = [];
    for (let i = 0; i < 32; i++) back.push((await l.next(DEADLINE_MS)).data[0]!);
    assert.deepEqual(back, Array.from({ length: 32 }, (_, i) => i));
  });

  await t.test('after close nothing is delivered and writes are refused', async (st) => {
    const h = await make(st);
    const c = collect(h.tun);
    await h.tun.close();
    await h.tun.close();
    assert.equal(h.tun.write([buildUdpPacket(h.remote, h.local, 999, 4006, new Uint8Array(1))]), 0);
    await h.kernelSend(4006, new Uint8Array([1])).catch(() => {});
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(c.udpTo(4006).length, 0);
  });
}
