/**
 * The kernel path (docs/dataplane.md "Kernel path"): while a context's
 * locator pair is its ULID pair, the application's packets take the kernel's
 * own route (no TUN, no copy to user space); two tc programs
 * (native/bpf/shim6_tc.bpf.c, clsact egress and ingress of every interface
 * carrying a locator) count them per context in a BPF map, which the driver
 * reads on its REAP clock.
 *
 * Loading, by measurement: clang builds the object once (at install, else
 * at the first start, cached by the source's hash); bpftool loads it and pins
 * programs and maps in a bpffs mounted on a private folder for the daemon's
 * life (≈ 10 ms); tc attaches the pinned programs; the map is read with raw
 * bpf(2) calls from the addon (no libbpf in the addon, no tool per reading).
 *
 * Nothing is left behind: `close()` deletes our filters (pref 5533, names
 * shim6_egress / shim6_ingress), the clsact qdiscs we added and the mount;
 * `open()` first removes such filters and mounts a crashed daemon left.
 *
 * Owns: the programs, the map, the bpffs mount. Must not know: Shim6, the
 * engine (the driver turns counters into engine inputs).
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EnvironmentError } from '../errors.ts';
import { packageRoot } from '../runtime-paths.ts';
import { loadAddon, type NativeAddon } from '../../native/addon.ts';
import { parseIpv6, type Ipv6 } from '../wire/ipv6.ts';

/** The BPF source, in the sources and in an installed package alike. */
export const BPF_SOURCE = path.join(packageRoot, 'native/bpf/shim6_tc.bpf.c');
/** tc filter preference of our programs (what crash recovery looks for, with their names). */
export const TC_PREF = 5533;
const PROGS = { egress: 'shim6_egress', ingress: 'shim6_ingress' } as const;
/** Prefix of the private bpffs mount points (in the temporary folder). */
const MOUNT_PREFIX = 'shim6bpf-';

/** Packets of one context the kernel carried so far (cumulative). */
export interface KernelCounters {
  outPackets: bigint;
  inPackets: bigint;
}

/** What the driver needs of the kernel path (TcKernelPath; tests use a double). */
export interface KernelPathHook {
  /** Start counting the context's packets; false when the kernel refused (the driver keeps the TUN path). */
  watch(localUlid: Ipv6, peerUlid: Ipv6): boolean;
  /** Stop counting (idempotent). */
  unwatch(localUlid: Ipv6, peerUlid: Ipv6): void;
  /** The counters, or undefined when the context is not watched. */
  read(localUlid: Ipv6, peerUlid: Ipv6): KernelCounters | undefined;
}

export interface KernelPathOptions {
  /** Interfaces to attach to (those carrying local locators). */
  interfaces: readonly string[];
  /** The daemon's UDP port: its datagrams are not the application's packets. */
  port: number;
  /** A compiled object to use instead of building (tests). */
  object?: string;
}

/** The object for this source: built at install into native/build, else built now into a cache (clang). */
export function bpfObject(): string {
  if (!existsSync(BPF_SOURCE)) throw new EnvironmentError('EBPF', `the BPF source is missing (${BPF_SOURCE})`);
  const hash = createHash('sha256').update(readFileSync(BPF_SOURCE)).digest('hex').slice(0, 16);
  const name = `shim6_tc-${hash}.bpf.o`;
  const built = path.join(packageRoot, 'native/build', name);
  if (existsSync(built)) return built;
  const cacheDir = process.env.SHIM6_BPF_CACHE ?? path.join(os.tmpdir(), 'shim6-bpf');
  const cached = path.join(cacheDir, name);
  if (existsSync(cached)) return cached;
  mkdirSync(cacheDir, { recursive: true, mode: 0o700 });
  compileBpf(cached);
  return cached;
}

/** clang -target bpf of BPF_SOURCE into `out` (written whole, then renamed); EnvironmentError EBPF when it cannot. */
export function compileBpf(out: string): void {
  const tmp = `${out}.${process.pid}.tmp`;
  const r = spawnSync('clang', ['-O2', '-g', '-target', 'bpf', `-I/usr/include/${os.machine() === 'x86_64' ? 'x86_64' : os.machine()}-linux-gnu`,
    '-Wall', '-c', BPF_SOURCE, '-o', tmp], { encoding: 'utf8', timeout: 60_000 });
  if (r.error || r.status !== 0) {
    throw new EnvironmentError('EBPF', `cannot build the BPF program (clang${r.error ? `: ${r.error.message}` : `: ${String(r.stderr).trim().split('\n')[0]}`})`);
  }
  renameSync(tmp, out);
}

