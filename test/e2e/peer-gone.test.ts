// A peer whose shim6 daemon is gone for good (issue: dead peer), in the lab: A's context with B has
// re-homed off link P (a black hole, lifted again: the ULIDs reach each other), then B's daemon is
// killed (SIGKILL: no Close) and never started again. Every datagram A sends through the context
// draws a Port Unreachable from B's kernel (UDP port 5533 closed). Before, A dropped those and kept
// the context for good: the open connection black-holed until TCP gave up, new connections to B
// routed into the dead context. Now, once the proven errors have gone on for `timers.peerGoneTimeout`
// with nothing heard from B, A ends the context (`context-closed` reason `peer-gone`, B in the
// negative cache): B's ULID leaves the TUN, the open connection carries on as plain IPv6 on the
// ULIDs, and a new connection to B goes there at once.
// On the TUN path (dataPath: tun), and on the kernel path with re-homed packets through the TUN
// (encapsulation: tun). On the kernel path with the kernel encapsulation, the tc programs a killed
// daemon leaves behind go on carrying the context's packets at B: no black hole, and the context stays
// although A's own messages (its Keepalives) draw Port Unreachables (the last test).
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { CLANG, needs } from '../helpers/prereq.ts';
import { DEADLINE_MS, waitFor } from '../helpers/wait.ts';
import { LAB_ADDR, blackhole, nsExec, unblackhole, type Lab } from '../../lab/topology.ts';
import { LAB_B_NAME } from '../../lab/dns.ts';
import { labDaemonFiles, LAB_STUB, LAB_TUN } from '../../lab/daemons.ts';
import { controlRequest } from '../../shim/daemon/control/client.ts';
import { daemons, E2E_TIMEOUT_MS, freshLab, inNs, log, waitLog } from './fixture.ts';

const PORT = 9401;
/** A's hold (ms) before a silent peer's context ends: short for the test; the default is a minute. */
const HOLD_MS = 3000;

/** B's side: per connection, the octets received so far (a line `<id> <total>` at each read). */
const SERVER = `let id=0;require('net').createServer((s)=>{const me=++id;let n=0;s.on('error',()=>{});` +
  `s.on('data',(d)=>{n+=d.length;console.log(me+' '+n)});}).listen(${PORT},'::');setInterval(()=>{},1e6)`;
/** A's side: connect to B's ULID and write 200 octets every 100 ms (an application that keeps sending). */
const CLIENT = `const s=require('net').connect({host:'${LAB_ADDR.bP}',port:${PORT}});s.on('error',(e)=>{console.error(e.message);process.exit(1)});` +
  `s.on('connect',()=>{console.log('connected');setInterval(()=>s.write(Buffer.alloc(200,7)),100)})`;

interface Status {
  engine: { contexts: Array<{ peerUlid: string; pair: { local: string; peer: string }; peerGone?: { errors: number } }>; capability?: { negative: Array<{ address: string; ulid?: string; reason: string }> } };
  daemon: { routed: string[]; stats: { icmpIn: number; icmpActed: number } };
}
const status = async (lab: Lab, h: 'a' | 'b'): Promise<Status> => await controlRequest(labDaemonFiles(lab, h).control, 'status') as Status;

/** What B's server has received on connection `id` so far. */
function received(lines: readonly string[], id: number): number {
  let n = 0;
  for (const l of lines) { const [c, total] = l.split(' ').map(Number); if (c === id) n = total!; }
  return n;
}

