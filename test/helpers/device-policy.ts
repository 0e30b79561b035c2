/**
 * A unit's `DevicePolicy=` and `DeviceAllow=` outside systemd, as a cgroup of the (v1) devices
 * controller: everything denied, then the pseudo devices `closed` allows (systemd.resource-control(5):
 * /dev/null, /dev/zero, /dev/full, /dev/random, /dev/urandom) and each DeviceAllow= device with its
 * access. A process moved into the cgroup (and all it starts) can open no other device node.
 *
 * Only `DevicePolicy=closed` with device paths in DeviceAllow= is read: that is all shim6.service uses.
 */
import { existsSync, mkdirSync, readFileSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** Where the v1 devices controller is mounted (systemd's hybrid and legacy hierarchies). */
export const DEVICES_CGROUP = '/sys/fs/cgroup/devices';

const CLOSED_PSEUDO_DEVICES = ['/dev/null', '/dev/zero', '/dev/full', '/dev/random', '/dev/urandom'];

/** The unit's DevicePolicy= and its DeviceAllow= entries (path, access). */
export function unitDevicePolicy(unitText: string): { policy: string | undefined; allow: Array<{ path: string; access: string }> } {
  const policy = /^DevicePolicy=(\S+)\s*$/m.exec(unitText)?.[1];
  const allow = [...unitText.matchAll(/^DeviceAllow=(\S+)(?:\s+([rwm]+))?\s*$/gm)].map((m) => ({ path: m[1]!, access: m[2] ?? 'rwm' }));
  return { policy, allow };
}

/** `c MAJOR:MINOR access` for a character device node. */
function rule(node: string, access: string): string {
  const st = statSync(node);
  if (!st.isCharacterDevice()) throw new Error(`${node} is not a character device`);
  const rdev = st.rdev;
  // glibc's gnu_dev_major/minor.
  const major = ((rdev >> 8) & 0xfff) | (Math.floor(rdev / 2 ** 32) & ~0xfff);
  const minor = (rdev & 0xff) | ((rdev >> 12) & ~0xff);
  return `c ${major}:${minor} ${access}`;
}

/**
 * A devices cgroup of its own for the unit's policy; returns its `cgroup.procs` path (write a pid
 * there to move a process in). `after` gets its removal: whatever still runs in it (only what the
 * test moved there) is killed first, so the removal neither waits on a hook that kills it later
 * nor leaves a process behind; it never throws.
 */
export function deviceCgroup(name: string, unit: ReturnType<typeof unitDevicePolicy>, after: (fn: () => Promise<void>) => void): string {
  if (unit.policy !== 'closed') throw new Error(`DevicePolicy=${unit.policy}: only closed is supported here`);
  const dir = path.join(DEVICES_CGROUP, name);
  mkdirSync(dir);
  const procs = path.join(dir, 'cgroup.procs');
  after(async () => {
    for (let i = 0; i < 200 && existsSync(dir); i++) {
      const pids = readFileSync(procs, 'utf8').split('\n').filter(Boolean).map(Number);
      for (const pid of pids) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
      try { rmdirSync(dir); } catch { await new Promise((r) => setTimeout(r, 50)); }
    }
  });
  writeFileSync(path.join(dir, 'devices.deny'), 'a');
  for (const node of CLOSED_PSEUDO_DEVICES) writeFileSync(path.join(dir, 'devices.allow'), rule(node, 'rwm'));
  for (const a of unit.allow) writeFileSync(path.join(dir, 'devices.allow'), rule(a.path, a.access));
  return procs;
}
