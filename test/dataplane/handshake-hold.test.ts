// The handshake hold's bound over all peers (shim/dataplane/handshake-hold.ts): each context this
// host initiates holds up to 16 of its peer's packets, and such contexts come one per prime (a
// name a local client looks up) without maxContexts' bound, so the octets held for all peers
// together stop at HOLD_BYTES_MAX; a peer whose hold ends gives its share back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HandshakeHold, HOLD_BYTES_MAX } from '../../shim/dataplane/handshake-hold.ts';

test('the handshake hold keeps at most HOLD_BYTES_MAX octets over all peers; the rest is dropped as hold-full, and a released hold gives its share back', () => {
  const drops = new Map<string, number>();
  const sent: Uint8Array[] = [];
  const hold = new HandshakeHold({ send: (p) => sent.push(...p), drop: (why) => drops.set(why, (drops.get(why) ?? 0) + 1), sentPlain: () => {} });
  try {
    const packet = new Uint8Array(1400);
    packet[0] = 0x60;
    const peer = (i: number): string => `2001:db8:${(i >> 16).toString(16)}:${(i & 0xffff).toString(16)}::1`;
    let held = 0;
    for (let i = 0; i < 2000; i++) { // 2,000 primes, each peer's host answering its I1 (5 s of hold)
      hold.start('2001:db8:ffff::1', peer(i));
      hold.answered(peer(i));
      for (let k = 0; k < 16; k++) if (hold.take(peer(i), packet) && drops.get('hold-full') === undefined) held++;
    }
    const fit = Math.floor(HOLD_BYTES_MAX / packet.length);
    assert.equal(held, fit, 'held until the bound');
    assert.equal(drops.get('hold-full'), 2000 * 16 - fit, 'every packet past it dropped and counted');
    // The first peer's context comes up: its 16 packets leave, and 16 more fit again.
    hold.release(peer(0));
    assert.equal(sent.length, 16);
    hold.start('2001:db8:ffff::1', peer(5000));
    const before = drops.get('hold-full')!;
    for (let k = 0; k < 16; k++) hold.take(peer(5000), packet);
    assert.equal(drops.get('hold-full'), before, 'the share released (16 packets) is held again: nothing more dropped');
  } finally {
    hold.close();
  }
});
