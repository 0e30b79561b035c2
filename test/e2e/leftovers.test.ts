// What a daemon leaves on the host when it is killed (SIGKILL: no teardown), and what the next start
// and a clean stop make of it: every process, route and device is either gone or taken over, and
// `shim6 status` says what is there.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { needs } from '../helpers/prereq.ts';
import { hostWithLink, type Netns } from '../helpers/netns.ts';
import { waitFor } from '../helpers/wait.ts';
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
