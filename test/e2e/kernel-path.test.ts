// The daemon's data path choice end to end (issue 20): with `dataPath: kernel` a context on its ULID
// pair carries the stream without the TUN and `shim6 status` says `path: kernel`; with `dataPath: tun`
// the same stream crosses the TUN and status says `path: tun`; a stopped daemon leaves no nftables table.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { needs } from '../helpers/prereq.ts';
import { LAB_ADDR, nsExec } from '../../lab/topology.ts';
import { LAB_B_NAME } from '../../lab/dns.ts';
import { runStream } from '../../lab/run.ts';
import { labDaemonFiles } from '../../lab/daemons.ts';
import { controlRequest } from '../../shim/daemon/control/client.ts';
import { KERNEL_TABLE } from '../../shim/dataplane/kernel-path.ts';
import { daemons, E2E_TIMEOUT_MS, freshLab } from './fixture.ts';
import { DEADLINE_MS, waitFor } from '../helpers/wait.ts';

interface Status { daemon: { dataPath: string; stats: { tunIn: number; kernelTraffic: number } }; engine: { contexts: Array<{ peerUlid: string; path?: string }> } }

for (const dataPath of ['kernel', 'tun'] as const) {
  test(`dataPath: ${dataPath}: the stream to B's ULID takes the ${dataPath} path, and status says so`, { timeout: E2E_TIMEOUT_MS }, async (t) => {
    if (!needs(t, { root: true, commands: ['ip', 'knotd', 'kdig', 'nft'] })) return;
    const lab = await freshLab(t);
    const s = await daemons(t, lab, {}, { dataPath });
    const r = await runStream(lab, { to: LAB_B_NAME, resolver: s.resolverA, durationMs: 2000, failAtMs: 1000, failure: 'none', rate: 2_500_000, graceMs: 20_000 });
    assert.equal(r.complete, true, 'the stream ended normally');
    assert.equal(r.bytes_verified, r.bytes_sent);
    const status = async () => await controlRequest(labDaemonFiles(lab, 'a').control, 'status') as unknown as Status;
    const pathOf = (st: Status) => st.engine.contexts.find((c) => c.peerUlid === LAB_ADDR.bP)?.path;
    // On a busy host the fast profile's 150 ms Send Timeout can explore when nothing failed, which
    // routes the context through the TUN until REAP is Operational again: wait for that.
    await waitFor(async () => pathOf(await status()) === dataPath, `status: path ${dataPath}`, DEADLINE_MS, 200);
    const st = await status();
    assert.equal(st.daemon.dataPath, dataPath);
    const packets = r.bytes_sent / 1400;
    if (dataPath === 'kernel') {
      // The first packets wait in the TUN during the exchange (the hold), and a false exploration sends
      // some through it; most of the stream does not cross it.
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
