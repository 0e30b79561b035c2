// Protection that lasts (issue 17), with the real daemons in the lab: A's
// daemon restarts in the middle of a stream — SIGTERM, then SIGKILL — and the
// connection, opened before the restart, is protected again (found in the
// kernel's socket table, primed from the saved caches), so a black hole of
// link P afterwards is survived; also after A's ULID address was removed
// (renumbering) before the restart, for a connection still opening across it, and for one opened
// while the new daemon starts. No timing assertions: the stream's own
// verification (every octet once, intact) and the daemons' logs decide.
import { test } from 'node:test';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import assert from 'node:assert/strict';
import { needs } from '../helpers/prereq.ts';
import { crossesLinkP, LAB_ADDR, LAB_IF, type Lab } from '../../lab/topology.ts';
import type { LabShim6, LogRecord } from '../../lab/daemons.ts';
import { LAB_B_NAME } from '../../lab/dns.ts';
import { runStream } from '../../lab/run.ts';
import { addAddress, removeAddress } from '../../lab/renumber.ts';
import { daemons, E2E_TIMEOUT_MS, freshLab, inNs, log, tcpSockets, waitLog, STREAM_RATE } from './fixture.ts';
import { waitFor } from '../helpers/wait.ts';
import { controlRequest } from '../../shim/daemon/control/client.ts';
import type { KeptUlidView } from '../../shim/daemon/restored.ts';

/** `shim6 status`'s kept ULIDs of host `h` (docs/status.md `daemon.keptUlids`). */
async function keptUlids(s: LabShim6, h: 'a' | 'b'): Promise<KeptUlidView[] | undefined> {
  return ((await controlRequest(s.files(h).control, 'status')) as { daemon?: { keptUlids?: KeptUlidView[] } }).daemon?.keptUlids;
}

/**
 * A 40 s (or `durationMs`) stream A → B whose link P is black-holed 9 s in, but not before
 * `back(mark.restartedAt)` holds (the restarted daemon's context is up: a failure after the
 * restart). Set `mark.restartedAt` when the restart begins.
 */
function streamFailingAfterRestart(lab: Lab, s: LabShim6, back: (x: LogRecord, restartedAt: number) => boolean, { durationMs = 40_000, gateMs = 60_000, graceMs = 20_000 } = {}): { run: ReturnType<typeof runStream>; mark: { restartedAt?: number } } {
  const mark: { restartedAt?: number } = {};
  const failGate = async (): Promise<void> => {
    await waitFor(() => mark.restartedAt !== undefined && log(lab, 'a').some((x) => back(x, mark.restartedAt!)), 'the restarted daemon\'s context with B', gateMs, 50);
  };
  const run = runStream(lab, { to: LAB_B_NAME, resolver: s.resolverA, durationMs, failAtMs: 9000, failGate, failure: 'blackhole', rate: STREAM_RATE, graceMs });
  return { run, mark };
}

/** The stream of streamFailingAfterRestart survived: whole, intact, P failed after the restart and data flowed again. */
function survived(r: Awaited<ReturnType<typeof runStream>>, restartedAt: number): void {
  assert.equal(r.complete, true, 'the stream ended normally');
  assert.equal(r.corrupt, 0);
  assert.equal(r.bytes_verified, r.bytes_sent, 'every octet once and intact');
  assert.ok(r.failAt !== undefined && r.failAt > restartedAt, 'P failed after the restart');
  assert.equal(r.recovered, true, 'data flowed again after P was black-holed');
}

/** A's context with B, established at or after `since`. */
const withB = (x: LogRecord, since: number): boolean => x.msg === 'context-established' && x.peerUlid === LAB_ADDR.bP && Date.parse(x.ts) >= since;

