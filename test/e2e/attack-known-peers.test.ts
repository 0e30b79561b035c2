// E2E: answering the peers a host talks to while a spoofed I1 flood drains its
// reply limits (docs/security.md "Known peers"). The attacker on link P forges
// I1s to B from 10,000 /64s (one source each, so no /64 is over its own
// bucket) at a steady rate: they take every token of B's global bucket, so
// without known peers none of A's I1s is answered, its exchange with B fails
// and B is taken for a host without shim6. Meanwhile A opens a TCP
// connection to B by address; A's daemon discovers B (integrated:
// I1 at once, the connection not held, so it is up before any context). B's
// engine tells its daemon that it refuses replies, the daemon reads B's open
// connections, and A — the peer of an established connection — is answered
// from the known peers' reserve: its next I1 from that address (retransmissions
// alternate between A's locators; only its connection's address is known)
// draws an R1 and the context with B comes up during the flood. What B
// answered in all stays within the global and the reserve buckets over the
// measured time. No wall-clock limits: the test waits for A's log to say how
// the exchange ended (established, or given up).
//
// B's global bucket holds one token and gains one in 1,000 s
// (known-peers-flood.ts): only the reserve can answer A, so an I1 answered by a
// global token's luck cannot pass the test.
//
// A knows only B's address on P (it connects by address), so its I1s
// alternate between its own locators: the 1st, 3rd, 5th and 7th come from its
// connection's address, the only one B knows. B learns it at its next request
// for known peers, up to 2 s after the connection opened: in runs alone the
// 5th I1 (about 4.5 s in) was the first answered, and a CI run failed when
// that one went unanswered though B knew A by then (lost, likely, beside the
// flood on a loaded host; the logs do not say). A sends 7 I1s here
// (`i1RetriesMax` 6, the 7th about 19 s in), so two of them come after B knew it.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { missingPrereqs } from '../helpers/prereq.ts';
import { LAB_ADDR } from '../../lab/topology.ts';
import { runStream } from '../../lab/run.ts';
import { ATTACK_PREREQ, AttackLab, Cleanup, sharedLab } from './attack-fixture.ts';
import { log, STREAM_RATE } from './fixture.ts';
import { waitFor } from '../helpers/wait.ts';
import { FLOOD_GLOBAL, FORGED_48, startFlood, withinBuckets } from './known-peers-flood.ts';
/** The A→B connection: long enough for every I1 A may send before it gives up (7, the last at most 28 s in). */
const STREAM_MS = 30_000;

const cleanup = new Cleanup('attack-known-peers');
let x: AttackLab | undefined;

before(async () => {
  if (missingPrereqs(ATTACK_PREREQ).length > 0) return;
  x = await AttackLab.up(cleanup, ['b', 'a'], { b: { replyLimit: { global: FLOOD_GLOBAL } }, a: { timers: { profile: 'fast', i1RetriesMax: 6 } } }, 'kp33');
  x.attacker.allowForgedSources();
  // B's R1s to the forged sources go to the attacker, which drops them (as the owners of those addresses would).
  x.routeViaAttacker(`${FORGED_48}::/48`, LAB_ADDR.xP, 'b');
});
after(() => cleanup.run());

const messagesOf = async (l: AttackLab, h: 'a' | 'b'): Promise<{ sent: Record<string, number>; received: Record<string, number> }> =>
  ((await l.status(h)) as unknown as { engine: { messages: { sent: Record<string, number>; received: Record<string, number> } } }).engine.messages;

test('a spoofed I1 flood from 10,000 /64s at B: A, with an open TCP connection to B, still gets its context', { timeout: 600_000 }, async (t) => {
  const l = sharedLab(t, x);
  if (!l) return;
  const a0 = await messagesOf(l, 'a');
  // Once the flood has drained B's global bucket: B is refusing R1s.
  const f = await startFlood(l);
  let flood: { sent: number; sendMs: number } | undefined;
  try {
    // A connects to B by address: discovery starts the exchange without holding the connection.
    const since = Date.now();
    const stream = runStream(l.lab, { to: LAB_ADDR.bP, durationMs: STREAM_MS, failAtMs: 1, failure: 'none', rate: STREAM_RATE, graceMs: 20_000 });
    let streamError: unknown;
    stream.catch((e: unknown) => { streamError = e; });
    const ended = (): { msg: string } | undefined => log(l.lab, 'a').find((e) => Date.parse(e.ts) >= since && e.peerUlid === LAB_ADDR.bP
      && (e.msg === 'context-established' || e.msg === 'context-failed'));
    // How A's exchange with B ended: up, or given up after its last I1 retransmission.
    await waitFor(() => ended() !== undefined || streamError !== undefined, 'A\'s context with B established or failed', 300_000, 250);
    const a1 = await messagesOf(l, 'a');
    const i1s = (a1.sent.I1 ?? 0) - (a0.sent.I1 ?? 0);
    const r1s = (a1.received.R1 ?? 0) - (a0.received.R1 ?? 0);
    t.diagnostic(`A→B: ${ended()?.msg ?? 'no outcome'} after ${i1s} I1(s), ${r1s} R1(s) received; stream error: ${String(streamError ?? 'none')}`);
    assert.equal(streamError, undefined, 'the stream ran');
    assert.equal(ended()?.msg, 'context-established', 'A\'s context with B came up during the flood');
    const r = await stream;
    assert.equal(r.complete, true, 'the stream ended normally');
    assert.equal(r.bytes_verified, r.bytes_sent, 'every byte once and intact');
  } finally {
    flood = await l.attacker.spoofFloodStop();
  }
  const b1 = await withinBuckets(t, l, f, flood);
  assert.ok((b1.knownPeers?.updates ?? 0) >= 1, 'B\'s daemon gave its engine the known peers');
});
