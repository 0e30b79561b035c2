// The resolver bench's timeline (bench/_timeline.ts): a miss's legs from captured datagrams.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { legs, timelineLines, type Packet } from '../../bench/_timeline.ts';

const KNOT = 5300;
const CLIENT = 40000;
const q = (t: number, src: number, dst: number, name: string, qtype = 28): Packet => ({ t, src, dst, response: false, name, qtype });
const a = (t: number, src: number, dst: number, name: string, qtype = 28): Packet => ({ t, src, dst, response: true, name, qtype });

test('legs: per stub, the client question → upstream question → first and last answer → reply; Knot asked directly', () => {
  const on = { name: 'on', pid: 1, port: 5001 };
  const off = { name: 'off', pid: 2, port: 5002 };
  // Stub sockets: 6001 (on's upstream), 6002 (off's upstream); the client asks Knot from 7001 (AAAA) and 7002 (pair).
  const owners = new Map([[5001, 1], [6001, 1], [5002, 2], [6002, 2]]);
  const packets: Packet[] = [];
  for (let i = 0; i < 3; i++) {
    const n = `n${i}.bench`, t = i * 2000;
    // pickup on: question at t, pair out at +70, answers at +120 and +125 (+150 for the last miss: far apart), reply +50 after the last
    const last = i === 2 ? 150 : 125;
    packets.push(q(t, CLIENT, 5001, n), q(t + 70, 6001, KNOT, n, 65300), a(t + 120, KNOT, 6001, n, 65300), a(t + last, KNOT, 6001, n), a(t + last + 50, 5001, CLIENT, n));
    // pickup off: question at t+400, upstream +60, answer +105, reply +145
    packets.push(q(t + 400, CLIENT + 1, 5002, n), q(t + 460, 6002, KNOT, n), a(t + 505, KNOT, 6002, n), a(t + 545, 5002, CLIENT + 1, n));
    // Knot asked by the client: AAAA alone (40 µs), the pair (45 and 52 µs)
    packets.push(q(t + 800, 7001, KNOT, n), a(t + 840, KNOT, 7001, n), q(t + 1200, 7002, KNOT, n, 65300), a(t + 1245, KNOT, 7002, n, 65300), a(t + 1252, KNOT, 7002, n));
  }
  // A miss without a reply (lost) counts for nobody.
  packets.push(q(9000, CLIENT, 5001, 'lost.bench'), q(9070, 6001, KNOT, 'lost.bench', 65300));
  const t = legs(packets, [on, off], owners, KNOT);
  assert.deepEqual(t.stubs.on, {
    misses: 3, toUpstream: 70, firstAnswer: 50, lastAnswer: 55, afterLast: 50, total: 175,
    split: { near: { misses: 2, afterLast: 50, total: 175 }, far: { misses: 1, afterLast: 50, total: 200 } },
  });
  assert.deepEqual(t.stubs.off, { misses: 3, toUpstream: 60, firstAnswer: 45, lastAnswer: 45, afterLast: 40, total: 145 });
  assert.deepEqual(t.knot, { single: 40, pairFirst: 45, pairLast: 52 });
  const lines = timelineLines(t).join('\n');
  assert.match(lines, /on: 3 misses; to upstream 70 µs, upstream's first answer 50, its last 55, after the last 50, total 175/);
  assert.match(lines, /Knot asked by the client: AAAA 40 µs; the pair's first answer 45, its last 52/);
});
