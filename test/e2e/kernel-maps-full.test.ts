// The kernel encapsulation's maps full (shim/dataplane/context-paths.ts, bpf-encap.ts): A's daemon
// runs with maxContexts 2, so its per-context maps hold 2 entries (the object is built for it), and
// shim6_egr is filled with dummy entries (other contexts, as far as the kernel knows) while A's
// context with B is on the kernel path. P fails: A's REAP re-homes to Q, the encapsulation is refused
// (counted `encap-set`), and the context must stay on the TUN path, steadily. Before, the context's
// shim6_ing entry stayed while it was on the TUN path: A's kernel decapsulated B's packets unseen by
// A's engine, REAP heard nothing and explored again and again (a review's lab: 85 → 107 explorations
// in 8 s; measured before this fix, 7 → 84 in 12 s), each with a failed encapsulation and a route change.
//
// The second test: TCP flows the kernel remembered on the kernel path, closed while the re-homed
// context stays on the TUN path (the maps full), are forgotten: their FINs cross the TUN, where the
// egress program that forgets a flow at our FIN never sees them, and the daemon forgets them
// (bpf-encap.ts `forget`). Before (CI run 149, a context that explored while A's sockets closed),
// they kept their places among the context's 256 for as long as the context lived.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CLANG, needs } from '../helpers/prereq.ts';
import { blackhole, LAB_ADDR, nsExec, sh, type Lab } from '../../lab/topology.ts';
import { LAB_B_NAME } from '../../lab/dns.ts';
import { runStream } from '../../lab/run.ts';
import { labDaemonFiles, LAB_STUB, startLabShim6 } from '../../lab/daemons.ts';
import { controlRequest } from '../../shim/daemon/control/client.ts';
import { DEADLINE_MS, waitFor } from '../helpers/wait.ts';
import { E2E_TIMEOUT_MS, freshLab, inNs, log, STREAM_RATE } from './fixture.ts';
import { dumpMap, hexArgs as hex, mapOf } from './bpf-maps.ts';

interface Status {
  daemon: { stats: { drops: Record<string, number> }; kernelEncapsulation?: { packets: Record<string, number> | null } | string };
  engine: { contexts: Array<{ peerUlid: string; state: string; path?: string; pair: { local: string; peer: string } }> };
}


/** Fill A's shim6_egr (maxContexts 2) with entries of other contexts, as far as the kernel knows; the next update is refused. */
function fillEgress(lab: Lab): void {
  const egr = mapOf(lab, 'shim6_egr');
  assert.equal(egr.maxEntries, 2, 'the maps are sized from maxContexts');
  for (let i = 0; i < egr.maxEntries; i++) {
    const ulid = [0x20, 0x01, 0x0d, 0xb8, 0xfe, 0xfe, ...new Array<number>(9).fill(0), i + 1];
    sh(['bpftool', 'map', 'update', 'id', String(egr.id), 'key', 'hex', ...hex([...ulid, ...ulid]), 'value', 'hex', ...hex(new Array<number>(egr.valueBytes).fill(0))]);
  }
  // Full: one more is refused (E2BIG).
  const more = [0x20, 0x01, 0x0d, 0xb8, 0xfe, 0xfe, ...new Array<number>(10).fill(0x77)];
  assert.notEqual(sh(['bpftool', 'map', 'update', 'id', String(egr.id), 'key', 'hex', ...hex([...more, ...more]), 'value', 'hex', ...hex(new Array<number>(egr.valueBytes).fill(0))], { check: false }).status, 0, 'shim6_egr is full');
}

/** A's status (its control socket). */
const statusOf = async (lab: Lab): Promise<Status> => await controlRequest(labDaemonFiles(lab, 'a').control, 'status') as unknown as Status;