function run(cmd: string, args: readonly string[]): { ok: boolean; out: string; err: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 10_000 });
  return { ok: !r.error && r.status === 0, out: String(r.stdout ?? ''), err: String(r.stderr ?? r.error?.message ?? '').trim() };
}

/** Our bpffs mounts left by a daemon that died (this mount namespace's). */
function staleMounts(): string[] {
  let text = '';
  try { text = readFileSync('/proc/self/mountinfo', 'utf8'); } catch { return []; }
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    const at = f[4], sep = f.indexOf('-');
    if (at !== undefined && sep > 0 && f[sep + 1] === 'bpf' && path.basename(at).startsWith(MOUNT_PREFIX) && path.dirname(at) === os.tmpdir()) out.push(at);
  }
  return out;
}

/**
 * Remove our filters (by preference and name) from `ifname`, and the clsact qdisc when
 * nothing else is attached to it (our owner added it); whether any was there.
 */
export function removeStaleFilters(ifname: string): boolean {
  let found = false;
  for (const dir of ['egress', 'ingress'] as const) {
    const r = run('tc', ['filter', 'show', 'dev', ifname, dir]);
    if (r.ok && r.out.includes(`pref ${TC_PREF} bpf`) && r.out.includes(`name ${PROGS[dir]}`)) {
      run('tc', ['filter', 'del', 'dev', ifname, dir, 'pref', String(TC_PREF)]);
      found = true;
    }
  }
  if (found && (['egress', 'ingress'] as const).every((d) => run('tc', ['filter', 'show', 'dev', ifname, d]).out.trim() === '')) {
    run('tc', ['qdisc', 'del', 'dev', ifname, 'clsact']);
  }
  return found;
}

const KEY_BYTES = 32;
const VALUE_BYTES = 32;

/** The tc programs and their map, in the current network namespace. */
export class TcKernelPath implements KernelPathHook {
  private readonly attached = new Set<string>();
  /** Interfaces whose clsact qdisc we added (removed again at close). */
  private readonly ownQdisc = new Set<string>();
  private readonly watched = new Set<string>();
  private readonly key = new Uint8Array(KEY_BYTES);
  private readonly value = new Uint8Array(VALUE_BYTES);
  private readonly view = new DataView(this.value.buffer);
  private closed = false;

  private constructor(private readonly addon: NativeAddon, private readonly mount: string, private readonly mapFd: number) {}

  /**
   * Build (or find) the object, load it, attach it to `interfaces`. EnvironmentError EBPF
   * when the host refuses any step (no clang or bpftool, no privilege, no BPF): the
   * caller falls back to the TUN path. Undoes what it did before throwing.
   */
  static open(opts: KernelPathOptions): TcKernelPath {
    const addon = loadAddon();
    for (const m of staleMounts()) if (run('umount', [m]).ok) rmdirQuiet(m);
    for (const i of opts.interfaces) removeStaleFilters(i);
    const object = opts.object ?? bpfObject();
    const mount = mkdtempSync(path.join(os.tmpdir(), MOUNT_PREFIX));
    const m = run('mount', ['-t', 'bpf', 'bpf', mount]);
    if (!m.ok) {
      rmdirQuiet(mount);
      throw new EnvironmentError('EBPF', `cannot mount a bpffs: ${m.err}`);
    }
    const undo = () => { run('umount', [mount]); rmdirQuiet(mount); };
    const l = run('bpftool', ['prog', 'loadall', object, `${mount}/p`, 'type', 'classifier', 'pinmaps', `${mount}/m`]);
    if (!l.ok) {
      undo();
      throw new EnvironmentError('EBPF', `bpftool cannot load ${path.basename(object)}: ${l.err.split('\n').find((x) => x && !x.startsWith('Warning') && !x.startsWith('If it used')) ?? l.err}`);
    }
    const fd = addon.bpfObjGet(`${mount}/m/contexts`);
    const cfd = addon.bpfObjGet(`${mount}/m/config`);
    if (fd < 0 || cfd < 0) {
      if (fd >= 0) addon.bpfClose(fd);
      if (cfd >= 0) addon.bpfClose(cfd);
      undo();
      throw new EnvironmentError('EBPF', `cannot open the BPF maps (errno ${-Math.min(fd, cfd)})`);
    }
    const port = new Uint8Array(4);
    new DataView(port.buffer).setUint32(0, opts.port, true);
    const rc = addon.bpfMapOp(1, cfd, new Uint8Array(4), port, 0);
    addon.bpfClose(cfd);
    const k = new TcKernelPath(addon, mount, fd);
    try {
      if (rc < 0) throw new EnvironmentError('EBPF', `cannot configure the BPF program (errno ${-rc})`);
      for (const i of opts.interfaces) k.attach(i);
    } catch (e) {
      k.close();
      throw e;
    }
    return k;
  }

