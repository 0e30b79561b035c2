// E2E 3 (issue 6): B's daemon dies mid-stream (SIGKILL: no Close) and is
// started again. Either A's payload reaches a B without the context, B answers
// R1bis and A recovers with I2bis (RFC 5533 §7.17–7.20), or B protects the open
// connection at start (issue 17); the stream continues intact.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { needs } from '../helpers/prereq.ts';
import { LAB_ADDR } from '../../lab/topology.ts';
import { LAB_B_NAME } from '../../lab/dns.ts';
import { runStream } from '../../lab/run.ts';
import { daemons, freshLab, log, waitLog } from './fixture.ts';

test('B\'s daemon restarts mid-stream: R1bis / I2bis recovery, the stream continues', { timeout: 60_000 }, async (t) => {
  if (!needs(t, { root: true, commands: ['ip', 'knotd', 'kdig', 'nft'] })) return;
  const lab = await freshLab(t);
  const s = await daemons(t, lab);
  const run = runStream(lab, { to: LAB_B_NAME, resolver: s.resolverA, durationMs: 8000, failAtMs: 1, failure: 'none', rate: 2_500_000, graceMs: 8000 });
  await waitLog(lab, 'a', (x) => x.msg === 'context-established', 15_000);
  await new Promise((r) => setTimeout(r, 2500));
  const killedAt = Date.now();
  await s.crash('b');
  await s.start('b');
  const r = await run;
  assert.equal(r.complete, true, 'the stream ended normally');
  assert.equal(r.corrupt, 0);
  assert.equal(r.bytes_verified, r.bytes_sent, 'every byte once and intact');
  // Two ways back, both correct: A's payload draws an R1bis and A recovers by I2bis, or B, finding
  // the open connection at start (it knows A from its saved caches), sets the context up itself.
  const recovered = log(lab, 'a').find((x) => x.msg === 'context-established' && x.recovered === true && x.peerUlid === LAB_ADDR.bP && Date.parse(x.ts) >= killedAt)
    ?? log(lab, 'b').find((x) => x.msg === 'context-established' && x.peerUlid === LAB_ADDR.aP && Date.parse(x.ts) >= killedAt);
  assert.ok(recovered, 'the context came back: by R1bis/I2bis from A, or by B protecting the open connection');
  t.diagnostic(recovered.recovered === true ? 'A recovered by R1bis/I2bis' : 'B set the context up again at start');
  assert.ok(samplesAfter(r.samples, Date.parse(recovered.ts)) > 0, 'data flowed after the recovery');
});

function samplesAfter(samples: Array<{ t: number; bytes: number }>, t: number): number {
  return samples.filter((x) => x.t > t).reduce((a, x) => a + x.bytes, 0);
}