test('dataPath: kernel: A\'s shim6_egr full (maxContexts 2): after P fails the re-homed context stays on the TUN path, REAP explores once, the stream ends intact', { timeout: E2E_TIMEOUT_MS }, async (t) => {
  if (!needs(t, { root: true, commands: ['ip', 'knotd', 'kdig', 'nft', 'tc', CLANG, 'bpftool'] })) return;
  const lab = await freshLab(t);
  // Both Send Timeouts 1 s (the fast profile's is 150 ms): on a busy host a 150 ms stall of either
  // daemon explored when nothing failed (a CI run with both CPUs taken: 3 explorations, one of
  // them 4 s after the failure); the defect this test is about explores at every Send Timeout (with
  // the half-made entry left in again, 6 times in the 9 s after the failure; fixed: once).
  const s = await startLabShim6(lab, () => undefined, { timers: { sendTimeout: 1000 }, extra: { dataPath: 'kernel' }, extraA: { maxContexts: 2 } });
  t.after(() => s.stop());
  let filledAt = 0;
  const fill = async (): Promise<void> => {
    fillEgress(lab);
    filledAt = Date.now();
  };
  const r = await runStream(lab, {
    to: LAB_B_NAME, resolver: s.resolverA, durationMs: 12_000, rate: STREAM_RATE, graceMs: 20_000,
    actions: [{ atMs: 1500, run: fill }], failAtMs: 3000, failure: 'blackhole', link: 'P',
  });
  assert.equal(r.complete, true, 'the stream ended normally');
  assert.equal(r.bytes_verified, r.bytes_sent, 'every octet once and intact');
  const st = await statusOf(lab);
  const c = st.engine.contexts.find((x) => x.peerUlid === LAB_ADDR.bP && x.state === 'ESTABLISHED');
  t.diagnostic(`A: context ${JSON.stringify(c)}, drops ${JSON.stringify(st.daemon.stats.drops)}`);
  assert.ok((st.daemon.stats.drops['encap-set'] ?? 0) >= 1, 'the kernel refused the encapsulation (counted encap-set)');
  assert.equal(c?.pair.local, LAB_ADDR.aQ, 'A re-homed to Q');
  assert.equal(c?.path, 'tun', 'the re-homed context uses the TUN path');
  const explored = log(lab, 'a').filter((x) => x.msg === 'reap-state' && x.state === 'exploring' && x.peerUlid === LAB_ADDR.bP && Date.parse(x.ts) >= filledAt);
  t.diagnostic(`A's explorations after the maps were filled: ${explored.length}`);
  // One for the failure; a loaded host's false exploration may still add one (test/e2e/reap-steady.test.ts).
  assert.ok(explored.length <= 2, `A's REAP explored ${explored.length} times after P failed (a steady TUN path explores once)`);
  assert.ok(log(lab, 'a').some((x) => x.msg.startsWith('kernel encapsulation: the kernel refused a map update')), 'the refusal is logged');
});

test('dataPath: kernel: TCP flows the kernel remembered, closed while the re-homed context stays on the TUN path (shim6_egr full), are forgotten: their FINs crossed the TUN', { timeout: E2E_TIMEOUT_MS }, async (t) => {
  if (!needs(t, { root: true, commands: ['ip', 'knotd', 'kdig', 'nft', 'tc', CLANG, 'bpftool'] })) return;
  const lab = await freshLab(t);
  // Send Timeouts of 1 s, as above: one re-homing, no false exploration on a busy host.
  const s = await startLabShim6(lab, () => undefined, { timers: { sendTimeout: 1000 }, extra: { dataPath: 'kernel' }, extraA: { maxContexts: 2 } });
  t.after(() => s.stop());
  nsExec(lab.a, ['kdig', `@${LAB_STUB}`, LAB_B_NAME, 'AAAA', '+short']); // B's record: A knows B runs shim6
  const N = 20;
  const server = inNs(t, lab.b, `require('net').createServer((s)=>{s.on('data',()=>{});s.on('error',()=>{})}).listen(7000,'::',()=>console.log('listening'))`);
  await waitFor(() => server.lines.includes('listening'), 'B\'s server listening');
  // N connections from A to B's ULID, each sending a little every 100 ms (B's ACKs make A's kernel remember them).
  const clients = inNs(t, lab.a, `let up=0;for(let i=0;i<${N};i++){const c=require('net').connect({host:${JSON.stringify(LAB_ADDR.bP)},port:7000},()=>{if(++up===${N})console.log('connected');setInterval(()=>c.write('x'.repeat(100)),100)});c.on('error',(e)=>console.log('error '+e.code))}`);
  await waitFor(() => clients.lines.includes('connected'), 'A\'s connections', 2 * DEADLINE_MS, 100);
  const flows = (): number => dumpMap(mapOf(lab, 'shim6_flows')).length;
  await waitFor(() => flows() === N, `A's kernel remembers the ${N} flows`, 2 * DEADLINE_MS, 200);
  // P fails with shim6_egr full: A re-homes to Q and its context stays on the TUN path.
  fillEgress(lab);
  blackhole(lab, 'P', 'a');
  await waitFor(async () => {
    const c = (await statusOf(lab)).engine.contexts.find((x) => x.peerUlid === LAB_ADDR.bP && x.state === 'ESTABLISHED');
    return c?.pair.local === LAB_ADDR.aQ && c.path === 'tun';
  }, 'A\'s context re-homed to Q, on the TUN path', 2 * DEADLINE_MS, 200);
  assert.equal(flows(), N, 'the flows are still remembered');
  const before = await statusOf(lab);
  // A's sockets close (the process killed): each FIN goes into the TUN, the daemon forgets the flow.
  clients.child.kill('SIGKILL');
  await waitFor(() => flows() === 0, 'A\'s flow table empty once A closed its sockets', 2 * DEADLINE_MS, 200);
  const closed = (st: Status): number => (typeof st.daemon.kernelEncapsulation === 'object' ? st.daemon.kernelEncapsulation.packets?.flowsClosed : undefined) ?? 0;
  const after = await statusOf(lab);
  t.diagnostic(`A's flowsClosed: ${closed(before)} before the sockets closed, ${closed(after)} after`);
  assert.ok(closed(after) - closed(before) >= N, `each flow counted closed: ${closed(before)} → ${closed(after)}`);
  assert.equal(after.engine.contexts.find((x) => x.peerUlid === LAB_ADDR.bP && x.state === 'ESTABLISHED')?.path, 'tun', 'the context stayed on the TUN path meanwhile');
});
