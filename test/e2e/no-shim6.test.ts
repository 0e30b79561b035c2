// E2E 4 (issue 6): peers without shim6.
// (a) No record and no daemon on B: plain traffic is untouched (no context, no
//     TUN route) and A's negative cache holds B.
// (b) A stale record claims shim6 for B, which runs no daemon: A's engine gives
//     up within a bounded time, and the application's traffic flows as plain IPv6.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { needs } from '../helpers/prereq.ts';
import { LAB_ADDR } from '../../lab/topology.ts';
import { LAB_B_NAME } from '../../lab/dns.ts';
import { runStream } from '../../lab/run.ts';
import { labDaemonFiles, LAB_STUB } from '../../lab/daemons.ts';
import { controlRequest } from '../../shim/daemon/control/client.ts';
import { freshLab, log, oneDaemon, waitLog } from './fixture.ts';

const PREREQ = { root: true, commands: ['ip', 'knotd', 'kdig', 'nft'] };

interface Status { engine: { contexts: unknown[]; caches: { positive: number; negative: number } }; daemon: { routed: string[]; stats: { tunIn: number } } }

test('no record, no daemon on B: plain traffic untouched, negative cache holds B', { timeout: 60_000 }, async (t) => {
  if (!needs(t, PREREQ)) return;
  const lab = await freshLab(t, { capability: false });
  await oneDaemon(t, lab, 'a');
  const r = await runStream(lab, { to: LAB_B_NAME, resolver: LAB_STUB, durationMs: 1500, failAtMs: 1, failure: 'none', rate: 2_500_000, graceMs: 3000 });
  assert.equal(r.corrupt, 0);
  assert.ok(r.bytes_verified > 1_000_000);
  assert.equal(r.bytes_verified, r.bytes_sent);
  const st = await controlRequest(labDaemonFiles(lab, 'a').control, 'status') as Status;
  assert.deepEqual(st.engine.contexts, []);
  assert.deepEqual(st.daemon.routed, []);
  assert.equal(st.daemon.stats.tunIn, 0, 'nothing went through the TUN');
  assert.ok(st.engine.caches.negative >= 1, `negative cache ${JSON.stringify(st.engine.caches)}`);
  assert.equal(log(lab, 'a').some((x) => x.msg === 'prime'), false);
});

test('stale record, no daemon on B: falls back to plain IPv6 within a bounded time', { timeout: 60_000 }, async (t) => {
  if (!needs(t, PREREQ)) return;
  const lab = await freshLab(t);
  await oneDaemon(t, lab, 'a');
  const started = Date.now();
  const r = await runStream(lab, { to: LAB_B_NAME, resolver: LAB_STUB, durationMs: 2000, failAtMs: 1, failure: 'none', rate: 2_500_000, graceMs: 3000 });
  // The application never waited for shim6: it connected at once and streamed intact.
  assert.ok(r.connectedAt - started < 5000, `connected after ${r.connectedAt - started} ms`);
  assert.equal(r.corrupt, 0);
  assert.equal(r.bytes_verified, r.bytes_sent);
  assert.ok(log(lab, 'a').some((x) => x.msg === 'prime' && x.ulid === LAB_ADDR.bP), 'the record primed A');
  // Fast profile: I1 every 0.5, 1, 2, 4, 8 s (randomised ×0.5–1.5): the engine gives up within ~25 s.
  const gaveUp = await waitLog(lab, 'a', (x) => (x.msg === 'peer-unsupported' || x.msg === 'context-failed') && (x.peerUlid === LAB_ADDR.bP), 35_000);
  assert.ok(Date.parse(gaveUp.ts) - started < 40_000);
  assert.doesNotMatch(spawnSync('ip', ['-n', lab.a, '-6', 'route', 'show', 'table', '5533'], { encoding: 'utf8' }).stdout, /dev labtun/, 'no route into the TUN');
});
