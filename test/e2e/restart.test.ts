// E2E 3 (issue 6): B's daemon dies mid-stream (SIGKILL: no Close) and is
// started again. Either A's payload reaches a B without the context, B answers
// R1bis and A recovers with I2bis (RFC 5533 §7.17–7.20), or B protects the open
// connection at start (issue 17); the stream continues intact.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { needs } from '../helpers/prereq.ts';
import { waitFor } from '../helpers/wait.ts';
import { LAB_ADDR } from '../../lab/topology.ts';
import { LAB_B_NAME } from '../../lab/dns.ts';
import { runStream } from '../../lab/run.ts';
import type { LogRecord } from '../../lab/daemons.ts';
import { daemons, E2E_TIMEOUT_MS, freshLab, log, waitLog, STREAM_RATE } from './fixture.ts';

test('B\'s daemon restarts mid-stream: R1bis / I2bis recovery, the stream continues', { timeout: E2E_TIMEOUT_MS }, async (t) => {
  if (!needs(t, { root: true, commands: ['ip', 'knotd', 'kdig', 'nft'] })) return;
  const lab = await freshLab(t);
  const s = await daemons(t, lab);
  // What the stream processes report as it happens: data through the context, and what B had
  // received once its daemon was dead (nothing more can arrive until the context is back).
  let upAt = Infinity;
  let flowing = false;
  let crashedAt = Infinity;
  let receivedAtCrash: number | undefined;
  const run = runStream(lab, {
    to: LAB_B_NAME, resolver: s.resolverA, durationMs: 8000, failAtMs: 1, failure: 'none', rate: STREAM_RATE,
    // The stream ends once B's daemon is back and TCP's backed-off retransmission gets through.
    graceMs: 60_000,
    onEvent: (who, e) => {
      if (who !== 'recv' || e.ev !== 'tick') return;
      if (e.bytes > 0 && e.t > upAt) flowing = true;
      if (e.t > crashedAt && receivedAtCrash === undefined) receivedAtCrash = e.total;
    },
  });
  upAt = Date.parse((await waitLog(lab, 'a', (x) => x.msg === 'context-established')).ts);
  // Kill B's daemon while data flows through the context, early in the 8 s sending window.
  await waitFor(() => flowing, 'data through the context');
  const killedAt = Date.now();
  await s.crash('b');
  crashedAt = Date.now();
  await s.start('b');
  const r = await run;
  assert.equal(r.complete, true, 'the stream ended normally');
  assert.equal(r.corrupt, 0);
  assert.equal(r.bytes_verified, r.bytes_sent, 'every byte once and intact');
  // Two ways back, both correct: A's payload (or liveness Keepalive, or REAP probe on any pair)
  // draws an R1bis and A recovers by I2bis, or B, finding the open connection at start (it knows A
  // from its saved caches), sets the context up itself. Waited for, not sampled when the stream
  // ends: on the kernel path the connection can finish without B's daemon (B's kernel carries it,
  // and the tc programs a killed daemon left decapsulate A's packets), so a busy run's stream ended
  // ~1.5 s after B's new daemon came up, before A's next probe (2 s apart once backed off) drew
  // the R1bis that brings the context back (CI artifacts, 5 Dec).
  const recoveredBy = (): LogRecord | undefined => log(lab, 'a').find((x) => x.msg === 'context-established' && x.recovered === true && x.peerUlid === LAB_ADDR.bP && Date.parse(x.ts) >= killedAt)
    ?? log(lab, 'b').find((x) => x.msg === 'context-established' && x.peerUlid === LAB_ADDR.aP && Date.parse(x.ts) >= killedAt);
  await waitFor(() => recoveredBy() !== undefined, 'the context back: by R1bis/I2bis from A, or by B protecting the open connection');
  const recovered = recoveredBy();
  assert.ok(recovered, 'the context came back: by R1bis/I2bis from A, or by B protecting the open connection');
  t.diagnostic(`${recovered.recovered === true ? 'A recovered by R1bis/I2bis' : 'B set the context up again at start'}, ${Date.parse(recovered.ts) - killedAt} ms after the kill`);
  // Nothing reaches B's TCP while its daemon is dead: octets that arrived after the crash came
  // through the recovered context (the sender had more to send: the crash came early in its window).
  assert.ok(receivedAtCrash !== undefined && r.bytes_verified > receivedAtCrash, `data arrived after the crash (${r.bytes_verified} verified, ${receivedAtCrash} received by the crash)`);
});
