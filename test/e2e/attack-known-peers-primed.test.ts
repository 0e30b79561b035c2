// E2E: a primed peer is a known peer (docs/security.md "Known peers"). The same spoofed I1 flood
// at B as test/e2e/attack-known-peers.test.ts (10,000 forged I1s/s from 10,000 /64s; the reserve
// the default), but B's global reply bucket holds one token and gains one in 1,000 s: the flood
// takes it and keeps it empty for the whole test. (At 20/s, as in the other test, a token that
// comes due between two of the flood's bursts may answer A's I1 before the reserve is asked: the
// outcome would depend on the timing, and the reserve's use could not be asserted.) A's traffic
// to B leaves nothing in B's socket tables: A sends UDP datagrams to a port of B where no socket is connected
// to A, so the peers of B's open connections never include A. B's configuration names A as a peer
// (its ULID and locators): B primed A at its start, when A's daemon was not running, so B's own
// exchange with A failed, and its hold-down (`icmpHolddownTime`, 2 s here) ended: B has no
// context with A any more. (While B's context with A lives, pending or held down, A's I1 from A's
// ULID is answered from the reserve anyway: that context's packets go there.) Since the prime's
// record (the configuration's) is still valid, A is a primed peer. A's daemon starts during the flood, and its
// host-based discovery (integrated: I1 at once) starts an exchange with B. With primed peers
// among the known ones, A's I1s are answered from the reserve and the context comes up; before,
// A's I1s met the empty global bucket (B's failed context makes no address known)
// and the exchange failed (B taken for a host without shim6). What B answered in all stays within the
// global and the reserve buckets. No wall-clock limits: the test waits for A's log to say how the
// exchange ended (established, or given up).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { missingPrereqs } from '../helpers/prereq.ts';
import { LAB_ADDR } from '../../lab/topology.ts';
import { ATTACK_PREREQ, AttackLab, Cleanup, sharedLab } from './attack-fixture.ts';
import { log } from './fixture.ts';
import { waitFor } from '../helpers/wait.ts';
import { FLOOD_GLOBAL, FORGED_48, guardOf, startFlood, withinBuckets } from './known-peers-flood.ts';
/** A's datagrams to B: a port where nothing on B is connected to A (the discard port; nothing listens). */
const UDP_PORT = 9;

const cleanup = new Cleanup('attack-known-peers-primed');
let x: AttackLab | undefined;

before(async () => {
  if (missingPrereqs(ATTACK_PREREQ).length > 0) return;
  // B only: A's daemon starts during the flood (below). B's configuration names A (its ULID, its locators on P and Q).
  x = await AttackLab.up(cleanup, ['b'], {
    b: { replyLimit: { global: FLOOD_GLOBAL }, peers: [{ ulid: LAB_ADDR.aP, locators: [LAB_ADDR.aP, LAB_ADDR.aQ] }], timers: { profile: 'fast', icmpHolddownTime: 2000, noR1HolddownTime: 2000 } },
  });
  x.attacker.allowForgedSources();
  x.routeViaAttacker(`${FORGED_48}::/48`, LAB_ADDR.xP, 'b');
});
after(() => cleanup.run());


test('a spoofed I1 flood from 10,000 /64s at B: A, a peer B\'s configuration primed, gets its context with B though no connection of B\'s is with A', { timeout: 600_000 }, async (t) => {
  const l = sharedLab(t, x);
  if (!l) return;
  // B's exchange with A (primed at its start) failed: A's daemon is not running; then its hold-down ended.
  await waitFor(() => log(l.lab, 'b').some((e) => e.msg === 'context-failed' && e.peerUlid === LAB_ADDR.aP), 'B\'s exchange with A failed', 120_000, 250);
  await waitFor(async () => !(await l.status('b')).engine.contexts.some((c) => c.peerUlid === LAB_ADDR.aP), 'B\'s failed context with A removed after its hold-down', 120_000, 250);
  const b0 = await guardOf(l, 'b');
  assert.ok((b0.knownPeers?.primed ?? 0) >= 2, `B primed A at its start: ${JSON.stringify(b0.knownPeers ?? null)}`);
  const f = await startFlood(l);
  let flood: { sent: number; sendMs: number } | undefined;
  try {
    const since = Date.now();
    await l.start('a');
    const ended = (): { msg: string } | undefined => log(l.lab, 'a').find((e) => Date.parse(e.ts) >= since && e.peerUlid === LAB_ADDR.bP
      && (e.msg === 'context-established' || e.msg === 'context-failed'));
    // A's application sends datagrams to B (unconnected on B's side): A's discovery starts the exchange.
    await waitFor(() => { if (ended() === undefined) l.sendUdp('a', LAB_ADDR.bP, UDP_PORT, '73686936'); return ended() !== undefined; },
      'A\'s context with B established or failed', 300_000, 500);
    const bNow = await guardOf(l, 'b');
    t.diagnostic(`A→B: ${ended()?.msg ?? 'no outcome'}; B's known peers ${JSON.stringify(bNow.knownPeers ?? null)}`);
    assert.equal(ended()?.msg, 'context-established', 'A\'s context with B came up during the flood');
    assert.ok((bNow.knownPeers?.replies ?? 0) - (f.b0.knownPeers?.replies ?? 0) >= 1, 'B answered A from the known peers\' reserve');
  } finally {
    flood = await l.attacker.spoofFloodStop();
  }
  await withinBuckets(t, l, f, flood);
});
