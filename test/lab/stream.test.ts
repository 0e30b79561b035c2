// The lab stream's blocks and verifier: intact data verifies, any damage,
// loss, duplicate or reordering is counted, and real sockets carry it intact.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BlockVerifier, encodeBlock, BLOCK_HEADER } from '../../lab/stream-codec.ts';
import { serve, send, GapMeter, type StreamEvent } from '../../lab/stream.ts';
import { waitFor } from '../helpers/wait.ts';

function feed(v: BlockVerifier, buf: Buffer, pieces: number[]): void {
  let off = 0;
  for (const n of pieces) { v.push(buf.subarray(off, off + n)); off += n; }
  v.push(buf.subarray(off));
}

test('intact blocks verify, whatever the chunking', () => {
  const all = Buffer.concat([0, 1, 2, 3].map((s) => encodeBlock(s, 1000)));
  const v = new BlockVerifier();
  feed(v, all, [1, 15, 17, 1000, 3]);
  assert.deepEqual(v.counters, { received: all.length, verified: all.length, corrupt: 0, blocks: 4 });
});

test('a flipped payload bit, a lost block, a duplicate and a bad header are each counted', () => {
  const b = [0, 1, 2].map((s) => encodeBlock(s, 500));
  const flipped = Buffer.from(b[1]!);
  flipped[BLOCK_HEADER + 100]! ^= 0x01;
  const cases: Array<[Buffer[], number]> = [
    [[b[0]!, flipped, b[2]!], 1],
    [[b[0]!, b[2]!], 1],
    [[b[0]!, b[1]!, b[1]!, b[2]!], 1],
  ];
  for (const [blocks, corrupt] of cases) {
    const v = new BlockVerifier();
    v.push(Buffer.concat(blocks));
    assert.equal(v.counters.corrupt, corrupt);
    assert.ok(v.counters.verified < v.counters.received);
  }
  const v = new BlockVerifier();
  v.push(Buffer.alloc(64, 0x41));
  assert.equal(v.counters.corrupt, 1);
  assert.equal(v.counters.verified, 0);
});

test('the gap meter reports the longest silence, including one still open', () => {
  const g = new GapMeter();
  for (const t of [0, 10, 20, 520, 530]) g.data(t);
  assert.equal(g.maxGapMs, 500);
  assert.equal(g.maxGapAt, 20);
  g.closeAt(2000);
  assert.equal(g.maxGapMs, 1470);
});

test('a real TCP stream over loopback arrives once and intact', async () => {
  const recv: StreamEvent[] = [];
  const sent: StreamEvent[] = [];
  let port = 0;
  const done = serve({ port: 0, host: '::1', once: true }, (e) => { recv.push(e); if (e.ev === 'listening') port = e.port; });
  await waitFor(() => port > 0, 'the receiver to listen');
  await send({ to: '::1', port, durationMs: 400, rate: 20_000_000 }, (e) => sent.push(e));
  await done;
  const r = recv.find((e) => e.ev === 'done');
  const s = sent.find((e) => e.ev === 'done');
  assert.ok(r && r.ev === 'done' && s && s.ev === 'done');
  assert.ok(s.total > 1_000_000, `sent ${s.total}`);
  assert.equal(r.verified, s.total);
  assert.equal(r.corrupt, 0);
  assert.ok(recv.some((e) => e.ev === 'tick'));
});
