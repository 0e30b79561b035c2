// The product's clock counts the time the machine was suspended (shim/clock.ts): CLOCK_BOOTTIME,
// not CLOCK_MONOTONIC, which stands still over a suspend (a laptop that slept ten hours woke with
// every TTL, hold and context lifetime where it was when the lid closed). This VM cannot be
// suspended; a time namespace can show a process the clocks of a machine that was: its
// CLOCK_BOOTTIME ten hours ahead of CLOCK_MONOTONIC (`unshare --time --boottime`), /proc/uptime
// (boottime-based) with it. The driver's clock and the shared one must follow /proc/uptime there.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { needs } from '../helpers/prereq.ts';
import { TREE_LOADER, treeModule } from '../helpers/tree.ts';
import { bootClock, clockSource } from '../../shim/clock.ts';

/** What a child in a time namespace whose boottime is `slept` s ahead of its monotonic clock reads. */
function readClocksAfterSleep(slept: number): { driver: number; shared: number; hrtime: number; uptime: [number, number]; source: { source: string } } {
  const child = `
import { readFileSync } from 'node:fs';
const [driverModule, udpModule, clockModule] = process.argv.slice(1);
const { bootClock, clockSource } = await import(clockModule);
const { EngineDriver } = await import(driverModule);
const { MemoryNetwork } = await import(udpModule);
const engine = { handleDatagram: () => ({ kind: 'drop', reason: 'x' }), encapsulate: () => ({ kind: 'no-context' }), handleTimeout() {}, pollTransmit() {}, pollTimeout() {}, pollEvent() {} };
const driver = new EngineDriver({ engine, transport: new MemoryNetwork().transport(5533) });
const uptime = () => Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]) * 1000;
const before = uptime();
const out = { driver: driver.now(), shared: bootClock(), hrtime: Number(process.hrtime.bigint() / 1000n) / 1000, source: clockSource() };
const after = uptime();
out.uptime = [before, after];
await driver.close();
console.log(JSON.stringify(out));
`;
  const r = spawnSync('unshare', ['--time', '--boottime', String(slept), process.execPath, ...TREE_LOADER, '--input-type=module', '-e', child,
    treeModule('shim/dataplane/engine-driver.ts'), treeModule('shim/dataplane/udp.ts'), treeModule('shim/clock.ts')], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, `child failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as ReturnType<typeof readClocksAfterSleep>;
}

test('after a suspend (CLOCK_BOOTTIME ten hours ahead of CLOCK_MONOTONIC, in a time namespace) the engine driver\'s clock has moved on by those ten hours: it reads CLOCK_BOOTTIME, as /proc/uptime', (t) => {
  if (!needs(t, { root: true, commands: ['unshare'] })) return;
  const SLEPT_S = 10 * 3600;
  const c = readClocksAfterSleep(SLEPT_S);
  t.diagnostic(JSON.stringify(c));
  // /proc/uptime counts in 10 ms steps, read before and after.
  assert.ok(c.uptime[0] - 10 <= c.driver && c.driver <= c.uptime[1] + 10, `the driver's clock ${c.driver} is /proc/uptime's ${c.uptime.join('–')}`);
  assert.ok(c.driver - c.hrtime >= SLEPT_S * 1000 - 1000, 'the ten hours asleep count');
  // The one clock the resolver, its caches and the daemon's timers read: the same.
  assert.deepEqual(c.source, { source: 'boottime' });
  assert.ok(c.uptime[0] - 10 <= c.shared && c.shared <= c.uptime[1] + 10, `the shared clock ${c.shared} is /proc/uptime's ${c.uptime.join('–')}`);
});

test('the clock is read through the addon here, not the monotonic fallback', () => {
  // Without the addon it falls back to performance.now(), which a suspend stops (docs/operations.md).
  assert.deepEqual(clockSource(), { source: 'boottime' });
  const a = bootClock();
  const b = bootClock();
  assert.ok(b >= a, 'monotonic');
});
