// The daemon's data path choice end to end (issue 20): with `dataPath: kernel` a context on its ULID
// pair carries the stream without the TUN and `shim6 status` says `path: kernel`; with `dataPath: tun`
// the same stream crosses the TUN and status says `path: tun`; a stopped daemon leaves no nftables table.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CLANG, needs } from '../helpers/prereq.ts';
import { LAB_ADDR, LAB_IF, nsExec } from '../../lab/topology.ts';
import { LAB_B_NAME } from '../../lab/dns.ts';
import { runStream } from '../../lab/run.ts';
import { labDaemonFiles, startLabShim6 } from '../../lab/daemons.ts';
import { controlRequest } from '../../shim/daemon/control/client.ts';
import { KERNEL_TABLE } from '../../shim/dataplane/kernel-path.ts';
import { daemons, E2E_TIMEOUT_MS, freshLab, log, waitLog, STREAM_RATE } from './fixture.ts';
import { DEADLINE_MS, waitFor } from '../helpers/wait.ts';

interface Status { daemon: { dataPath: string; stats: { tunIn: number; kernelTraffic: number } }; engine: { contexts: Array<{ peerUlid: string; path?: string }> } }

for (const dataPath of ['kernel', 'tun'] as const) {
  test(`dataPath: ${dataPath}: the stream to B's ULID takes the ${dataPath} path, and status says so`, { timeout: E2E_TIMEOUT_MS }, async (t) => {
    if (!needs(t, { root: true, commands: ['ip', 'knotd', 'kdig', 'nft'] })) return;
    const lab = await freshLab(t);
    // A Send Timeout of 3 s (the fast profile's is 150 ms): nothing fails here, and on a busy host a
    // false exploration could move the context off its ULID pair (the peer's report naming only
    // our probe on another pair, RFC 5534 §6.8), onto the kernel encapsulation, which hands TCP's
    // large segments to the TUN to be cut: the stream would cross the TUN by design, not the path
    // this test is about (test/e2e/reap-steady.test.ts is about such explorations).
    const s = await daemons(t, lab, { sendTimeout: 3000 }, { dataPath });
    const r = await runStream(lab, { to: LAB_B_NAME, resolver: s.resolverA, durationMs: 2000, failAtMs: 1000, failure: 'none', rate: STREAM_RATE, graceMs: 20_000 });
    assert.equal(r.complete, true, 'the stream ended normally');
    assert.equal(r.bytes_verified, r.bytes_sent);
    const status = async () => await controlRequest(labDaemonFiles(lab, 'a').control, 'status') as unknown as Status;
    const pathOf = (st: Status) => st.engine.contexts.find((c) => c.peerUlid === LAB_ADDR.bP)?.path;
    await waitFor(async () => pathOf(await status()) === dataPath, `status: path ${dataPath}`, DEADLINE_MS, 200);
    const st = await status();
    assert.equal(st.daemon.dataPath, dataPath);
    const packets = r.bytes_sent / 1400;
    if (dataPath === 'kernel') {
      // What moved the context between the paths, for a failure's reader.
      const since = Date.parse(log(lab, 'a')[0]?.ts ?? '') || 0;
      const steps = log(lab, 'a').filter((x) => x.peerUlid === LAB_ADDR.bP || x.peer === LAB_ADDR.bP)
        .filter((x) => /reap-state|context-established|kernel path|encapsulation|locator-pair-changed|TUN/.test(String(x.msg)))
        .map((x) => `${Date.parse(x.ts) - since} ms ${x.msg}${x.state !== undefined ? ` ${String(x.state)}` : ''}`);
      t.diagnostic(`A's context with B: ${steps.join('; ')}`);
      // The first packets wait in the TUN during the exchange (the hold); the stream does not cross it.
      assert.ok(st.daemon.stats.tunIn < packets / 2, `A's TUN carried ${st.daemon.stats.tunIn} packets of a ${r.bytes_sent}-octet stream`);
      assert.ok(st.daemon.stats.kernelTraffic > 0, 'the kernel\'s counters fed REAP');
    } else {
      assert.ok(st.daemon.stats.tunIn > packets / 2, `A's TUN carried the stream (${st.daemon.stats.tunIn} packets)`);
    }
    const table = () => nsExec(lab.a, ['nft', 'list', 'table', 'ip6', KERNEL_TABLE], { check: false }).status === 0;
    assert.equal(table(), dataPath === 'kernel', 'the kernel path\'s table exists while the daemon runs (only on that path)');
    await s.stopHost('a');
    assert.equal(table(), false, 'the stopped daemon left no table');
  });
}