// A connection opened while A's daemon starts: after its scan of the socket tables (before its
// engine, which needs that scan), before it watches new flows. The test holds the new daemon in
// that window for real: its `ip` is a wrapper that makes the daemon's first reading of the host's
// addresses (the first command after the scan, shim/daemon/daemon.ts `identify`) wait until the
// test has opened the connection. Its first packet then went out before the new-flows table existed,
// so discovery never hears of it; the daemon reads the socket tables again once it watches new flows.
test('a connection opened while A\'s daemon starts (after its first scan, before it watches new flows) is found and discovered, with no cache file', { timeout: E2E_TIMEOUT_MS }, async (t) => {
  if (!needs(t, { root: true, commands: ['ip', 'ss', 'knotd', 'kdig', 'nft'] })) return;
  const lab = await freshLab(t);
  const s = await daemons(t, lab);
  const port = 7002;
  const server = inNs(t, lab.b, `net.createServer((c) => c.resume()).listen(${port}, '::', () => console.log('listening'))`);
  await waitFor(() => server.lines.includes('listening'), 'a TCP server on B');
  await s.stopHost('a');
  writeFileSync(s.files('a').cache, '{ not json');
  const bin = path.join(lab.stateDir, 'hold-bin');
  mkdirSync(bin, { recursive: true });
  const ip = execFileSync('sh', ['-c', 'command -v ip'], { encoding: 'utf8' }).trim();
  // At most 4 s held: the daemon gives `ip` 5 s (shim/daemon/locators.ts).
  writeFileSync(path.join(bin, 'ip'), `#!/bin/sh
if [ "$*" = "-j -6 addr show" ] && mkdir "${bin}/held" 2>/dev/null; then
  i=0
  while [ ! -e "${bin}/go" ] && [ $i -lt 400 ]; do sleep 0.01; i=$((i + 1)); done
  [ -e "${bin}/go" ] || touch "${bin}/timed-out"
fi
exec ${ip} "$@"
`, { mode: 0o755 });
  // The client is up before the daemon starts and connects when told: the hold is short.
  const client = inNs(t, lab.a, `const t = setInterval(() => { if (!require('fs').existsSync('${bin}/connect')) return; clearInterval(t); const c = net.connect({ host: '${LAB_ADDR.bP}', port: ${port} }); c.on('connect', () => console.log('connected')); c.on('error', (e) => console.log('error ' + e.code)); }, 5); console.log('ready');`);
  await waitFor(() => client.lines.includes('ready'), 'the client in A, waiting to connect');
  const restartedAt = Date.now();
  const started = s.start('a', { PATH: `${bin}:${process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'}` });
  started.catch(() => undefined); // awaited below
  await waitFor(() => existsSync(path.join(bin, 'held')), 'the new daemon held right after its scan of the socket tables');
  writeFileSync(path.join(bin, 'connect'), '');
  await waitFor(() => client.lines.includes('connected') || client.lines.some((l) => l.startsWith('error')), 'the connection opened over plain IPv6 while the daemon is held');
  assert.deepEqual(client.lines, ['ready', 'connected'], 'the connection opened');
  writeFileSync(path.join(bin, 'go'), '');
  await started;
  assert.equal(existsSync(path.join(bin, 'timed-out')), false, 'the daemon was still held when the connection opened (its window was the one under test)');
  const found = await waitLog(lab, 'a', (x) => x.msg === 'open connections of unknown peers: discovery' && Date.parse(x.ts) >= restartedAt, 30_000);
  assert.ok((found.peers as number) >= 1, 'the connection opened during the start is among the open connections the new daemon found');
  assert.ok(log(lab, 'a').some((x) => x.msg === 'discovery started' && x.peer === LAB_ADDR.bP && Date.parse(x.ts) >= restartedAt), 'discovery started for B');
  await waitLog(lab, 'a', (x) => withB(x, restartedAt), 60_000);
  assert.notEqual(tcpSockets(lab.a, LAB_ADDR.bP), '', 'A\'s connection to B is still established');
});