  /** Attach both programs to `ifname` (idempotent). EnvironmentError EBPF when tc refuses. */
  attach(ifname: string): void {
    if (this.closed || this.attached.has(ifname)) return;
    const q = run('tc', ['qdisc', 'add', 'dev', ifname, 'clsact']);
    if (q.ok) this.ownQdisc.add(ifname);
    for (const dir of ['egress', 'ingress'] as const) {
      const r = run('tc', ['filter', 'replace', 'dev', ifname, dir, 'pref', String(TC_PREF), 'handle', '1', 'bpf', 'direct-action', 'object-pinned', `${this.mount}/p/${PROGS[dir]}`]);
      if (!r.ok) {
        this.detach(ifname);
        throw new EnvironmentError('EBPF', `tc cannot attach ${PROGS[dir]} to ${ifname}: ${r.err}`);
      }
      this.attached.add(ifname);
    }
  }

  /** Remove our filters from `ifname` (and the clsact qdisc if we added it). */
  detach(ifname: string): void {
    for (const dir of ['egress', 'ingress'] as const) run('tc', ['filter', 'del', 'dev', ifname, dir, 'pref', String(TC_PREF)]);
    if (this.ownQdisc.delete(ifname)) run('tc', ['qdisc', 'del', 'dev', ifname, 'clsact']);
    this.attached.delete(ifname);
  }

  interfaces(): string[] {
    return [...this.attached];
  }

  watch(localUlid: Ipv6, peerUlid: Ipv6): boolean {
    if (this.closed) return false;
    this.setKey(localUlid, peerUlid);
    this.value.fill(0);
    const rc = this.addon.bpfMapOp(1, this.mapFd, this.key, this.value, 0);
    if (rc === 0) this.watched.add(`${localUlid} ${peerUlid}`);
    return rc === 0;
  }

  unwatch(localUlid: Ipv6, peerUlid: Ipv6): void {
    if (!this.watched.delete(`${localUlid} ${peerUlid}`) || this.closed) return;
    this.setKey(localUlid, peerUlid);
    this.addon.bpfMapOp(2, this.mapFd, this.key);
  }

  read(localUlid: Ipv6, peerUlid: Ipv6): KernelCounters | undefined {
    if (this.closed || !this.watched.has(`${localUlid} ${peerUlid}`)) return undefined;
    this.setKey(localUlid, peerUlid);
    if (this.addon.bpfMapOp(0, this.mapFd, this.key, this.value) !== 0) return undefined;
    return { outPackets: this.view.getBigUint64(0, true), inPackets: this.view.getBigUint64(8, true) };
  }

  /** Detach everywhere, close the map, unmount. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const i of [...this.attached]) this.detach(i);
    for (const i of [...this.ownQdisc]) { run('tc', ['qdisc', 'del', 'dev', i, 'clsact']); this.ownQdisc.delete(i); }
    this.addon.bpfClose(this.mapFd);
    run('umount', [this.mount]);
    rmdirQuiet(this.mount);
  }

  private setKey(local: Ipv6, peer: Ipv6): void {
    this.key.set(parseIpv6(local), 0);
    this.key.set(parseIpv6(peer), 16);
  }
}

function rmdirQuiet(dir: string): boolean {
  try { rmdirSync(dir); return true; } catch { return false; }
}
