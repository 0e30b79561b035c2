// Host-based discovery in the daemon (issue 17;
// docs/operations.md "Host-based discovery"), with the real daemons in the lab:
// no capability record, no `peers` entry; A streams to B by address. A's daemon
// learns of the new connection from its nftables log group without holding it,
// discovers B (integrated: the I1 exchange is the probe; independent: the probe
// pair first), and the open connection moves into the context, which then
// survives link P black-holed. No timing assertions: the stream's verification
// and the daemons' logs decide.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { needs } from '../helpers/prereq.ts';
import { LAB_ADDR } from '../../lab/topology.ts';
import { runStream } from '../../lab/run.ts';
import { labDaemonFiles } from '../../lab/daemons.ts';
import { controlRequest } from '../../shim/daemon/control/client.ts';
import { NEW_FLOWS_TABLE } from '../../shim/dataplane/new-flows.ts';
import { formatStatus } from '../../cli/commands/status.ts';
import { DEADLINE_MS } from '../helpers/wait.ts';
import { daemons, E2E_TIMEOUT_MS, freshLab, log, oneDaemon, waitLog, STREAM_RATE } from './fixture.ts';

const PREREQ = { root: true, commands: ['ip', 'knotd', 'kdig', 'nft'] };

interface Status {
  engine: { contexts: { peerUlid: string; state: string }[]; caches: { negative: number } };
  daemon: { routed: string[] };
  discovery: { mode: string; flows: number; started: number; probing: number; established: number; failed: number } | null;
}

const tableOf = (ns: string): string => spawnSync('ip', ['netns', 'exec', ns, 'nft', 'list', 'tables'], { encoding: 'utf8' }).stdout;

for (const mode of ['integrated', 'independent'] as const) {
  test(`discovery (${mode}): no record, no peers entry; the open connection moves into the context and survives P black-holed`, { timeout: E2E_TIMEOUT_MS }, async (t) => {
    if (!needs(t, PREREQ)) return;
    const lab = await freshLab(t, { capability: false });
    const s = await daemons(t, lab, {}, { discovery: mode });
    assert.match(tableOf(lab.a), new RegExp(`table ip6 ${NEW_FLOWS_TABLE}\\b`), 'A\'s daemon added its new-flows table');
    // By address: no DNS, so no record and no `absent`; only the flow tells A's daemon of B.
    const r = await runStream(lab, { to: LAB_ADDR.bP, durationMs: 10_000, failAtMs: 6000, failure: 'blackhole', rate: STREAM_RATE, graceMs: 20_000 });
    const started = await waitLog(lab, 'a', (x) => x.msg === 'discovery started' && x.peer === LAB_ADDR.bP);
    assert.equal(started.mode, mode);
    const est = await waitLog(lab, 'a', (x) => x.msg === 'context from discovery' && x.peer === LAB_ADDR.bP);
    t.diagnostic(`first packet → context: ${String(est.ms)} ms`);
    if (mode === 'independent') assert.ok(log(lab, 'a').some((x) => x.msg === 'discovery probe answered' && x.peer === LAB_ADDR.bP), 'the probe pair came first');
    // The application was not held: it connected (plain IPv6) before the context existed.
    assert.ok(r.connectedAt <= Date.parse(est.ts), `connected at ${new Date(r.connectedAt).toISOString()}, context at ${est.ts}`);
    assert.equal(log(lab, 'a').some((x) => x.msg === 'prime'), false, 'nothing primed A (no record, no peers entry)');
    assert.equal(r.complete, true, 'the stream ended normally');
    assert.equal(r.corrupt, 0);
    assert.equal(r.bytes_verified, r.bytes_sent, 'every octet once and intact');
    assert.equal(r.recovered, true, 'data flowed again after P was black-holed');
    assert.ok(r.failAt !== undefined && Date.parse(est.ts) < r.failAt, 'the context existed before the failure');
    const st = await controlRequest(s.files('a').control, 'status') as Status;
    assert.equal(st.discovery?.mode, mode);
    assert.ok((st.discovery?.established ?? 0) >= 1, JSON.stringify(st.discovery));
    assert.match(formatStatus(st as never), new RegExp(`discovery \\(${mode}\\): new flows [1-9]`), 'shim6 status shows it');
    t.diagnostic(`stall after the black hole: ${String(r.stall_after_fail_ms)} ms (longest gap of the run: ${r.stall_ms} ms)`);
  });
}

