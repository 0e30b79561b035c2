// What a daemon leaves on the host when it is killed (SIGKILL: no teardown), and what the next start
// and a clean stop make of it: every process, route and device is either gone or taken over, and
// `shim6 status` says what is there.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { CLANG, needs } from '../helpers/prereq.ts';
import { hostWithLink, type Netns } from '../helpers/netns.ts';
import { waitFor } from '../helpers/wait.ts';
import { LAB_ADDR, LAB_IF, nsExec } from '../../lab/topology.ts';
import { LAB_B_NAME } from '../../lab/dns.ts';
import { runStream } from '../../lab/run.ts';
import { labDaemonFiles } from '../../lab/daemons.ts';
import { controlRequest } from '../../shim/daemon/control/client.ts';
import { daemons, E2E_TIMEOUT_MS, freshLab, STREAM_RATE, waitLog } from './fixture.ts';
import { fileURLToPath } from 'node:url';

const fromSources = import.meta.url.endsWith('.ts');
const moduleUrl = (m: string): string => fileURLToPath(new URL(`../../${m}.${fromSources ? 'ts' : 'js'}`, import.meta.url));

/** The processes running in `ns` (`ip netns pids`, run from outside it: it would count itself). */
function pidsIn(ns: Netns): number[] {
  return String(spawnSync('ip', ['netns', 'pids', ns.name], { encoding: 'utf8' }).stdout).split(/\s+/).filter(Boolean).map(Number);
}

/** What runs in `ns`, pid and command line each (empty when nothing does). */
function runningIn(ns: Netns): string[] {
  const cmdline = (p: number): string => { try { return readFileSync(`/proc/${p}/cmdline`, 'utf8').replace(/\0/g, ' ').trim(); } catch { return '(gone)'; } };
  return pidsIn(ns).map((p) => `${p} ${cmdline(p)}`);
}

/** Wait until nothing runs in `ns`; fails naming what still does. */
async function nothingRunsIn(ns: Netns, what: string): Promise<void> {
  await waitFor(() => pidsIn(ns).length === 0, what).catch(() => undefined);
  assert.deepEqual(runningIn(ns), [], what);
}

test('the locator watcher\'s `ip monitor` dies with its process (SIGKILL) on a host where no address or link changes afterwards', { timeout: 120_000 }, async (t) => {
  if (!needs(t, { root: true, commands: ['ip'] })) return;
  // A quiet namespace: nothing makes an orphaned `ip monitor` write into its dead parent's socket
  // and die of SIGPIPE by chance (in the daemon, the TUN's removal did so, a second or more later).
  const { net, ns } = hostWithLink(t, 'lfw');
  const code = `const m = await import(${JSON.stringify(moduleUrl('shim/daemon/locators'))});` +
    'new m.LocatorWatcher([], () => {}).start(); console.log("watching"); setInterval(() => {}, 1000);';
  const p = net.spawn(ns, [process.execPath, ...(fromSources ? ['--import', 'tsx'] : []), '--input-type=module', '-e', code]);
  let out = '';
  p.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  await waitFor(() => out.includes('watching') && pidsIn(ns).length === 2, 'the watcher and its `ip monitor`');
  p.kill('SIGKILL');
  await nothingRunsIn(ns, 'the `ip monitor` gone with the process that started it');
});

// The kernel encapsulation routes a re-homed context's peer ULID via a physical link (table 5533, not
// the TUN), and a route through a link outlives the process. A start removed the killed daemon's
// rules and tc programs but kept its table 5533: the route sent this host's packets to the peer's
// ULID unencapsulated out of the other link (a network's ingress filter drops them: their source is
// our ULID, of the failed link's prefix), and no `shim6 status` listed it.
test('a daemon killed while a context was on the kernel encapsulation left its peer ULID routed via a link; the next start removes that route, and status and table agree', { timeout: E2E_TIMEOUT_MS }, async (t) => {
  if (!needs(t, { root: true, commands: ['ip', 'knotd', 'kdig', 'nft', 'tc', CLANG, 'bpftool'] })) return;
  const lab = await freshLab(t);
  const s = await daemons(t, lab, {}, { dataPath: 'kernel' });
  const table = (): string => nsExec(lab.a, ['ip', '-6', 'route', 'show', 'table', '5533']).stdout.trim();
  const r = await runStream(lab, { to: LAB_B_NAME, resolver: s.resolverA, durationMs: 3000, failAtMs: 1000, failure: 'blackhole', rate: STREAM_RATE, graceMs: 20_000 });
  assert.equal(r.bytes_verified, r.bytes_sent, 'the stream re-homed onto Q');
  await waitLog(lab, 'a', (x) => x.msg === 'context on the kernel encapsulation' && x.peer === LAB_ADDR.bP);
  await waitFor(() => new RegExp(`^${LAB_ADDR.bP} via .* dev ${LAB_IF.Q} `, 'm').test(table()), `B's ULID routed via ${LAB_IF.Q} in A's table 5533`);
  await s.crash('a');
  assert.match(table(), new RegExp(`^${LAB_ADDR.bP} via `, 'm'), 'the killed daemon\'s route is still there');
  // Nothing will route B again: B stops, A's cache file is lost.
  await s.stopHost('b');
  rmSync(labDaemonFiles(lab, 'a').cache, { force: true });
  await s.start('a');
  const st = await controlRequest(labDaemonFiles(lab, 'a').control, 'status') as unknown as { daemon: { routed: string[] } };
  assert.deepEqual(st.daemon.routed, [], 'the new daemon routes nothing');
  assert.equal(table(), '', 'and table 5533 holds nothing either');
});
