// The addon's readers when JavaScript calls them wrongly (native/reader.c, udp.c, tun.c): a handle
// used again after its reader closed, buffers of no slots. Each must be refused or be harmless,
// never touch memory that is not the call's, nor spin the event loop.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { loadAddon } from '../../native/addon.ts';
import { DEADLINE_MS } from '../helpers/wait.ts';

const LOOPBACK = Uint8Array.from({ length: 16 }, (_, i) => (i === 15 ? 1 : 0));

/** A native UDP socket on [::1] with a reader counting the datagrams it reads. */
function reader(): { port: number; handle: object; got: number[] } {
  const a = loadAddon();
  const [fd, port] = a.udpOpen(0, 0, false, LOOPBACK, false, 0, false);
  const got: number[] = [];
  const handle = a.udpStartReader(fd, new ArrayBuffer(2048 * 4), 2048, 4, new ArrayBuffer(40 * 4), (count) => got.push(count));
  return { port, handle, got };
}

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

test('a reader\'s handle used again long after it was closed (close, ref) does nothing: other readers, made since in its memory, read on', async () => {
  const a = loadAddon();
  // Closed, and their close callbacks run: before, that freed what the handles point to.
  const stale = Array.from({ length: 24 }, () => reader().handle);
  for (const h of stale) a.udpClose(h);
  await turn();
  await turn();
  // New readers, whose memory may be the freed readers' (the allocator hands it out again).
  const live = Array.from({ length: 24 }, () => reader());
  try {
    for (const h of stale) {
      a.udpClose(h);
      a.udpRef(h, false);
      a.close(h);
    }
    const s = createSocket('udp6');
    try {
      for (const r of live) await new Promise<void>((ok) => s.send(Buffer.alloc(8), r.port, '::1', () => ok()));
    } finally {
      s.close();
    }
    const end = Date.now() + DEADLINE_MS;
    while (live.some((r) => r.got.length === 0) && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(live.map((r) => r.got.length > 0), live.map(() => true), 'every live reader read its datagram');
  } finally {
    for (const r of live) a.udpClose(r.handle);
  }
});

test('readers of no slots are refused (RangeError): recvmmsg or read would take nothing, and the level-triggered poll would call again at once, for ever', () => {
  const a = loadAddon();
  const [fd] = a.udpOpen(0, 0, false, LOOPBACK, false, 0, false);
  try {
    assert.throws(() => a.udpStartReader(fd, new ArrayBuffer(2048), 2048, 0, new ArrayBuffer(40), () => {}), RangeError);
    assert.throws(() => a.startReader(fd, new ArrayBuffer(2048), 2048, 0, new Int32Array(1), () => {}, false), RangeError);
    assert.throws(() => a.startReader(fd, new ArrayBuffer(2048), 0, 1, new Int32Array(1), () => {}, false), RangeError, 'slots of no octets');
  } finally {
    // Refused: the socket is still the caller's.
    const h = a.udpStartReader(fd, new ArrayBuffer(2048), 2048, 1, new ArrayBuffer(40), () => {});
    a.udpClose(h);
  }
});
