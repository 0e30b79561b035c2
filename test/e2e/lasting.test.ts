// Protection that lasts (issue 17), with the real daemons in the lab: A's
// daemon restarts in the middle of a stream — SIGTERM, then SIGKILL — and the
// connection, opened before the restart, is protected again (found in the
// kernel's socket table, primed from the saved caches), so a black hole of
// link P afterwards is survived. No timing assertions: the stream's own
// verification (every octet once, intact) and the daemons' logs decide.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { needs } from '../helpers/prereq.ts';
import { LAB_ADDR } from '../../lab/topology.ts';
import { LAB_B_NAME } from '../../lab/dns.ts';
import { runStream } from '../../lab/run.ts';
import { daemons, freshLab, waitLog } from './fixture.ts';

for (const how of ['SIGTERM', 'SIGKILL'] as const) {
  test(`A's daemon restarts (${how}) mid-stream; the open connection is protected again and survives P black-holed afterwards`, { timeout: 120_000 }, async (t) => {
    if (!needs(t, { root: true, commands: ['ip', 'knotd', 'kdig', 'nft'] })) return;
    const lab = await freshLab(t);
    const s = await daemons(t, lab);
    // The stream runs 14 s; P fails 9 s after it connects (after the restart below).
    const run = runStream(lab, { to: LAB_B_NAME, resolver: s.resolverA, durationMs: 14_000, failAtMs: 9000, failure: 'blackhole', rate: 2_000_000, graceMs: 20_000 });
    await waitLog(lab, 'a', (x) => x.msg === 'context-established' && x.peerUlid === LAB_ADDR.bP, 30_000);
    await new Promise((r) => setTimeout(r, 3000)); // let the cache save (2 s after the context) happen
    const restartedAt = Date.now();
    if (how === 'SIGTERM') await s.stopHost('a'); else await s.crash('a');
    await s.start('a');
    const again = await waitLog(lab, 'a', (x) => x.msg === 'open connections protected again' && Date.parse(x.ts) >= restartedAt, 30_000);
    assert.ok((again.peers as string[]).includes(LAB_ADDR.bP), 'B, the peer of the open connection, was primed at start');
    await waitLog(lab, 'a', (x) => x.msg === 'context-established' && x.peerUlid === LAB_ADDR.bP && Date.parse(x.ts) >= restartedAt, 30_000);
    const r = await run;
    assert.equal(r.complete, true, 'the stream ended normally');
    assert.equal(r.corrupt, 0);
    assert.equal(r.bytes_verified, r.bytes_sent, 'every octet once and intact');
    assert.ok(r.failAt !== undefined && r.failAt > restartedAt, 'P failed after the restart');
    assert.equal(r.recovered, true, 'data flowed again after P was black-holed');
    t.diagnostic(`stall after the black hole: ${r.stall_ms} ms`);
  });
}