for (const how of ['SIGTERM', 'SIGKILL'] as const) {
  test(`A's daemon restarts (${how}) mid-stream; the open connection is protected again and survives P black-holed afterwards`, { timeout: E2E_TIMEOUT_MS }, async (t) => {
    if (!needs(t, { root: true, commands: ['ip', 'knotd', 'kdig', 'nft'] })) return;
    const lab = await freshLab(t);
    const s = await daemons(t, lab);
    // The stream runs 40 s; P fails 9 s after it connects, and not before the restarted daemon's
    // context with B is up: a later link failure. A loaded machine can take seconds to restart it: a
    // busy CI run's restarted daemon had its context 19 s into a 20 s stream, P failed after the
    // sender's last write, and "data flowed again" had nothing left to show (every octet arrived).
    // 40 s leaves the failure mid-stream after a restart of up to ~30 s.
    const { run, mark } = streamFailingAfterRestart(lab, s, withB);
    await waitLog(lab, 'a', (x) => x.msg === 'context-established' && x.peerUlid === LAB_ADDR.bP, 30_000);
    // The cache save (2 s after the context, debounced) must have happened, or the SIGKILLed daemon's
    // successor knows nothing of B to protect: waited for, not slept (a fixed 3 s was too short in a
    // busy CI run, whose daemon's event loop ran a second late: cachesImported false, no protection).
    const cacheFile = s.files('a').cache;
    await waitFor(() => existsSync(cacheFile) && readFileSync(cacheFile, 'utf8').includes(LAB_ADDR.bP), 'A\'s caches saved with B');
    const restartedAt = Date.now();
    mark.restartedAt = restartedAt;
    if (how === 'SIGTERM') await s.stopHost('a'); else await s.crash('a');
    await s.start('a');
    const again = await waitLog(lab, 'a', (x) => x.msg === 'open connections protected again' && Date.parse(x.ts) >= restartedAt, 30_000);
    assert.ok((again.peers as string[]).includes(LAB_ADDR.bP), 'B, the peer of the open connection, was primed at start');
    await waitLog(lab, 'a', (x) => x.msg === 'context-established' && x.peerUlid === LAB_ADDR.bP && Date.parse(x.ts) >= restartedAt, 30_000);
    const r = await run;
    survived(r, restartedAt);
    t.diagnostic(`stall after the black hole: ${String(r.stall_after_fail_ms)} ms (longest gap of the run: ${r.stall_ms} ms)`);
  });
}

test('A\'s daemon restarts with its cache file lost (corrupt); discovery protects the open connection again and it survives P black-holed afterwards', { timeout: E2E_TIMEOUT_MS }, async (t) => {
  if (!needs(t, { root: true, commands: ['ip', 'knotd', 'kdig', 'nft'] })) return;
  const lab = await freshLab(t);
  const s = await daemons(t, lab);
  const { run, mark } = streamFailingAfterRestart(lab, s, withB);
  await waitLog(lab, 'a', (x) => x.msg === 'context-established' && x.peerUlid === LAB_ADDR.bP, 30_000);
  // The context comes up before the stream's handshake is through (its SYN is held until then): stopped
  // at once, the connection may still be opening (CI run 182); the test after this one covers that.
  await waitFor(() => tcpSockets(lab.a, LAB_ADDR.bP) !== '', 'the stream\'s connection established on A');
  const restartedAt = Date.now();
  mark.restartedAt = restartedAt;
  await s.stopHost('a');
  writeFileSync(s.files('a').cache, '{ not json'); // lost: the disk handed back garbage
  await s.start('a');
  await waitLog(lab, 'a', (x) => x.msg === 'ignoring unreadable cache file' && Date.parse(x.ts) >= restartedAt, 30_000);
  const found = await waitLog(lab, 'a', (x) => x.msg === 'open connections of unknown peers: discovery' && Date.parse(x.ts) >= restartedAt, 30_000);
  assert.ok((found.started as number) >= 1, 'discovery started for the open connection\'s peer');
  await waitLog(lab, 'a', (x) => x.msg === 'context-established' && x.peerUlid === LAB_ADDR.bP && Date.parse(x.ts) >= restartedAt, 30_000);
  survived(await run, restartedAt);
});

