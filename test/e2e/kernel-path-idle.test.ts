// The kernel path while nothing moves (docs/dataplane.md "Idle"): with the kernel's tripwire the
// daemon stops reading its counters once the connection idles (its reading count in `shim6 status`
// stops growing), and a failure of link P during the quiet is still detected at the first packets
// after it (the tripwire wakes the daemon, its reading starts REAP's Send Timer) and the stream
// re-homes. Without a tripwire (its log group taken by another program) the daemon says so once and
// reads on its fixed clock, idle or not.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { needs } from '../helpers/prereq.ts';
import { crossesLinkP, LAB_ADDR } from '../../lab/topology.ts';
import { LAB_B_NAME } from '../../lab/dns.ts';
import { runStream } from '../../lab/run.ts';
import { labDaemonFiles } from '../../lab/daemons.ts';
import { controlRequest } from '../../shim/daemon/control/client.ts';
import { ADDON_PATH } from '../../native/addon.ts';
import { daemons, E2E_TIMEOUT_MS, freshLab, log, waitLog, STREAM_RATE } from './fixture.ts';
import { DEADLINE_MS, waitFor } from '../helpers/wait.ts';
import type { Lab } from '../../lab/topology.ts';

interface KernelPathStatus { polling: string; asleep: boolean; readings: number; wakeups: number; sleeps: number }
interface Status { daemon: { kernelPath?: KernelPathStatus }; engine: { contexts: Array<{ peerUlid: string; path?: string; pair: { local: string; peer: string } }> } }

const status = async (lab: Lab): Promise<Status> => await controlRequest(labDaemonFiles(lab, 'a').control, 'status') as unknown as Status;
const kernelPath = async (lab: Lab): Promise<KernelPathStatus> => {
  const k = (await status(lab)).daemon.kernelPath;
  assert.ok(k !== undefined, 'status has daemon.kernelPath');
  return k;
};

/** Whether A's reading count stays the same over a second (sampled twice). */
async function readingsStill(lab: Lab): Promise<boolean> {
  const a = (await kernelPath(lab)).readings;
  await new Promise((r) => setTimeout(r, 1000));
  return (await kernelPath(lab)).readings === a;
}

test('dataPath kernel, idle: A stops reading its counters while the stream pauses; P black-holed in the quiet is detected at the first packets after it, and the stream re-homes intact', { timeout: E2E_TIMEOUT_MS }, async (t) => {
  if (!needs(t, { root: true, commands: ['ip', 'knotd', 'kdig', 'nft'] })) return;
  const lab = await freshLab(t);
  const s = await daemons(t, lab, {}, { dataPath: 'kernel' });
  let idle: { readings: number; wakeups: number } | undefined;
  // 1.5 s of data, 9 s of silence (P is black-holed in it, once A's readings have stopped), data again.
  const run = runStream(lab, {
    to: LAB_B_NAME, resolver: s.resolverA, durationMs: 16_000, pause: { atMs: 1500, ms: 9000 }, failAtMs: 2500, failure: 'blackhole', rate: STREAM_RATE, graceMs: 30_000,
    failGate: async () => {
      await waitFor(async () => (await kernelPath(lab)).asleep, 'A\'s readings stopped while the stream pauses', DEADLINE_MS, 100);
      await waitFor(() => readingsStill(lab), 'A\'s reading count not growing for a second', DEADLINE_MS, 0);
      const st = await status(lab);
      const c = st.engine.contexts.find((x) => x.peerUlid === LAB_ADDR.bP);
      t.diagnostic(`at the failure: A's context ${JSON.stringify(c?.pair)} path ${String(c?.path)}, ${JSON.stringify(st.daemon.kernelPath)}`);
      idle = st.daemon.kernelPath!;
    },
  });
  const r = await run;
  assert.equal(r.complete, true, 'the stream ended normally');
  assert.equal(r.bytes_verified, r.bytes_sent, 'every octet once and intact');
  assert.equal(r.recovered, true, 'data flowed again after P was black-holed');
  assert.ok(idle !== undefined && r.failAt !== undefined, 'the failure came after A\'s readings had stopped');
  // A's packets after the quiet are lost on P: only a reading tells REAP they went (its Send Timer),
  // and asleep only the tripwire brings one. A re-homed off P after the failure.
  const moves = log(lab, 'a').filter((x) => x.msg === 'locator-pair-changed' && x.peerUlid === LAB_ADDR.bP && Date.parse(x.ts) >= r.failAt!);
  const last = moves.at(-1)?.new as { local: string; peer: string } | undefined;
  assert.ok(last !== undefined && !crossesLinkP(last), `A re-homed off link P after the failure: ${JSON.stringify(moves.map((x) => x.new))}`);
  const after = await kernelPath(lab);
  t.diagnostic(`A's kernel path at the end: ${JSON.stringify(after)}`);
  assert.ok(after.wakeups > idle.wakeups, 'the tripwire woke A after the quiet');
});

test('dataPath kernel without a tripwire (its log group taken by another program): said once, and the counters are read on the fixed clock while the context idles', { timeout: E2E_TIMEOUT_MS }, async (t) => {
  if (!needs(t, { root: true, commands: ['ip', 'knotd', 'kdig', 'nft'] })) return;
  const lab = await freshLab(t);
  // Another reader of group 5534 in A's namespace, before A's daemon starts: its NFLOG bind is refused (EBUSY).
  const holder = spawn('ip', ['netns', 'exec', lab.a, process.execPath, '-e',
    `const a = require(${JSON.stringify(ADDON_PATH)}); a.nflogOpen(5534, 65536); console.log('bound'); setInterval(() => {}, 1e6);`], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => { holder.kill(); });
  await new Promise<void>((resolve, reject) => {
    createInterface({ input: holder.stdout! }).on('line', (l) => { if (l === 'bound') resolve(); });
    holder.on('exit', (code) => reject(new Error(`the group's holder exited (${String(code)})`)));
  });
  const s = await daemons(t, lab, {}, { dataPath: 'kernel' });
  const r = await runStream(lab, { to: LAB_B_NAME, resolver: s.resolverA, durationMs: 1500, failAtMs: 1000, failure: 'none', rate: STREAM_RATE, graceMs: 20_000 });
  assert.equal(r.complete, true, 'the stream ended normally');
  await waitLog(lab, 'a', (x) => x.msg.startsWith('kernel path: no wake-up from the kernel'));
  assert.equal(log(lab, 'a').filter((x) => x.msg.startsWith('kernel path: no wake-up from the kernel')).length, 1, 'said once');
  await waitFor(async () => (await status(lab)).engine.contexts.some((c) => c.peerUlid === LAB_ADDR.bP && (c.path === 'kernel' || c.path === 'encap')), 'A\'s context off the TUN', DEADLINE_MS, 200);
  const k = await kernelPath(lab);
  assert.equal(k.polling, 'fixed');
  // The stream is over: nothing moves, and still the readings go on.
  assert.equal(await readingsStill(lab), false, 'A reads its counters although the context idles');
  assert.equal((await kernelPath(lab)).asleep, false);
});