// A re-homed alone: its packets from P are black-holed for 600 ms (B's to A still arrive), so A's
// REAP moves it to Q while B, which kept hearing A, stays on its ULID pair. A's kernel encapsulates
// to B's ULID pair; B's kernel must decapsulate them although B never re-homed (before, they went
// up B's UDP socket, where A's large encapsulated segments could not cross, and the stream stopped).
test('dataPath: kernel: A re-homes alone (one-way failure); B decapsulates in its kernel and the stream ends intact', { timeout: E2E_TIMEOUT_MS }, async (t) => {
  if (!needs(t, { root: true, commands: ['ip', 'knotd', 'kdig', 'nft', 'tc', CLANG, 'bpftool'] })) return;
  const lab = await freshLab(t);
  const s = await daemons(t, lab, {}, { dataPath: 'kernel' });
  const run = runStream(lab, { to: LAB_B_NAME, resolver: s.resolverA, durationMs: 6000, failAtMs: 5000, failure: 'none', rate: STREAM_RATE, graceMs: 20_000 });
  await waitLog(lab, 'a', (x) => x.msg === 'context on the kernel path' && x.peer === LAB_ADDR.bP, 30_000);
  await new Promise((r) => setTimeout(r, 1000));
  nsExec(lab.a, ['nft', '-f', '-'], { input: `table ip6 e2e_oneway {\n chain o { type filter hook output priority -300; oifname "${LAB_IF.P}" ip6 saddr ${LAB_ADDR.aP} drop; }\n}\n` });
  await waitLog(lab, 'a', (x) => x.msg === 'locator-pair-changed' && x.peerUlid === LAB_ADDR.bP, 30_000);
  await new Promise((r) => setTimeout(r, 600));
  nsExec(lab.a, ['nft', 'delete', 'table', 'ip6', 'e2e_oneway']);
  const r = await run;
  assert.equal(r.complete, true, 'the stream ended normally');
  assert.equal(r.bytes_verified, r.bytes_sent, 'every octet once and intact');
  const bMoved = log(lab, 'b').some((x) => x.msg === 'locator-pair-changed');
  t.diagnostic(`B re-homed too: ${String(bMoved)}`);
  if (!bMoved) {
    const st = await controlRequest(labDaemonFiles(lab, 'b').control, 'status') as unknown as { daemon: { kernelEncapsulation?: { packets: { decapsulated: number } } } };
    assert.ok((st.daemon.kernelEncapsulation?.packets.decapsulated ?? 0) > 0, `B's kernel decapsulated A's packets: ${JSON.stringify(st.daemon.kernelEncapsulation)}`);
  }
});