// A connection still opening across the restart: its SYNs are dropped (an nftables table of the test's
// own in A's namespace) from before A's daemon stops until its successor has started, with no cache file
// to know B from. The new daemon's scan of the socket tables finds it in SYN_SENT and discovers B. Left
// out, it would be protected only if a SYN retransmitted once the new daemon watches new flows showed
// it to discovery: in CI run 182 that SYN left while the new daemon was still starting, and the
// connection went on over plain IPv6 for good (shim/daemon/open-connections.ts, TCP_OPENING_STATES).
test('a connection whose handshake spans A\'s restart (SYN_SENT, its SYNs lost) is found by the new daemon and discovered, with no cache file', { timeout: E2E_TIMEOUT_MS }, async (t) => {
  if (!needs(t, { root: true, commands: ['ip', 'ss', 'knotd', 'kdig', 'nft'] })) return;
  const lab = await freshLab(t);
  const s = await daemons(t, lab);
  const port = 7001;
  const server = inNs(t, lab.b, `net.createServer((c) => c.resume()).listen(${port}, '::', () => console.log('listening'))`);
  await waitFor(() => server.lines.includes('listening'), 'a TCP server on B');
  const restartedAt = Date.now();
  await s.stopHost('a');
  writeFileSync(s.files('a').cache, '{ not json');
  const nft = (script: string): void => { execFileSync('ip', ['netns', 'exec', lab.a, 'nft', '-f', '-'], { input: script }); };
  nft(`table inet e2e_synhold {\n chain out {\n  type filter hook output priority 0;\n  ip6 daddr ${LAB_ADDR.bP} tcp dport ${port} drop\n }\n}\n`);
  t.after(() => { try { nft('delete table inet e2e_synhold\n'); } catch { /* gone with the lab */ } });
  const client = inNs(t, lab.a, `const c = net.connect({ host: '${LAB_ADDR.bP}', port: ${port} }); c.on('connect', () => console.log('connected')); c.on('error', (e) => console.log('error ' + e.code));`);
  const synSent = (): string => execFileSync('ip', ['netns', 'exec', lab.a, 'ss', '-tnH', 'state', 'syn-sent', 'dst', `[${LAB_ADDR.bP}]`], { encoding: 'utf8' }).trim();
  await waitFor(() => synSent() !== '', 'A\'s connection to B in SYN_SENT');
  await s.start('a');
  // Found among the open connections: as a peer the caches do not know (discovery), or as one a
  // context is being set up with already, when a retransmitted SYN reached discovery's new-flow
  // watcher while the daemon started, before its look at the open connections.
  const found = await waitLog(lab, 'a', (x) => Date.parse(x.ts) >= restartedAt && ((x.msg === 'open connections of unknown peers: discovery' && (x.peers as number) >= 1)
    || (x.msg === 'open connections protected again' && (x.peers as string[]).includes(LAB_ADDR.bP))), 30_000);
  assert.ok(found, 'the connection still opening is among the open connections the new daemon found');
  assert.ok(log(lab, 'a').some((x) => x.msg === 'discovery started' && x.peer === LAB_ADDR.bP && Date.parse(x.ts) >= restartedAt), 'discovery started for B');
  nft('delete table inet e2e_synhold\n');
  await waitLog(lab, 'a', (x) => withB(x, restartedAt), 60_000);
  await waitFor(() => client.lines.includes('connected') || client.lines.some((l) => l.startsWith('error')), 'the connection opened (its next SYN, retransmitted)', 120_000);
  assert.deepEqual(client.lines, ['connected'], 'the connection opened');
  assert.notEqual(tcpSockets(lab.a, LAB_ADDR.bP), '', 'A\'s connection to B is established');
});

