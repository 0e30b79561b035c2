// After A's own restart, a TCP flow in its persist timer is kicked (docs/dataplane.md "Our own
// stack"). Linux arms that timer only with nothing in flight, so the Packet Too Big that prompts
// other flows after a restart (test/e2e/restart-tcp-prompt.test.ts) makes it retransmit nothing,
// and it would wait for its next probe, backed off like the RTO, up to 2 min.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { needs } from '../helpers/prereq.ts';
import { waitFor } from '../helpers/wait.ts';
import { LAB_ADDR, blackhole } from '../../lab/topology.ts';
import { LAB_B_NAME } from '../../lab/dns.ts';
import { runStream } from '../../lab/run.ts';
import { daemons, E2E_TIMEOUT_MS, freshLab, log, streamIntact, tcpSockets, waitLog, STREAM_RATE } from './fixture.ts';

/**
 * The time to the next expiry of a persist timer in `ss` text (ms), else undefined. ss writes it
 * as [Nmin][S(sec|.)][MMMms]: `1min12sec`, `12sec`, `1.572ms` (1572 ms), `572ms`.
 */
function persistLeftMs(ss: string): number | undefined {
  const m = /\btimer:\(persist,(?:(\d+)min)?(?:(\d+)(?:sec|\.))?(?:(\d+)ms)?,/.exec(ss);
  return m ? Number(m[1] ?? 0) * 60_000 + Number(m[2] ?? 0) * 1000 + Number(m[3] ?? 0) : undefined;
}

/**
 * A flow in its persist timer is kicked after A's restart while its next probe is at least this
 * far off (ms): 20 s and more once TCP has backed off seven times (25.6 s apart with the lab's
 * 200 ms RTO). Quiet, the kick came 0.5–1.0 s after A's start; in busy CI runs 142 and 143 (two
 * busy loops beside the suite) 5.5–7.7 s, when a 10 s threshold left as little as 4.2 s to spare.
 */
const PERSIST_LEFT_MS = 20_000;

// A flow a Packet Too Big cannot help, kicked instead (docs/dataplane.md "Our own stack"): A's
// stream pauses, A's daemon stops (SIGTERM) and A's host then refuses packets on P (its own output
// drop, lab/topology.ts `blackhole`). When the stream writes again, A's TCP has nothing in flight
// and its sends fail locally: it waits in its persist timer (`timer:(persist` in ss), backing off.
// A starts again once its next probe is PERSIST_LEFT_MS off. The new daemon reads that state at
// start (/proc/net/tcp6 `tr` 04); once the context is up on Q and A's stack has answered its
// challenge, it hands A's stack an ACK from B one octet below snd_una, and TCP sends at once: B
// gets data before the probe was due, and the stream ends intact.
for (const dataPath of ['tun', 'kernel'] as const) {
  test(`dataPath: ${dataPath}: after A's own restart a flow in TCP's persist timer (sends refused by A's host while its daemon was down, nothing in flight) is kicked as its context comes up: data flows on before its next probe`, { timeout: E2E_TIMEOUT_MS }, async (t) => {
    if (!needs(t, { root: true, commands: ['ip', 'ss', 'knotd', 'kdig', 'nft'] })) return;
    const lab = await freshLab(t);
    const s = await daemons(t, lab, {}, { dataPath });
    // The sender's 100 ms ticks: octets written in each; B's: octets received.
    const written: number[] = [];
    const arrivals: Array<{ t: number; bytes: number }> = [];
    const run = runStream(lab, {
      to: LAB_B_NAME, resolver: s.resolverA, durationMs: 75_000, pause: { atMs: 2000, ms: 12_000 }, failAtMs: 60_000, failure: 'none', rate: STREAM_RATE, graceMs: 30_000,
      onEvent: (who, e) => {
        if (who === 'send' && e.ev === 'tick') written.push(e.bytes);
        if (who === 'recv' && e.ev === 'tick') arrivals.push({ t: e.t, bytes: e.bytes });
      },
    });
    // In the pause (2 s after connecting, for 12 s), once B has acknowledged all A sent: A's daemon
    // stops, then A's host refuses P.
    await waitFor(() => written.length > 5 && written.slice(-3).every((b) => b === 0) && written.some((b) => b > 0), 'the stream paused', 60_000);
    await waitFor(() => { const ss = tcpSockets(lab.a, LAB_ADDR.bP); return ss !== '' && !/\bunacked:/.test(ss); }, 'nothing of A\'s in flight');
    const stoppedAt = Date.now();
    await s.stopHost('a');
    blackhole(lab, 'P');
    let down = '';
    let left: number | undefined;
    await waitFor(() => (left = persistLeftMs(down = tcpSockets(lab.a, LAB_ADDR.bP))) !== undefined && left >= PERSIST_LEFT_MS,
      `A's TCP in its persist timer once the stream writes again, its next probe ${PERSIST_LEFT_MS} ms off`, 120_000);
    const probeDue = Date.now() + left!;
    t.diagnostic(`A's stream socket as the new daemon starts: ${down}`);
    await s.start('a');
    const kicked = await waitLog(lab, 'a', (x) => x.msg === 'tcp kicked: a flow in its persist timer, after the restart' && Date.parse(x.ts) >= stoppedAt, 60_000);
    assert.equal(kicked.peer, LAB_ADDR.bP, 'the flow to B');
    const kickAt = Date.parse(kicked.ts);
    // The first 100 ms sample at B with data after the kick.
    await waitFor(() => arrivals.some((a) => a.t > kickAt && a.bytes > 0), 'data at B after A\'s kick', 60_000);
    const resumedAt = arrivals.find((a) => a.t > kickAt && a.bytes > 0)!.t;
    t.diagnostic(`kicked ${kickAt - (probeDue - left!)} ms after A's start; data at B ≤ ${resumedAt - kickAt} ms after the kick, ${probeDue - resumedAt} ms before the probe was due`);
    assert.ok(resumedAt < probeDue, `data at B before A's TCP's next probe was due (${resumedAt - probeDue} ms)`);
    const r = await run;
    assert.equal(log(lab, 'a').some((x) => x.msg === 'tcp prompted: our own stack, after the restart' && Date.parse(x.ts) >= stoppedAt), false, 'no Packet Too Big for the flow in its persist timer');
    streamIntact(r);
  });
}