/** The scenario on the data path `path` (config keys of both daemons). */
async function goneForGood(t: TestContext, path: Record<string, unknown>): Promise<void> {
  if (!needs(t, { root: true, commands: ['ip', 'knotd', 'kdig', 'nft'] })) return;
  const lab = await freshLab(t);
  const s = await daemons(t, lab, { peerGoneTimeout: HOLD_MS }, path);
  const server = inNs(t, lab.b, SERVER);
  await waitFor(() => nsExec(lab.b, ['ss', '-Htln', `sport = :${PORT}`], { check: false }).stdout.includes(String(PORT)), 'B listening');
  // The record primes A: the context is up before the connection.
  nsExec(lab.a, ['kdig', `@${LAB_STUB}`, LAB_B_NAME, 'AAAA', '+short']);
  await waitLog(lab, 'a', (x) => x.msg === 'context-established' && x.peerUlid === LAB_ADDR.bP);
  const client = inNs(t, lab.a, CLIENT);
  await waitFor(() => received(server.lines, 1) > 0, 'the connection carrying data to B');

  // Link P black-holed at A: the context re-homes onto Q; then P is back (plain IPv6 on the ULIDs works).
  const failedAt = Date.now();
  blackhole(lab, 'P');
  const offUlids = (x: { msg: string; peerUlid?: unknown; new?: unknown; ts: string }): boolean => {
    const p = x.new as { local: string; peer: string } | undefined;
    return x.msg === 'locator-pair-changed' && x.peerUlid === LAB_ADDR.bP && p !== undefined && p.peer !== LAB_ADDR.bP && Date.parse(x.ts) >= failedAt;
  };
  await waitLog(lab, 'a', offUlids, 60_000);
  const before = received(server.lines, 1);
  await waitFor(() => received(server.lines, 1) > before, 'data through the re-homed context');
  unblackhole(lab, 'P');
  const pair = (await status(lab, 'a')).engine.contexts.find((c) => c.peerUlid === LAB_ADDR.bP)?.pair;
  assert.ok(pair !== undefined && pair.peer !== LAB_ADDR.bP, `the context is off its ULID pair: ${JSON.stringify(pair)}`);

  // B's daemon killed, never started again: B's host is up, its UDP port 5533 closed.
  await s.crash('b');
  const killedAt = Date.now();
  const atKill = received(server.lines, 1);
  const ended = await waitLog(lab, 'a', (x) => x.msg === 'context-closed' && x.peerUlid === LAB_ADDR.bP && Date.parse(x.ts) >= killedAt, DEADLINE_MS + HOLD_MS);
  t.diagnostic(`context ended ${Date.parse(ended.ts) - killedAt} ms after the kill (hold ${HOLD_MS} ms)`);
  assert.equal(ended.reason, 'peer-gone', JSON.stringify(ended));
  assert.equal(ended.resumable, false);
  assert.ok(Date.parse(ended.ts) - killedAt >= HOLD_MS, 'not before the hold');
  // The next line of the same event loop turn (the log file may hold the first alone when read).
  await waitLog(lab, 'a', (x) => x.msg === 'peer-unsupported' && x.peerUlid === LAB_ADDR.bP && x.reason === 'peer-gone' && Date.parse(x.ts) >= killedAt);
  assert.equal(log(lab, 'a').filter((x) => x.msg === 'context-closed' && Date.parse(x.ts) >= killedAt).length, 1, 'ended once');
  const st = await status(lab, 'a');
  assert.equal(st.engine.contexts.filter((c) => c.peerUlid === LAB_ADDR.bP).length, 0, 'no context with B');
  assert.ok(st.engine.capability?.negative.some((n) => n.address === LAB_ADDR.bP && n.reason === 'peer-gone'), `negative cache: ${JSON.stringify(st.engine.capability?.negative)}`);
  assert.ok(st.daemon.stats.icmpActed >= 2, `A acted on B's Port Unreachables: ${JSON.stringify(st.daemon.stats)}`);
  await waitFor(async () => !(await status(lab, 'a')).daemon.routed.includes(LAB_ADDR.bP), 'B\'s ULID no longer routed into the TUN');
  assert.doesNotMatch(nsExec(lab.a, ['ip', '-6', 'route', 'show', 'table', 'all']).stdout, new RegExp(`^${LAB_ADDR.bP} .*dev ${LAB_TUN}`, 'm'), 'no route into the TUN for B');

  // The open connection carries on, plain IPv6 on the ULIDs (TCP's next retransmission gets through).
  await waitFor(() => received(server.lines, 1) > atKill, 'the open connection reaching B again', DEADLINE_MS * 2);
  assert.equal(client.child.exitCode, null, 'the application\'s connection is still open');
  // A new connection to B goes plain on the ULIDs at once: nothing routes it into the dead context.
  const fresh = nsExec(lab.a, [process.execPath, '-e',
    `const s=require('net').connect({host:'${LAB_ADDR.bP}',port:${PORT}},()=>{s.end('hello',()=>{console.log('sent');s.destroy()})});s.on('error',(e)=>{console.log(e.code);process.exit(0)})`], { timeoutMs: DEADLINE_MS }).stdout.trim();
  assert.equal(fresh, 'sent');
  await waitFor(() => received(server.lines, 2) === 5, 'the new connection\'s octets at B');
  assert.equal(log(lab, 'a').filter((x) => x.msg === 'context-initiated' && Date.parse(x.ts) >= killedAt).length, 0, 'no exchange with the gone daemon');
}

