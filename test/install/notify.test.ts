// The service manager hears from shim6 (shim6.service is Type=notify): READY=1
// once the stub and the data plane are up, RELOADING=1 … READY=1 around a
// SIGHUP, STOPPING=1 at SIGTERM — sent by the built command through the addon
// to a real AF_UNIX datagram socket, as systemd's $NOTIFY_SOCKET. The daemon
// runs with only the unit's capabilities (setpriv bounding set) and only its system calls (its
// SystemCallFilter= as a seccomp filter: test/helpers/syscall-filter.ts) and devices (its
// DevicePolicy= as a devices cgroup: test/helpers/device-policy.ts). Deadlines are
// generous and nothing asserts on time: CI runs on a loaded machine.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { CLANG, needs } from '../helpers/prereq.ts';
import { builtShim6 } from '../helpers/cli.ts';
import { hostWithLink } from '../helpers/netns.ts';
import { BUILT_BIN, requireBuilt, spawnBuilt, tmpdir, track, waitFor } from './built.ts';
import { NotifySocket } from './notify-socket.ts';
import { buildSyscallFilterExec, expandSyscalls, unitSyscallFilter } from '../helpers/syscall-filter.ts';
import { DEVICES_CGROUP, deviceCgroup, unitDevicePolicy } from '../helpers/device-policy.ts';
import { UNIT_TEMPLATE } from '../../shim/daemon/service-unit.ts';

const UNIT = readFileSync(UNIT_TEMPLATE, 'utf8');
/** The capabilities shim6.service grants (its CapabilityBoundingSet), as setpriv names them. */
const UNIT_CAPS = (/^CapabilityBoundingSet=(.*)$/m.exec(UNIT)?.[1] ?? '').trim().split(/\s+/).map((c) => c.replace(/^CAP_/, '').toLowerCase());

for (const form of ['path', 'abstract'] as const) {
  test(`shim6 resolver: READY=1 when the stub answers, STOPPING=1 at SIGTERM (${form} socket)`, { timeout: 120_000 }, async (t) => {
    if (!needs(t, { commands: ['python3'] })) return;
    requireBuilt();
    const dir = tmpdir(t, 'notify-');
    const sockPath = form === 'path' ? path.join(dir, 'notify.sock') : `@shim6-test-${process.pid}-${Date.now()}`;
    const manager = await NotifySocket.open(t, sockPath);
    const p = spawnBuilt(t, ['resolver', '--listen', '127.0.0.1:0', '--upstream', '127.0.0.1:9', '--no-engine', '--socket', path.join(dir, 'control.sock')],
      { ...process.env, NOTIFY_SOCKET: sockPath });
    const ready = await manager.waitFor('READY=1', p);
    assert.ok(p.out().includes('resolver ready'), 'READY=1 comes after the stub is up');
    assert.match(ready.find((l) => l.startsWith('STATUS=')) ?? '', /^STATUS=ready: stub 127\.0\.0\.1:\d+/);
    p.child.kill('SIGTERM');
    await manager.waitFor('STOPPING=1', p);
    assert.equal(await p.exited(), 0, p.out());
  });
}

test('without NOTIFY_SOCKET nothing is sent and nothing fails', { timeout: 120_000 }, async (t) => {
  requireBuilt();
  const dir = tmpdir(t, 'notify-');
  const env = { ...process.env };
  delete env.NOTIFY_SOCKET;
  const p = spawnBuilt(t, ['resolver', '--listen', '127.0.0.1:0', '--upstream', '127.0.0.1:9', '--no-engine', '--socket', path.join(dir, 'control.sock')], env);
  await waitFor(() => p.out().includes('resolver ready') || p.status() !== undefined, 'resolver ready');
  p.child.kill('SIGTERM');
  assert.equal(await p.exited(), 0, p.out());
  assert.doesNotMatch(p.out(), /notification/);
});