test('discovery: a peer without a daemon goes to the negative cache; the application is not delayed; the table goes on stop', { timeout: E2E_TIMEOUT_MS }, async (t) => {
  if (!needs(t, PREREQ)) return;
  const lab = await freshLab(t, { capability: false });
  // B's kernel answers the I1 with a Port Unreachable (no daemon there): the give-up comes at once,
  // or after three I1 retries (~4.5 s on the fast profile) if the error is lost; the hold-down is
  // raised to 10 minutes so the negative entry outlasts the test on a slow machine.
  const a = await oneDaemon(t, lab, 'a', { timers: { profile: 'fast', i1RetriesMax: 3, noR1HolddownTime: 600_000 }, discovery: 'integrated' });
  const r = await runStream(lab, { to: LAB_ADDR.bP, durationMs: 1500, failAtMs: 1, failure: 'none', rate: STREAM_RATE, graceMs: DEADLINE_MS });
  assert.equal(r.bytes_verified, r.bytes_sent);
  await waitLog(lab, 'a', (x) => x.msg === 'discovery started' && x.peer === LAB_ADDR.bP);
  const gaveUp = await waitLog(lab, 'a', (x) => x.msg === 'discovery: no shim6 there' && x.peer === LAB_ADDR.bP, 2 * DEADLINE_MS);
  // Not delayed: discovery never held the flow (no context-initiated, the event that holds packets),
  // whether the give-up came before or after the TCP handshake completed.
  t.diagnostic(`discovery gave up ${Date.parse(gaveUp.ts) - r.connectedAt} ms after the application connected`);
  assert.equal(log(lab, 'a').some((x) => x.msg === 'context-initiated' && x.peerUlid === LAB_ADDR.bP), false, 'the application\'s packets were never held for discovery');
  const st = await controlRequest(labDaemonFiles(lab, 'a').control, 'status') as Status;
  assert.deepEqual(st.engine.contexts.filter((c) => c.state === 'ESTABLISHED'), [], 'no context (an E-FAILED hold-down at most)');
  assert.deepEqual(st.daemon.routed, [], 'no route into the TUN');
  assert.ok(st.engine.caches.negative >= 1, 'B is in the negative cache');
  assert.ok((st.discovery?.failed ?? 0) >= 1);
  // A second connection to B starts no discovery (the negative entry holds B's address).
  const n = log(lab, 'a').filter((x) => x.msg === 'discovery started').length;
  const r2 = await runStream(lab, { to: LAB_ADDR.bP, durationMs: 500, failAtMs: 1, failure: 'none', rate: STREAM_RATE, graceMs: DEADLINE_MS });
  assert.equal(r2.bytes_verified, r2.bytes_sent);
  assert.equal(log(lab, 'a').filter((x) => x.msg === 'discovery started').length, n, 'no new discovery of B');
  a.kill('SIGTERM');
  await new Promise((res) => a.once('exit', res));
  assert.doesNotMatch(tableOf(lab.a), new RegExp(`table ip6 ${NEW_FLOWS_TABLE}\\b`), 'the table is gone after stop');
});

test('discovery: a table left by a crashed daemon is removed at the next start; discovery: off adds none', { timeout: E2E_TIMEOUT_MS }, async (t) => {
  if (!needs(t, PREREQ)) return;
  const lab = await freshLab(t, { capability: false });
  const a = await oneDaemon(t, lab, 'a');
  assert.match(tableOf(lab.a), new RegExp(`table ip6 ${NEW_FLOWS_TABLE}\\b`));
  a.kill('SIGKILL');
  await new Promise((res) => a.once('exit', res));
  assert.match(tableOf(lab.a), new RegExp(`table ip6 ${NEW_FLOWS_TABLE}\\b`), 'kill -9 leaves it');
  await oneDaemon(t, lab, 'a', { discovery: 'off' });
  assert.doesNotMatch(tableOf(lab.a), new RegExp(`table ip6 ${NEW_FLOWS_TABLE}\\b`), 'the next start removed it and, with discovery off, added none');
  assert.ok(log(lab, 'a').some((x) => x.msg === 'removed the new-flows table a previous daemon left'));
});