for (const how of ['SIGTERM', 'SIGKILL'] as const) {
  test(`A's ULID address is removed mid-stream, then A's daemon restarts (${how}): the connection bound to the old ULID is protected again with that ULID, survives P black-holed, and the ULID is released after it closed`, { timeout: E2E_TIMEOUT_MS + 60_000 }, async (t) => {
    if (!needs(t, { root: true, commands: ['ip', 'knotd', 'kdig', 'nft'] })) return;
    const lab = await freshLab(t);
    // A short idle timeout: the old ULID's context ends soon after the stream, and the daemon checks
    // every idle timeout whether the ULID is still used (docs/operations.md "Protection that lasts").
    const s = await daemons(t, lab, { idleTimeout: 10_000 });
    const restarted = (x: LogRecord, since: number): boolean => withB(x, since) && x.localUlid === LAB_ADDR.aP;
    const { run, mark } = streamFailingAfterRestart(lab, s, restarted, { durationMs: 60_000, gateMs: 120_000, graceMs: 30_000 });
    await waitLog(lab, 'a', (x) => x.msg === 'context-established' && x.peerUlid === LAB_ADDR.bP && x.localUlid === LAB_ADDR.aP, 30_000);
    // Renumbering of link P: a new address, then the ULID's own address goes (docs/operations.md "Renumbering").
    addAddress(lab, 'a', LAB_IF.P, '2001:db8:1::1:a');
    const removedAt = Date.now();
    removeAddress(lab, 'a', LAB_IF.P, LAB_ADDR.aP);
    await waitLog(lab, 'a', (x) => x.msg === 'local locators changed' && (x.removed as string[]).includes(LAB_ADDR.aP) && Date.parse(x.ts) >= removedAt - 1000, 30_000);
    // The cache file keeps the context's ULID pair (saved 2 s after the context came up; a SIGKILLed daemon writes nothing more).
    const cacheFile = s.files('a').cache;
    const saved = (): boolean => {
      try { return (JSON.parse(readFileSync(cacheFile, 'utf8')) as { contexts?: Array<{ localUlid: string }> }).contexts?.some((c) => c.localUlid === LAB_ADDR.aP) === true; } catch { return false; }
    };
    await waitFor(() => existsSync(cacheFile) && saved(), 'A\'s cache file keeps the context with its ULID');
    const restartedAt = Date.now();
    mark.restartedAt = restartedAt;
    if (how === 'SIGTERM') await s.stopHost('a'); else await s.crash('a');
    await s.start('a');
    const kept = await waitLog(lab, 'a', (x) => x.msg === 'ULIDs kept from before the restart' && Date.parse(x.ts) >= restartedAt, 30_000);
    assert.deepEqual(kept.ulids, [LAB_ADDR.aP]);
    const again = await waitLog(lab, 'a', (x) => x.msg === 'open connections protected again' && Date.parse(x.ts) >= restartedAt, 30_000);
    assert.ok((again.ulids as string[]).includes(LAB_ADDR.aP) && (again.peers as string[]).includes(LAB_ADDR.bP), 'the open connection: old ULID ↔ B');
    const ready = await waitLog(lab, 'a', (x) => x.msg === 'daemon ready' && Date.parse(x.ts) >= restartedAt, 30_000);
    assert.equal(ready.ulid, LAB_ADDR.aQ, 'the new daemon\'s ULID is the first member of A\'s HBA set it still has; the old one is kept for the connection only');
    await waitFor(() => log(lab, 'a').some((x) => restarted(x, restartedAt)), 'the context old ULID ↔ B after the restart', 120_000);
    // `shim6 status` shows the kept ULID: from before the restart, BROKEN, the connection and its context on it, a check to come.
    const shown = (await keptUlids(s, 'a'))?.find((k) => k.address === LAB_ADDR.aP);
    t.diagnostic(`A's kept ULIDs after the restart: ${JSON.stringify(await keptUlids(s, 'a'))}`);
    assert.ok(shown !== undefined && shown.why === 'restart' && shown.broken && (shown.connections ?? 0) >= 1 && shown.contexts >= 1
      && shown.releaseCheckInMs !== null && shown.releaseCheckInMs >= 0, `status shows the kept ULID: ${JSON.stringify(shown)}`);
    const r = await run;
    survived(r, restartedAt);
    t.diagnostic(`longest gap of the run: ${r.stall_ms} ms; after the black hole: ${String(r.stall_after_fail_ms)} ms`);
    // The stream is over, its connection closed: once its context has idled out, the old ULID goes.
    const released = await waitLog(lab, 'a', (x) => x.msg === 'ULIDs from before the restart released' && Date.parse(x.ts) >= restartedAt, 120_000);
    assert.deepEqual(released.ulids, [LAB_ADDR.aP]);
    assert.deepEqual(((await keptUlids(s, 'a')) ?? []).map((k) => k.address), [], 'status shows no kept ULID once it is released');
    await waitFor(() => {
      try { return (JSON.parse(readFileSync(cacheFile, 'utf8')) as { contexts?: Array<{ localUlid: string }> }).contexts?.some((c) => c.localUlid === LAB_ADDR.aP) === false; } catch { return false; }
    }, 'A\'s cache file no longer keeps the old ULID', 30_000);
  });
}