test('shim6 daemon with only the unit\'s capabilities, system calls, devices and read-only /sys: READY=1, the kernel encapsulation loaded, RELOADING=1 and READY=1 on SIGHUP, STOPPING=1 on SIGTERM', { timeout: 180_000 }, async (t) => {
  if (!needs(t, { root: true, commands: ['ip', 'python3', 'setpriv', 'mount', 'tc', 'bpftool', 'cc', 'systemd-analyze', CLANG], paths: [DEVICES_CGROUP] })) return;
  assert.ok(UNIT_CAPS.includes('bpf') && UNIT_CAPS.includes('net_admin'), `the unit's capabilities: ${UNIT_CAPS.join(' ')}`);
  requireBuilt();
  const dir = tmpdir(t, 'notify-');
  const unitFilter = unitSyscallFilter(UNIT);
  assert.ok(unitFilter.filter.length > 0 && unitFilter.errno === 'EPERM', `the unit's filter: ${JSON.stringify(unitFilter)}`);
  const allowed = expandSyscalls(unitFilter.filter);
  const filtered = buildSyscallFilterExec(dir, allowed, unitFilter.errno);
  // The filter filters: without bpf in the list, bpftool's first bpf() fails.
  const noBpf = buildSyscallFilterExec(tmpdir(t, 'no-bpf-'), allowed.filter((n) => n !== 'bpf'), unitFilter.errno);
  const control = spawnSync(noBpf, ['bpftool', 'prog', 'show'], { encoding: 'utf8' });
  assert.notEqual(control.status, 0, `bpftool without bpf(): ${control.stdout}`);
  assert.equal(spawnSync(filtered, ['bpftool', 'prog', 'show'], { encoding: 'utf8' }).status, 0, 'bpftool with the unit\'s list');
  // The devices it may open: the unit's DevicePolicy=closed and DeviceAllow=.
  const devices = unitDevicePolicy(UNIT);
  assert.deepEqual(devices, { policy: 'closed', allow: [{ path: '/dev/net/tun', access: 'rw' }] });
  const cgroup = deviceCgroup(`shim6-test-${process.pid}-${Date.now()}`, devices, (rm) => t.after(rm));
  const inCgroup = (argv: string): number | null => spawnSync('sh', ['-c', `echo $$ > ${cgroup} && ${argv}`]).status;
  assert.notEqual(inCgroup('exec 3</dev/kmsg'), 0, 'the cgroup denies another device');
  assert.equal(inCgroup('exec 3<>/dev/net/tun 4</dev/urandom'), 0, 'the cgroup allows the TUN and the pseudo devices');
  const { net, ns } = hostWithLink(t, 'ntf');
  const config = path.join(dir, 'shim6.json');
  writeFileSync(config, JSON.stringify({
    listen: ['127.0.0.153:53'], upstreams: ['127.0.0.1:9'], interfaces: ['ntf0'], tun: { name: 'ntftun' },
    cacheFile: path.join(dir, 'caches.json'), controlSocket: path.join(dir, 'control.sock'), log: { level: 'info', format: 'json' },
  }));
  // Abstract sockets belong to a network namespace; a path reaches the daemon's.
  const manager = await NotifySocket.open(t, path.join(dir, 'notify.sock'));
  const bounding = `-all,${UNIT_CAPS.map((c) => `+${c}`).join(',')}`;
  // As the unit runs it: /sys read-only (ProtectKernelTunables) but for the bpffs systemd mounted at
  // boot (ReadWritePaths=-/sys/fs/bpf). `ip netns exec` gives the command a mount namespace and a
  // /sys of its own, so nothing here reaches the host's.
  const sys = 'mount --bind /sys /sys && mount -o remount,bind,ro /sys && mount -t bpf -o mode=0700 bpf /sys/fs/bpf && exec "$@"';
  // Into the devices cgroup first: inside `ip netns exec` /sys is the namespace's, without the cgroup mounts.
  const p = track(t, spawn('sh', ['-c', `echo $$ > ${cgroup} && exec "$@"`, 'sh', 'ip', 'netns', 'exec', ns.name, 'sh', '-c', sys, 'sh', 'setpriv', '--bounding-set', bounding, '--',
    filtered, process.execPath, BUILT_BIN, 'daemon', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NOTIFY_SOCKET: manager.path } }));
  const ready = await manager.waitFor('READY=1', p);
  assert.ok(p.out().includes('daemon ready'), `READY=1 comes after "daemon ready": ${p.out()}`);
  assert.match(ready.find((l) => l.startsWith('STATUS=')) ?? '', /stub 127\.0\.0\.153:53, TUN ntftun, ULID 2001:db8:5533::1/);
  const caps = net.run(ns, ['grep', '^CapBnd', `/proc/${p.child.pid}/status`]).stdout; // sh, `ip netns exec`, sh and setpriv exec: same pid
  t.diagnostic(`bounding set of the daemon: ${caps.trim()}`);
  // The re-homed contexts' fast path loaded and attached with these capabilities alone.
  const status = builtShim6(['status', '--json', '--socket', path.join(dir, 'control.sock')]);
  assert.equal(status.status, 0, status.stderr);
  const encap = (JSON.parse(status.stdout) as { daemon?: { kernelEncapsulation?: unknown } }).daemon?.kernelEncapsulation;
  assert.ok(typeof encap === 'object' && encap !== null && (encap as { links: string[] }).links.includes('ntf0'), `kernel encapsulation: ${JSON.stringify(encap)}; ${p.out()}`);
  assert.doesNotMatch(p.out(), /kernel encapsulation unavailable/);

  p.child.kill('SIGHUP');
  const reloading = await manager.waitFor('RELOADING=1', p);
  assert.ok(reloading.some((l) => /^MONOTONIC_USEC=\d+$/.test(l)), `RELOADING=1 carries MONOTONIC_USEC: ${reloading.join(' ')}`);
  await manager.waitFor('READY=1', p, 2);
  const order = manager.messages().map((m) => m[0]);
  assert.deepEqual(order, ['READY=1', 'RELOADING=1', 'READY=1']);

  p.child.kill('SIGTERM');
  await manager.waitFor('STOPPING=1', p);
  assert.equal(await p.exited(), 0, p.out());
  // On the kernel path (dataPath auto, the default) its nftables counters go too.
  assert.match(p.out(), /stopped: routes, rules(, kernel path counters)? and TUN removed/, p.out());
});
