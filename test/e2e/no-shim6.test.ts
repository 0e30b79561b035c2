// E2E 4 (issue 6): peers without shim6.
// (a) No record and no daemon on B: plain traffic is untouched (no context, no
//     TUN route) and A's negative cache holds B.
// (b) A stale record claims shim6 for B, which runs no daemon and whose firewall
//     drops the I1s silently (no ICMP): A's engine gives up after its I1 retries,
//     and the application's traffic flows as plain IPv6 meanwhile. (Without the
//     firewall B's Port Unreachable ends it at once: test/e2e/icmp.test.ts.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { needs } from '../helpers/prereq.ts';
import { LAB_ADDR } from '../../lab/topology.ts';
import { LAB_B_NAME } from '../../lab/dns.ts';
import { runStream } from '../../lab/run.ts';
import { labDaemonFiles, LAB_STUB } from '../../lab/daemons.ts';
import { controlRequest } from '../../shim/daemon/control/client.ts';
import { E2E_TIMEOUT_MS, freshLab, log, oneDaemon, waitLog, STREAM_RATE, mostOf } from './fixture.ts';
import { nsExec } from '../../lab/topology.ts';
import { DEADLINE_MS } from '../helpers/wait.ts';

const PREREQ = { root: true, commands: ['ip', 'knotd', 'kdig', 'nft'] };

interface Status { engine: { contexts: unknown[]; caches: { positive: number; negative: number } }; daemon: { routed: string[]; stats: { tunIn: number } } }

test('no record, no daemon on B: plain traffic untouched, negative cache holds B', { timeout: E2E_TIMEOUT_MS }, async (t) => {
  if (!needs(t, PREREQ)) return;
  const lab = await freshLab(t, { capability: false });
  await oneDaemon(t, lab, 'a');
  const r = await runStream(lab, { to: LAB_B_NAME, resolver: LAB_STUB, durationMs: 1500, failAtMs: 1, failure: 'none', rate: STREAM_RATE, graceMs: DEADLINE_MS });
  assert.equal(r.corrupt, 0);
  assert.ok(r.bytes_verified > mostOf(1500));
  assert.equal(r.bytes_verified, r.bytes_sent);
  const st = await controlRequest(labDaemonFiles(lab, 'a').control, 'status') as Status;
  assert.deepEqual(st.engine.contexts, []);
  assert.deepEqual(st.daemon.routed, []);
  assert.equal(st.daemon.stats.tunIn, 0, 'nothing went through the TUN');
  assert.ok(st.engine.caches.negative >= 1, `negative cache ${JSON.stringify(st.engine.caches)}`);
  assert.equal(log(lab, 'a').some((x) => x.msg === 'prime'), false);
});

test('stale record, no daemon on B: falls back to plain IPv6 while the engine still tries, then the engine gives up', { timeout: E2E_TIMEOUT_MS }, async (t) => {
  if (!needs(t, PREREQ)) return;
  const lab = await freshLab(t);
  nsExec(lab.b, ['nft', '-f', '-'], { input: 'table inet e2esilent {\n chain input {\n  type filter hook input priority 0;\n  udp dport 5533 drop\n }\n}\n' });
  // Three I1 retries instead of the fast profile's four: the give-up comes after ~4.5 s instead
  // of ~9 s, still well after the 1 s hold on the SYN.
  await oneDaemon(t, lab, 'a', { timers: { profile: 'fast', i1RetriesMax: 3 } });
  const started = Date.now();
  const r = await runStream(lab, { to: LAB_B_NAME, resolver: LAB_STUB, durationMs: 2000, failAtMs: 1, failure: 'none', rate: STREAM_RATE, graceMs: DEADLINE_MS });
  t.diagnostic(`connected after ${r.connectedAt - started} ms`);
  assert.equal(r.corrupt, 0);
  assert.equal(r.bytes_verified, r.bytes_sent);
  assert.ok(log(lab, 'a').some((x) => x.msg === 'prime' && x.ulid === LAB_ADDR.bP), 'the record primed A');
  // The held SYN was let go as plain IPv6 (engine-driver's hold, 1 s) rather than kept for the context.
  assert.ok(log(lab, 'a').some((x) => x.msg === 'context not up in time: plain IPv6 meanwhile' && x.peer === LAB_ADDR.bP), 'the hold on B\'s ULID ended');
  // I1 retransmitted i1RetriesMax times with back-off, then the engine gives up (the schedule
  // itself: test/engine/handshake.test.ts, in virtual time).
  const gaveUp = await waitLog(lab, 'a', (x) => (x.msg === 'peer-unsupported' || x.msg === 'context-failed') && (x.peerUlid === LAB_ADDR.bP), 2 * DEADLINE_MS);
  t.diagnostic(`the engine gave up after ${Date.parse(gaveUp.ts) - started} ms`);
  // The application never waited for shim6: it connected and streamed before the engine gave up.
  assert.ok(r.connectedAt < Date.parse(gaveUp.ts), `connected at ${r.connectedAt}, engine gave up at ${gaveUp.ts}`);
  assert.doesNotMatch(spawnSync('ip', ['-n', lab.a, '-6', 'route', 'show', 'table', '5533'], { encoding: 'utf8' }).stdout, /dev labtun/, 'no route into the TUN');
});