// One host on each path. The kernel encapsulation's peer may decapsulate in user space (its daemon
// on the TUN path): what the kernel sends must be what such a peer takes. A TCP segment larger
// than the path (a GSO skb) goes to the daemon's TUN to be cut and encapsulated there (before, it
// left whole: 16–64 KB datagrams that crossed the veth, and no real link); a packet whose own
// checksum the kernel left to the device (never completed across a veth) is written into the peer's
// TUN as CHECKSUM_PARTIAL, not verified again, the outer UDP checksum having covered it (before, its
// TCP dropped every such packet: TcpInCsumErrors, and the stream stopped at the first retransmission). A's packets from P
// are lost for a while (A re-homes alone), then P fails both ways (both re-home).
for (const [aPath, bPath] of [['kernel', 'tun'], ['tun', 'kernel']] as const) {
  test(`one host on each path (A ${aPath}, B ${bPath}): a one-way failure, then a full re-homing; the stream ends intact`, { timeout: E2E_TIMEOUT_MS }, async (t) => {
    if (!needs(t, { root: true, commands: ['ip', 'knotd', 'kdig', 'nft', 'tc', CLANG, 'bpftool'] })) return;
    const lab = await freshLab(t);
    const s = await startLabShim6(lab, () => undefined, { extra: { dataPath: bPath }, extraA: { dataPath: aPath } });
    t.after(() => s.stop());
    const oneWay = async (): Promise<void> => {
      nsExec(lab.a, ['nft', '-f', '-'], { input: `table ip6 e2e_oneway {\n chain o { type filter hook output priority -300; oifname "${LAB_IF.P}" ip6 saddr ${LAB_ADDR.aP} drop; }\n}\n` });
      await waitLog(lab, 'a', (x) => x.msg === 'locator-pair-changed' && x.peerUlid === LAB_ADDR.bP, 30_000);
      await new Promise((r) => setTimeout(r, 600));
      nsExec(lab.a, ['nft', 'delete', 'table', 'ip6', 'e2e_oneway']);
    };
    const r = await runStream(lab, {
      to: LAB_B_NAME, resolver: s.resolverA, durationMs: 7000, rate: 2_500_000, graceMs: 20_000,
      actions: [{ atMs: 2000, run: oneWay }], failAtMs: 4500, failure: 'blackhole', link: 'P',
    });
    assert.equal(r.complete, true, 'the stream ended normally');
    assert.equal(r.bytes_verified, r.bytes_sent, 'every octet once and intact');
    const kernelHost = aPath === 'kernel' ? 'a' : 'b';
    const st = await controlRequest(labDaemonFiles(lab, kernelHost).control, 'status') as unknown as { daemon: { kernelEncapsulation?: { packets: Record<string, number> } } };
    const p = st.daemon.kernelEncapsulation?.packets ?? {};
    t.diagnostic(`${kernelHost.toUpperCase()}'s kernel encapsulation: ${JSON.stringify(p)}`);
    assert.ok((p.encapsulated ?? 0) + (p.toTun ?? 0) > 0, `${kernelHost.toUpperCase()}'s kernel encapsulated after its re-homing`);
    if (kernelHost === 'a') assert.ok((p.toTun ?? 0) > 0, 'A\'s large segments went to its TUN to be cut');
    // What A sent B and what B received agree (each packet counted once; docs/status.md `traffic`).
    // With B on the kernel path, A's daemon's datagrams (UDP GSO across the veth) reach B's socket
    // (`passedDatagrams`): B's engine counts them, and B's inbound counter counts them again as they
    // come out of its TUN (before B's driver left its own writes out of the kernel's share:
    // 35,586,032 octets received of 18,046,840 sent, 1.97 times). The kernel counts whole IPv6 packets,
    // the engine upper-layer octets (40 octets of 1,400 apart), and A's count includes what the
    // failures lost.
    const traffic = async (h: 'a' | 'b', peer: string) => (await controlRequest(labDaemonFiles(lab, h).control, 'status') as unknown as { engine: { contexts: Array<{ peerUlid: string; state: string; traffic: { bytesIn: number; bytesOut: number } }> } })
      .engine.contexts.find((c) => c.peerUlid === peer && c.state === 'ESTABLISHED')?.traffic;
    // The counters' last movements are read at the next readings: until B's figure stands still.
    let last = -1;
    await waitFor(async () => { const n = (await traffic('b', LAB_ADDR.aP))?.bytesIn ?? -1; const still = n === last; last = n; return still && n > 0; }, 'B\'s received octets settled', DEADLINE_MS, 500);
    const sentA = (await traffic('a', LAB_ADDR.bP))?.bytesOut ?? 0, receivedB = last;
    t.diagnostic(`A sent ${sentA} octets, B received ${receivedB} (${(receivedB / sentA).toFixed(3)}); stream ${r.bytes_sent}`);
    if (bPath === 'kernel') {
      assert.ok(receivedB >= 0.9 * sentA && receivedB <= 1.1 * sentA, `A sent ${sentA} octets, B received ${receivedB}`);
      return;
    }
    // B on the TUN path counts only what crosses its daemon: A's packets from A's re-homing on
    // (encapsulated), not those A sent natively on the ULID pair before, which B's kernel took
    // without its daemon (no counters on the TUN path; docs/dataplane.md "Not done / limits").
    // Never more than A sent.
    assert.ok(receivedB <= 1.1 * sentA, `A sent ${sentA} octets, B (TUN path) received ${receivedB}`);
  });
}