test('B\'s daemon gone for good after a re-homing (TUN path): A ends the context after peerGoneTimeout, the open connection and a new one reach B plain on the ULIDs', { timeout: E2E_TIMEOUT_MS }, async (t) => {
  await goneForGood(t, { dataPath: 'tun' });
});

test('the same on the kernel path, re-homed packets through the TUN (encapsulation: tun): the errors about them reach the engine there too', { timeout: E2E_TIMEOUT_MS }, async (t) => {
  await goneForGood(t, { dataPath: 'kernel', encapsulation: 'tun' });
});

test('kernel path with the kernel encapsulation: a killed daemon\'s tc programs still carry the context at B, so the context stays past the hold (its Keepalives\' Port Unreachables notwithstanding) and the connection goes on', { timeout: E2E_TIMEOUT_MS }, async (t) => {
  if (!needs(t, { root: true, commands: ['ip', 'knotd', 'kdig', 'nft', 'tc', CLANG, 'bpftool'] })) return;
  const lab = await freshLab(t);
  const s = await daemons(t, lab, { peerGoneTimeout: HOLD_MS }, { dataPath: 'kernel' });
  const server = inNs(t, lab.b, SERVER);
  await waitFor(() => nsExec(lab.b, ['ss', '-Htln', `sport = :${PORT}`], { check: false }).stdout.includes(String(PORT)), 'B listening');
  nsExec(lab.a, ['kdig', `@${LAB_STUB}`, LAB_B_NAME, 'AAAA', '+short']);
  await waitLog(lab, 'a', (x) => x.msg === 'context-established' && x.peerUlid === LAB_ADDR.bP);
  inNs(t, lab.a, CLIENT);
  await waitFor(() => received(server.lines, 1) > 0, 'the connection carrying data to B');
  const failedAt = Date.now();
  blackhole(lab, 'P');
  await waitLog(lab, 'a', (x) => x.msg === 'context on the kernel encapsulation' && x.peer === LAB_ADDR.bP && Date.parse(x.ts) >= failedAt, 60_000);
  unblackhole(lab, 'P');
  await s.crash('b');
  const killedAt = Date.now();
  const atKill = received(server.lines, 1);
  const actedAtKill = (await status(lab, 'a')).daemon.stats.icmpActed;
  // Three holds, and B's Port Unreachables about A's own messages counted meanwhile.
  await waitFor(async () => Date.now() - killedAt > 3 * HOLD_MS && (await status(lab, 'a')).daemon.stats.icmpActed >= actedAtKill + 2, 'three holds with errors about A\'s messages', DEADLINE_MS + 3 * HOLD_MS, 200);
  assert.ok(received(server.lines, 1) > atKill, 'B\'s leftover tc programs carried the connection after the kill');
  const st = await status(lab, 'a');
  assert.equal(st.engine.contexts.filter((c) => c.peerUlid === LAB_ADDR.bP).length, 1, 'the context stays: traffic from B still arrives');
  assert.equal(log(lab, 'a').filter((x) => x.msg === 'context-closed' && Date.parse(x.ts) >= killedAt).length, 0);
  t.diagnostic(`errors A acted on after the kill: ${st.daemon.stats.icmpActed - actedAtKill}`);
});