test('a context cleaned up by a short idle timeout comes back with the next packet (no new prime) and survives P black-holed', { timeout: 120_000 }, async (t) => {
  if (!needs(t, { root: true, commands: ['ip', 'knotd', 'kdig', 'nft'] })) return;
  const lab = await freshLab(t);
  const s = await daemons(t, lab, { idleTimeout: 1500 });
  // 1.5 s of data, 4 s of silence (the idle timeout removes the contexts), data again, P fails 3 s later.
  const run = runStream(lab, { to: LAB_B_NAME, resolver: s.resolverA, durationMs: 12_000, pause: { atMs: 1500, ms: 4000 }, failAtMs: 8500, failure: 'blackhole', rate: STREAM_RATE, graceMs: 20_000 });
  const first = await waitLog(lab, 'a', (x) => x.msg === 'context-established' && x.peerUlid === LAB_ADDR.bP, 30_000);
  const idle = await waitLog(lab, 'a', (x) => x.msg === 'context-closed' && x.peerUlid === LAB_ADDR.bP && x.reason === 'idle', 30_000);
  assert.equal(idle.resumable, true, 'B is known to run shim6: its route stays');
  const again = await waitLog(lab, 'a', (x) => x.msg === 'context-established' && x.peerUlid === LAB_ADDR.bP && Date.parse(x.ts) >= Date.parse(idle.ts), 30_000);
  const r = await run;
  assert.equal(log(lab, 'a').filter((x) => x.msg === 'prime').length, 1, 'one prime (the record was not fetched again): the packet brought the context back');
  assert.ok(Date.parse(again.ts) > Date.parse(first.ts));
  assert.ok(r.failAt !== undefined && Date.parse(again.ts) < r.failAt, 'the context was back before the failure');
  assert.equal(r.complete, true, 'the stream ended normally');
  assert.equal(r.corrupt, 0);
  assert.equal(r.bytes_verified, r.bytes_sent, 'every octet once and intact');
  assert.equal(r.recovered, true, 'data flowed again after P was black-holed');
  // On a busy machine the fast profile's 150 ms Send Timeout may explore, and move, before anything
  // failed (docs/engine.md): what counts is that the context that came back ended off link P
  // (crossesLinkP: B's Q locator, whatever A's own).
  const moves = log(lab, 'a').filter((x) => x.msg === 'locator-pair-changed' && x.peerUlid === LAB_ADDR.bP && Date.parse(x.ts) >= Date.parse(again.ts));
  const last = moves.at(-1)?.new as { local: string; peer: string } | undefined;
  assert.ok(last !== undefined && !crossesLinkP(last), `A re-homed off link P: ${JSON.stringify(moves.map((x) => x.new))}`);
});
