/**
 * Kernel encapsulation (docs/dataplane.md "Kernel encapsulation"): after a
 * re-homing, a context's packets are encapsulated and decapsulated by two tc
 * programs (native/bpf/shim6_tc.bpf.c) on the same wire format as the
 * user-space path, so they do not cross the TUN and the driver.
 *
 * This module builds the object (clang, at the first start, into a root-owned
 * cache named by the source's hash), loads it with bpftool (programs and maps
 * pinned under /sys/fs/bpf/shim6/netns-<inode of the network namespace>; bpffs mounted when it
 * is not), attaches the
 * programs to clsact egress and ingress of the host's links (tc, preference
 * 5533), and keeps the maps:
 *
 *  - `shim6_egr`: (our ULID, peer ULID) → (our locator, peer locator, the
 *    peer's context tag, UDP ports);
 *  - `shim6_ing`: our context tag → (our ULID, peer ULID, the context's
 *    verified peer locators);
 *  - `shim6_cfg`: the daemon's UDP port and its TUN's ifindex (a re-homed context's GSO
 *    skbs, larger than the path, are redirected there: the daemon segments and
 *    encapsulates them; so is any packet that is not TCP, UDP or ICMPv6 — a
 *    fragment, ESP —, which the daemon encapsulates); `shim6_stats`: per-CPU counters;
 *  - `shim6_watch` / `shim6_flows`: the watched contexts (each with how many flows it
 *    holds) and their TCP flows (at most ENCAP_FLOWS_PER_CONTEXT each, only of a
 *    connected local socket);
 *  - `shim6_local`: our addresses: the engine's locators (`setLocals`, by the daemon at the start
 *    and at each change of them), else this namespace's global unicast addresses
 *    (/proc/net/if_inet6, read again at each `accept`): only a payload to one of them is
 *    decapsulated in the kernel.
 *
 * Map changes are bpf(2) calls through the native addon (native/bpfmap.c): microseconds in
 * the event loop, where a `bpftool` process per change took 10 to 100 ms while REAP re-homed.
 *
 * Nothing is left behind: `close()` detaches the filters, deletes the clsact
 * qdiscs it added (once nothing else is on them) and unpins everything;
 * `open()` first removes filters at our preference whose program is ours (by
 * name), the clsact qdiscs a crashed daemon added (its filters' handle:
 * ENCAP_HANDLE_OURS) once empty, and the pins it left.
 *
 * The pins are this network namespace's alone (pinDirectory): daemons of several namespaces may
 * share one /sys/fs/bpf (`nsenter --net`, systemd `NetworkNamespacePath=`; `ip netns exec` mounts a
 * /sys per namespace), and the start's removal of a crashed daemon's pins, once the whole of
 * /sys/fs/bpf/shim6, took a live daemon's of another namespace (found by a reviewer). A daemon of
 * this namespace is the only one (instance-lock.ts): what is in its directory at the start is a
 * dead one's.
 *
 * Owns: the object file, the pins, the tc filters. Must not know: Shim6's
 * engine, routes (routes.ts points the ULID at the link).
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, renameSync, rmdirSync, rmSync, statSync, unlinkSync, type Dirent } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { EnvironmentError } from '../errors.ts';
import { parseIpv6, type Ipv6 } from '../wire/ipv6.ts';
import { loadAddon, type NativeAddon } from '../../native/addon.ts';
import { Rtnetlink } from './rtnetlink.ts';
import { untrustedReason } from '../trusted-path.ts';

/** tc filter preference of our programs (on egress and ingress). */
export const ENCAP_PREF = 5533;
/**
 * Our filters' handle: ENCAP_HANDLE_OURS on a clsact qdisc we added, ENCAP_HANDLE on one that was
 * there before (someone else's). The mark lives in the kernel with the link: a start after a
 * daemon was killed knows from it which clsact the dead one had added (deleted once empty), where
 * before it took every clsact it found for someone else's and its clean stop left them, empty.
 */
export const ENCAP_HANDLE = 1;
export const ENCAP_HANDLE_OURS = 2;
/** Where the programs and maps are pinned: a directory per network namespace in it (pinDirectory). */
export const BPF_PIN_DIR = '/sys/fs/bpf/shim6';

/**
 * The pin directory of the daemon of a network namespace (default this process's): named after the
 * namespace's inode, as its one-daemon lock is (`daemon-netns-<inode>.lock`).
 */
export function pinDirectory(netnsInode: number = statSync('/proc/self/ns/net').ino): string {
  return path.join(BPF_PIN_DIR, `netns-${netnsInode}`);
}
/** Verified peer locators the ingress check holds per context (the program's MAX_LOCATORS). */
export const ENCAP_MAX_LOCATORS = 8;
/**
 * TCP flows the kernel remembers per watched context (the program's FLOWS_PER_CONTEXT), and so
 * the most one re-homing prompts per context (docs/dataplane.md "TCP prompt on the kernel path").
 */
export const ENCAP_FLOWS_PER_CONTEXT = 256;
/** Default cache of the compiled object (root-owned: the daemon loads what is there). */
const DEFAULT_CACHE = '/run/shim6/bpf';
/**
 * The most contexts the per-context maps (shim6_egr, shim6_ing, shim6_watch) are made for, whatever
 * maxContexts says: a map's buckets are allocated whole at load (16 octets each, for the next power
 * of two), 4 MiB a map at this bound. Contexts beyond it whose entries are refused stay on the TUN
 * path (counted `encap-set` / `encap-watch`).
 */
export const ENCAP_MAX_CONTEXTS = 262_144;
/** The maps' bound when the daemon names none (the program's own default, SHIM6_MAX_CONTEXTS). */
const DEFAULT_MAX_CONTEXTS = 4096;

/** One context's kernel encapsulation. */
export interface EncapContext {
  localUlid: Ipv6;
  peerUlid: Ipv6;
  /** The current locator pair (not the ULID pair). */
  localLocator: Ipv6;
  peerLocator: Ipv6;
  /** Our context tag (the peer's packets carry it) and the peer's (ours carry it). */
  localTag: number;
  peerTag: number;
  /** The peer's UDP port. */
  peerPort: number;
  /** The peer's verified locators: only these may send it (the first ENCAP_MAX_LOCATORS). */
  peerLocators: Ipv6[];
}

/** What the driver's context paths need of the kernel encapsulation (BpfEncap; tests use a double). */
export interface EncapHook {
  /** Encapsulate the context's packets in the kernel (add or replace); false when the kernel refused. */
  set(c: EncapContext): boolean;
  /**
   * Decapsulate the peer's packets to `localTag` in the kernel, whatever our own pair (the peer may
   * have re-homed when we did not); false when the kernel refused.
   */
  accept?(c: Pick<EncapContext, 'localUlid' | 'peerUlid' | 'localTag' | 'peerLocators'>): boolean;
  /**
   * Whether the packets of the locator pair `local` → `peer` leave by a link the programs are on
   * (they work on Ethernet frames only). False: the kernel cannot encapsulate them (a PPP, WireGuard,
   * tunnel or raw-IP modem link), and a context re-homed onto that pair stays on the TUN. Absent,
   * or not known (no route): true.
   */
  carries?(local: Ipv6, peer: Ipv6): boolean;
  /** Stop (idempotent). */
  unset(localUlid: Ipv6, peerUlid: Ipv6, localTag: number): void;
  /**
   * Remember the context's TCP flows (the peer's last acknowledgment) while it is on the kernel path;
   * false when the kernel refused (a full shim6_watch: its flows are not remembered, counted `encap-watch`).
   */
  watch?(localUlid: Ipv6, peerUlid: Ipv6): boolean | void;
  /** Stop remembering them, and forget them (idempotent). */
  unwatch?(localUlid: Ipv6, peerUlid: Ipv6): void;
  /** The context's TCP flows as last seen arriving on the kernel path. */
  flows?(localUlid: Ipv6, peerUlid: Ipv6): KernelFlow[];
  /**
   * Our stack closed the flow `localPort` → `peerPort` and its FIN or RST went through the TUN,
   * where the egress program that forgets flows never sees it: forget it.
   */
  forget?(localUlid: Ipv6, peerUlid: Ipv6, localPort: number, peerPort: number): void;
}

/**
 * A TCP flow of a context on the kernel path: our port, the peer's, the peer's last acknowledgment
 * number, and the peer's last segment's TCP header made a pure ACK (checksum 0; `lastAck`).
 */
export interface KernelFlow { srcPort: number; dstPort: number; ack: number; lastAck?: Uint8Array }

export interface BpfEncapOptions {
  /** The daemon's UDP port (its datagrams are never encapsulated; ingress takes payload to it). */
  port: number;
  /** Where the compiled object is kept (default /run/shim6/bpf). */
  cacheDir?: string;
  /** Links not to attach to (the TUN). */
  skipLinks?: string[];
  /**
   * The daemon's TUN: GSO skbs of re-homed contexts go there (its reader segments them). Looked up
   * when a context is first encapsulated (the TUN may open after the programs); while it is not
   * found such skbs are dropped and counted as errors.
   */
  tun: string;
  /**
   * Contexts the per-context maps hold (the daemon's maxContexts, at most ENCAP_MAX_CONTEXTS): the
   * object is built for it (default 4096).
   */
  maxContexts?: number;
}

/** Packet counts of the programs (summed over CPUs). */
/** The programs' counters: the keys of `shim6_stats` in order (ST_* in native/bpf/shim6_tc.bpf.c). */
const STATS = [
  'encapsulated', 'decapsulated', 'passedUnknownTag', 'passedLocator', 'unsupported', 'errors', 'passedDatagrams', 'toTun',
  'flowsRemembered', 'flowsNoSocket', 'flowsFull', 'flowsClosed', 'toTunOther', 'passedDestination', 'flowsForged',
] as const;
export type EncapStats = Record<typeof STATS[number], number>;

function run(cmd: string, args: string[], input?: string): { ok: boolean; out: string; err: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 20_000, ...(input !== undefined ? { input } : {}) });
  return { ok: !r.error && r.status === 0, out: String(r.stdout ?? ''), err: String(r.stderr || r.error?.message || '').trim() };
}

/** The program's C source (from the source tree or from dist/). */
function sourcePath(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  for (const up of ['../..', '../../..']) {
    const p = path.resolve(here, up, 'native/bpf/shim6_tc.bpf.c');
    if (existsSync(p)) return p;
  }
  throw new EnvironmentError('EBPF', 'native/bpf/shim6_tc.bpf.c not found');
}

/** The first of `names` found executable on PATH: its path and its file's identity. */
function onPath(names: readonly string[]): { path: string; identity: string } | undefined {
  for (const name of names) {
    for (const dir of (process.env.PATH ?? '').split(':')) {
      if (dir === '') continue;
      try {
        const real = realpathSync(path.join(dir, name));
        const st = statSync(real);
        if (st.isFile() && (st.mode & 0o111) !== 0) return { path: path.join(dir, name), identity: `${real} ${st.size} ${st.mtimeMs}` };
      } catch { /* not in this directory */ }
    }
  }
  return undefined;
}

/** The per-context maps' size for `maxContexts` contexts: at least 1, at most ENCAP_MAX_CONTEXTS. */
export function encapMapEntries(maxContexts = DEFAULT_MAX_CONTEXTS): number {
  return Math.max(1, Math.min(ENCAP_MAX_CONTEXTS, Math.floor(maxContexts)));
}

/**
 * Compile the programs (once per source, compiler and map size: the object is named by
 * their hash), their per-context maps made for `maxContexts` contexts (encapMapEntries).
 * EnvironmentError EBPF when clang is missing or fails.
 */
export function buildObject(cacheDir = DEFAULT_CACHE, maxContexts?: number): string {
  const entries = encapMapEntries(maxContexts);
  const src = sourcePath();
  const clang = onPath(['clang', 'clang-14']);
  if (clang === undefined) throw new EnvironmentError('EBPF', 'clang not found (Debian: apt-get install clang-14 libbpf-dev)');
  // The compiler named by its file (resolved path, size, modification time), not by running it:
  // every daemon start comes here, and `clang --version` costs ~35 ms of CPU; an upgrade changes the file.
  const hash = createHash('sha256').update(readFileSync(src)).update(clang.identity).update(`entries ${entries}`).digest('hex').slice(0, 16);
  const obj = path.join(cacheDir, `shim6_tc-${hash}.o`);
  if (existsSync(obj)) return obj;
  mkdirSync(cacheDir, { recursive: true, mode: 0o700 });
  const arch = run('uname', ['-m']).out.trim();
  const tmp = `${obj}.${process.pid}.tmp`;
  const r = run(clang.path, ['-O2', '-g', '-target', 'bpf', `-DSHIM6_MAX_CONTEXTS=${entries}`, `-I/usr/include/${arch}-linux-gnu`, '-c', src, '-o', tmp]);
  if (!r.ok) {
    rmSync(tmp, { force: true });
    throw new EnvironmentError('EBPF', `clang could not build the tc programs: ${r.err.split('\n').slice(0, 3).join(' ')}`);
  }
  renameSync(tmp, obj);
  return obj;
}

/** The maps the daemon writes (the programs' shim6_stats is read with bpftool, per CPU). */
const MAPS = ['shim6_egr', 'shim6_ing', 'shim6_watch', 'shim6_flows', 'shim6_cfg', 'shim6_stats', 'shim6_local'] as const;
type MapName = typeof MAPS[number];

/** shim6_flows: key (our ULID, the peer's, our port, the peer's), value (the peer's last ACK, header length, pad, header); entries at most. */
const FLOW_KEY_LEN = 36;
const FLOW_VALUE_LEN = 40;
const FLOWS_MAX = 8192;

/** shim6_local: entries at most (the program's max_entries). */
const LOCAL_MAX = 256;

/**
 * This namespace's global unicast addresses (/proc/net/if_inet6: scope 0, not DAD-failed), as
 * 32 hex digits: a file read, no process (done in the event loop at each `accept`).
 */
export function globalAddresses(text?: string): string[] {
  let t = text;
  if (t === undefined) {
    try {
      t = readFileSync('/proc/net/if_inet6', 'utf8');
    } catch {
      return [];
    }
  }
  const out: string[] = [];
  for (const line of t.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 6 || !/^[0-9a-f]{32}$/.test(f[0]!)) continue;
    const scope = parseInt(f[3]!, 16), flags = parseInt(f[4]!, 16);
    if (scope !== 0 || (flags & 0x08) !== 0 || f[0]!.startsWith('ff')) continue; // IFA_F_DADFAILED
    out.push(f[0]!);
  }
  return out;
}

/** (our ULID, peer ULID): the key of shim6_egr and shim6_watch, the start of shim6_flows' key. */
function pairKey(localUlid: Ipv6, peerUlid: Ipv6): Uint8Array {
  return Uint8Array.from([...addr(localUlid), ...addr(peerUlid)]);
}
function u64le(n: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(n), true);
  return b;
}
function u32le(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n, true);
  return b;
}
function be16(n: number): Uint8Array {
  return Uint8Array.of(n >> 8, n & 0xff);
}
function addr(a: Ipv6): Uint8Array {
  return parseIpv6(a);
}

/**
 * The Ethernet links of this namespace (not loopback, not the TUN): /sys/class/net, type 1
 * (ARPHRD_ETHER, `ip -j link` link_type `ether`). Read in the event loop each time a context's
 * entries are set (a link may have come since): an `ip -j link show` process there blocked
 * the loop 5–16 ms right at the re-homing (measured, before the TCP prompt could go).
 */
function links(): string[] {
  try {
    return readdirSync('/sys/class/net').filter((dev) => {
      try {
        return readFileSync(`/sys/class/net/${dev}/type`, 'utf8').trim() === '1';
      } catch {
        return false;
      }
    });
  } catch {
    return [];
  }
}

/** A link's ifindex in this namespace (0 when there is none of that name). */
function ifindex(name: string): number {
  try {
    return Number(readFileSync(`/sys/class/net/${name}/ifindex`, 'utf8').trim()) || 0;
  } catch {
    return 0;
  }
}

/** Whether a bpffs is mounted at /sys/fs/bpf. */
function bpffsMounted(): boolean {
  try {
    return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === '/sys/fs/bpf' && l.includes(' - bpf '));
  } catch {
    return false;
  }
}

/**
 * What `bpftool prog loadall` said when the kernel refused the object, in one line: the verifier's
 * own reason when its log is there (the last line before its statistics: "R1 offset is outside of
 * the packet", "unknown func bpf_sk_lookup_tcp#84", what an older kernel lacks), after libbpf's
 * "prog '…': BPF program load failed: …"; else libbpf's last lines. Before, only the last lines
 * ("failed to load: -13"), which say that it failed, not why.
 */
export function loadRefusal(err: string): string {
  const lines = err.split('\n').map((l) => l.trim());
  const tail = lines.filter((l) => l !== '' && !l.startsWith('Warning') && !l.startsWith('If it used')).slice(-3).join(' ');
  const end = lines.findIndex((l) => l.endsWith('-- END PROG LOAD LOG --'));
  if (end < 0) return tail;
  let why: string | undefined;
  for (let i = end - 1; i >= 0 && !lines[i]!.endsWith('-- BEGIN PROG LOAD LOG --'); i--) {
    const l = lines[i]!;
    // The statistics, instructions ("12: (61) r0 = …"), source lines ("; …") and register states are not the reason.
    if (l === '' || /^(processed \d+ insns|verification time|stack depth)/.test(l) || /^\d+: /.test(l) || l.startsWith(';') || /^R\d+=/.test(l)) continue;
    why = l;
    break;
  }
  const failed = lines.find((l) => l.includes('BPF program load failed'))?.replace(/^libbpf: /, '');
  return why === undefined ? tail : `${failed ?? tail}: the verifier: ${why}`;
}

/**
 * Remove filters of ours a crashed daemon left on `dev`, by preference and program name; and the
 * clsact qdisc it had added (its filters' handle ENCAP_HANDLE_OURS) once nothing else is on it.
 */
function removeStaleFilters(dev: string): void {
  let ours = false;
  for (const dir of ['egress', 'ingress']) {
    const r = run('tc', ['filter', 'show', 'dev', dev, dir]);
    if (!(r.ok && r.out.includes(`pref ${ENCAP_PREF} `) && r.out.includes(`shim6_${dir}`))) continue;
    if (new RegExp(`pref ${ENCAP_PREF} bpf chain \\d+ handle 0x${ENCAP_HANDLE_OURS.toString(16)} shim6_${dir}`).test(r.out)) ours = true;
    run('tc', ['filter', 'del', 'dev', dev, dir, 'pref', String(ENCAP_PREF)]);
  }
  if (ours) deleteEmptyClsact([dev]);
}

/**
 * Delete the clsact qdisc of each of `devs` (ours: we added it) that holds no filter: one that
 * someone else's filters were added to since is theirs too, kept (deleting it would take them).
 */
function deleteEmptyClsact(devs: readonly string[]): void {
  const empty = devs.filter((dev) => {
    const r = run('tc', ['-batch', '-'], `filter show dev ${dev} egress\nfilter show dev ${dev} ingress\n`);
    return r.ok && r.out.trim() === '';
  });
  if (empty.length > 0) run('tc', ['-force', '-batch', '-'], empty.map((dev) => `qdisc del dev ${dev} clsact`).join('\n') + '\n');
}

/** Remove what a crashed daemon left (filters on every link, pins). Whether anything was found. */
export function removeStaleEncap(): boolean {
  let found = false;
  // One process in the usual case: no program of that name in the whole kernel (any namespace),
  // or no bpftool (then none of ours was ever loaded), and no pins: nothing to look for per link.
  const anywhere = run('bpftool', ['prog', 'show', 'name', 'shim6_egress']);
  if (!(anywhere.ok && anywhere.out.includes('shim6_egress')) && !existsSync(BPF_PIN_DIR)) return false;
  // The directory of every namespace's pins first: one another user could change is used for none.
  const shared = pinDirProblem(BPF_PIN_DIR);
  if (shared) throw new EnvironmentError('EBPF_PINS', `${shared}: nothing removed (remove it by hand once you know whose it is)`, BPF_PIN_DIR);
  // Every link's filters in one `tc` (programs of other namespaces' daemons are loaded on a busy
  // host or a lab); each link is looked at again only when one of ours is among them.
  const devs = links();
  const shown = run('tc', ['-force', '-batch', '-'], devs.flatMap((dev) => [`filter show dev ${dev} egress`, `filter show dev ${dev} ingress`]).join('\n') + '\n');
  if (shown.out.includes('shim6_egress') || shown.out.includes('shim6_ingress')) {
    found = true;
    for (const dev of devs) removeStaleFilters(dev);
  }
  // Only this namespace's pins: another namespace's may be its live daemon's.
  const dir = pinDirectory();
  if (existsSync(dir)) {
    removePins(dir);
    found = true;
  }
  return found;
}

/**
 * Why root cannot keep its pins in `dir` (and its maps/), or undefined. A bpffs mounted without
 * a mode is writable by everyone (1777): another user may have made the directory first, or
 * planted links in it, so that root's removal of "its" pins removes files elsewhere, or root's
 * pins land where that user can swap them before tc takes them.
 */
export function pinDirProblem(dir: string): string | undefined {
  const problem = untrustedReason(dir, { kind: 'directory', missingOk: true }) ?? untrustedReason(path.join(dir, 'maps'), { kind: 'directory', missingOk: true });
  return problem === undefined ? undefined : `the pin directory ${dir} is not root's alone: ${problem}`;
}

/**
 * Unpin: every pin in `dir`/maps and in `dir` unlinked one by one (a link is removed, never
 * followed), then the two directories; only once pinDirProblem has found no one else can
 * change them. EnvironmentError EBPF_PINS, with nothing removed, when it has; or when `dir`
 * holds a directory other than maps/ (no pin of ours is one).
 */
export function removePins(dir: string): void {
  const problem = pinDirProblem(dir);
  if (problem) throw new EnvironmentError('EBPF_PINS', `${problem}: nothing removed (remove it by hand once you know whose it is)`, dir);
  for (const sub of [path.join(dir, 'maps'), dir]) {
    let entries: Dirent[];
    try {
      entries = readdirSync(sub, { withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    const stray = entries.find((e) => e.isDirectory() && !(sub === dir && e.name === 'maps'));
    if (stray) throw new EnvironmentError('EBPF_PINS', `${path.join(sub, stray.name)} is a directory where only pins belong: nothing removed`, dir);
    for (const e of entries) if (!e.isDirectory()) unlinkSync(path.join(sub, e.name));
    rmdirSync(sub);
  }
}

/**
 * Remove the pins in `dir`, then the directory of every namespace's pins when no other namespace's
 * are left in it. Whatever cannot go (another's directory, a read-only /sys) is what the next
 * start's removeStaleEncap reports.
 */
function unpin(dir: string): void {
  try { removePins(dir); } catch { /* reported by the next start; bpftool may have pinned nothing */ }
  try { rmdirSync(BPF_PIN_DIR); } catch { /* another namespace's pins in it, or none there */ }
}

/** The tc programs and their maps. */
export class BpfEncap implements EncapHook {
  /** Links the programs are attached to, by name, with the ifindex of the link they were attached to. */
  private readonly attached = new Map<string, number>();
  /** Links whose clsact qdisc we added (deleted on close). */
  private readonly qdiscs = new Set<string>();
  private closed = false;
  /** The TUN's ifindex as written to shim6_cfg (0: not yet found). */
  private tunIfindex = 0;

  /** What shim6_local holds (hex of each address). */
  private readonly locals = new Set<string>();
  /** What shim6_local is to hold (hex): the engine's locators once `setLocals` said them; undefined: the namespace's global addresses. */
  private wanted: string[] | undefined;

  /** The pinned maps, opened once (bpf(2) file descriptors). */
  private readonly fds = new Map<MapName, number>();
  /** Flows `forget` took out (added to the programs' `flowsClosed`). */
  private forgotten = 0;
  /** The rtnetlink socket of `carries`, opened at its first call (null: not yet; undefined: none to be had). */
  private nl: Rtnetlink | undefined | null = null;

  private constructor(private readonly opts: BpfEncapOptions, private readonly mounted: boolean, private readonly addon: NativeAddon, private readonly pins: string) {}

  /**
   * Build, load and attach. EnvironmentError EBPF when clang, bpftool, bpffs or the
   * kernel refuse (the caller keeps re-homed contexts on the TUN path).
   */
  static open(opts: BpfEncapOptions): BpfEncap {
    const addon = loadAddon();
    if (typeof addon.bpfObjGet !== 'function') throw new EnvironmentError('ENATIVE', 'the native addon is older than this code (run `npm rebuild -g shim6` for an installed shim6, `npm rebuild` in a checkout)');
    const obj = buildObject(opts.cacheDir, opts.maxContexts);
    let mounted = false;
    if (!bpffsMounted()) {
      // Root's alone (a bpffs mounted without a mode is 1777: pinDirProblem).
      const m = run('mount', ['-t', 'bpf', '-o', 'mode=0700', 'bpf', '/sys/fs/bpf']);
      if (!m.ok) throw new EnvironmentError('EBPF', `cannot mount bpffs at /sys/fs/bpf: ${m.err}`);
      mounted = true;
    }
    const dir = pinDirectory();
    try {
      removeStaleEncap();
      // Made here, root's alone, so that bpftool pins into a directory no one else made first. The
      // one above may be another namespace's daemon's too (found root's alone by removeStaleEncap),
      // and removed by its close when it is empty: made again then.
      for (let attempt = 0; ; attempt++) {
        mkdirSync(BPF_PIN_DIR, { recursive: true, mode: 0o700 });
        try {
          mkdirSync(dir, { mode: 0o700 });
          break;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || attempt >= 3) throw err;
        }
      }
      const problem = pinDirProblem(dir); // made by another user between the check and the mkdir
      if (problem) throw new EnvironmentError('EBPF_PINS', `${problem}: not used`, dir);
    } catch (err) {
      if (mounted) run('umount', ['/sys/fs/bpf']);
      if (err instanceof EnvironmentError) throw err;
      throw new EnvironmentError('EBPF', `cannot make the pin directory ${dir}: ${(err as Error).message}`, dir);
    }
    const load = run('bpftool', ['prog', 'loadall', obj, dir, 'pinmaps', `${dir}/maps`, 'type', 'classifier']);
    if (!load.ok) {
      unpin(dir);
      if (mounted) run('umount', ['/sys/fs/bpf']);
      if (load.err.startsWith('spawnSync bpftool ENOENT')) throw new EnvironmentError('EBPF', 'bpftool not found (Debian: apt-get install bpftool)');
      throw new EnvironmentError('EBPF', `the kernel refused the tc programs: ${loadRefusal(load.err)}`);
    }
    const e = new BpfEncap(opts, mounted, addon, dir);
    for (const m of MAPS) {
      const fd = addon.bpfObjGet(`${dir}/maps/${m}`);
      if (fd < 0) {
        e.close();
        throw new EnvironmentError('EBPF', `cannot open the tc programs' map ${m} (errno ${-fd})`);
      }
      e.fds.set(m, fd);
    }
    if (!e.writeConfig()) {
      e.close();
      throw new EnvironmentError('EBPF', 'cannot write the tc programs\' configuration map');
    }
    // No link took them (a kernel without clsact, sch_ingress, or tc refusing): no encapsulation, said
    // now, and the TUN path; before, it opened silently with no link (status showed it available, and
    // each re-homed context went to the TUN logged as leaving by a link that is not Ethernet).
    const refused = e.attachAll();
    if (e.attached.size === 0 && refused !== undefined) {
      e.close();
      throw new EnvironmentError('EBPF', `cannot attach the tc programs to any link: ${refused}`);
    }
    return e;
  }

  set(c: EncapContext): boolean {
    if (this.closed) return false;
    if (this.tunIfindex === 0) {
      this.tunIfindex = ifindex(this.opts.tun);
      if (this.tunIfindex !== 0) this.writeConfig();
    }
    const egrVal = Uint8Array.from([...addr(c.localLocator), ...addr(c.peerLocator), ...u64le(c.peerTag), ...be16(this.opts.port), ...be16(c.peerPort), 0, 0, 0, 0]);
    // Ingress first: the peer's packets on the new pair are taken as soon as ours leave on it.
    return this.accept(c) && this.update('shim6_egr', pairKey(c.localUlid, c.peerUlid), egrVal);
  }

  accept(c: Pick<EncapContext, 'localUlid' | 'peerUlid' | 'localTag' | 'peerLocators'>): boolean {
    if (this.closed) return false;
    this.attachAll();
    this.refreshLocals();
    const locs = c.peerLocators.slice(0, ENCAP_MAX_LOCATORS);
    const locBytes = new Uint8Array(16 * ENCAP_MAX_LOCATORS);
    locs.forEach((l, i) => locBytes.set(addr(l), 16 * i));
    const ingVal = Uint8Array.from([...addr(c.localUlid), ...addr(c.peerUlid), ...u32le(locs.length), 0, 0, 0, 0, ...locBytes]);
    return this.update('shim6_ing', u64le(c.localTag), ingVal);
  }

  carries(local: Ipv6, peer: Ipv6): boolean {
    if (this.closed) return false;
    this.attachAll();
    if (this.nl === null) this.nl = Rtnetlink.open();
    // The lookup the route onto the encapsulation makes (routes.ts switchPath): where the pair's packets leave.
    const hop = this.nl?.routeGet(peer, local);
    if (hop === undefined || typeof hop === 'number') return true;
    return [...this.attached.values()].includes(hop.oif);
  }

  unset(localUlid: Ipv6, peerUlid: Ipv6, localTag: number): void {
    if (this.closed) return;
    this.remove('shim6_egr', pairKey(localUlid, peerUlid));
    this.remove('shim6_ing', u64le(localTag));
  }

  watch(localUlid: Ipv6, peerUlid: Ipv6): boolean {
    if (this.closed) return false;
    // The value: how many of its flows the kernel holds (none yet).
    return this.update('shim6_watch', pairKey(localUlid, peerUlid), u32le(0));
  }

  unwatch(localUlid: Ipv6, peerUlid: Ipv6): void {
    if (this.closed) return;
    this.remove('shim6_watch', pairKey(localUlid, peerUlid));
    for (const k of this.flowKeys(localUlid, peerUlid)) this.remove('shim6_flows', k);
  }

  /**
   * The context's flows (ENCAP_FLOWS_PER_CONTEXT at most); the count the programs keep in
   * shim6_watch is set to what the map holds (it only grows when the LRU evicts one of them).
   */
  flows(localUlid: Ipv6, peerUlid: Ipv6): KernelFlow[] {
    if (this.closed) return [];
    const fd = this.fds.get('shim6_flows');
    if (fd === undefined) return [];
    const value = new Uint8Array(FLOW_VALUE_LEN);
    const out: KernelFlow[] = [];
    const keys = this.flowKeys(localUlid, peerUlid);
    for (const k of keys.slice(0, ENCAP_FLOWS_PER_CONTEXT)) {
      if (this.addon.bpfMapLookup(fd, k, value) !== 0) continue; // gone meanwhile (LRU)
      const v = new DataView(k.buffer, k.byteOffset + 32, 4);
      const hlen = value[4]!;
      out.push({
        srcPort: v.getUint16(0), dstPort: v.getUint16(2), ack: new DataView(value.buffer).getUint32(0),
        ...(hlen === 20 || hlen === 32 ? { lastAck: value.slice(8, 8 + hlen) } : {}),
      });
    }
    // Only a watched context's count (the programs never add one: no race with unwatch here).
    const wfd = this.fds.get('shim6_watch');
    const pair = pairKey(localUlid, peerUlid);
    if (wfd !== undefined && this.addon.bpfMapLookup(wfd, pair, new Uint8Array(4)) === 0) this.addon.bpfMapUpdate(wfd, pair, u32le(keys.length));
    return out;
  }

  /**
   * The flow's entry goes, as the egress program takes it out at our stack's FIN or RST
   * (forget_flow), and the context's count goes down by one (set again by the next `flows`; a new
   * flow the program remembers in between may pass FLOWS_PER_CONTEXT by one). Without it a flow
   * closed while the context's packets crossed the TUN (REAP explored, or the encapsulation was
   * refused) would keep its place among the context's flows and be prompted after its end.
   */
  forget(localUlid: Ipv6, peerUlid: Ipv6, localPort: number, peerPort: number): void {
    const fd = this.fds.get('shim6_flows');
    if (this.closed || fd === undefined) return;
    const pair = pairKey(localUlid, peerUlid);
    const key = new Uint8Array(FLOW_KEY_LEN);
    key.set(pair);
    key.set([...be16(localPort), ...be16(peerPort)], 32);
    if (this.addon.bpfMapDelete(fd, key) !== 0) return; // not remembered (another flow, or already gone)
    this.forgotten++;
    const wfd = this.fds.get('shim6_watch');
    const count = new Uint8Array(4);
    if (wfd === undefined || this.addon.bpfMapLookup(wfd, pair, count) !== 0) return;
    const n = new DataView(count.buffer).getUint32(0, true);
    if (n > 0) this.addon.bpfMapUpdate(wfd, pair, u32le(n - 1));
  }

  /** The keys of `shim6_flows` for the context (walked in the kernel: FLOWS_MAX entries at most). */
  private flowKeys(localUlid: Ipv6, peerUlid: Ipv6): Uint8Array[] {
    const fd = this.fds.get('shim6_flows');
    if (fd === undefined) return [];
    const pair = pairKey(localUlid, peerUlid);
    const keys: Uint8Array[] = [];
    let prev: Uint8Array | null = null;
    for (let n = 0; n <= FLOWS_MAX; n++) {
      const next = new Uint8Array(FLOW_KEY_LEN);
      if (this.addon.bpfMapNextKey(fd, prev, next) !== 0) break;
      if (pair.every((b, i) => next[i] === b)) keys.push(next);
      prev = next;
    }
    return keys;
  }

  /**
   * The addresses a payload may be decapsulated to: exactly the engine's locators (Ls(local), what
   * its `handleDatagram` takes a payload to), set now and kept until the next call. Before, every
   * global address of the namespace: a payload with a context's tag from a verified peer locator
   * to an address not among the daemon's `interfaces` (a management link's, a container bridge's)
   * was decapsulated and delivered, where the engine drops it (not-local).
   */
  setLocals(addresses: readonly Ipv6[]): void {
    this.wanted = addresses.map((a) => Buffer.from(addr(a)).toString('hex'));
    if (!this.closed) this.refreshLocals();
  }

  /**
   * shim6_local made what it is to hold again (the few that changed: an update or a delete each):
   * the engine's locators (`setLocals`), else this namespace's global addresses, of which one added
   * since the last `accept` is not there until the next: a payload to it goes to the daemon's socket
   * meanwhile (decapsulated there), none is lost.
   */
  private refreshLocals(): void {
    const now = new Set((this.wanted ?? globalAddresses()).slice(0, LOCAL_MAX));
    for (const a of this.locals) {
      if (now.has(a)) continue;
      this.remove('shim6_local', Uint8Array.from(Buffer.from(a, 'hex')));
      this.locals.delete(a);
    }
    for (const a of now) {
      if (this.locals.has(a)) continue;
      if (this.update('shim6_local', Uint8Array.from(Buffer.from(a, 'hex')), Uint8Array.of(1))) this.locals.add(a);
    }
  }

  /** The programs' counters, summed over CPUs (bpf(2), no process: `status` asks often); undefined when they cannot be read. */
  stats(): EncapStats | undefined {
    const fd = this.fds.get('shim6_stats');
    if (fd === undefined) return undefined;
    const n = STATS.map((_, k) => this.addon.bpfPercpuSum(fd, u32le(k)));
    if (n.some((v) => v < 0)) return undefined;
    const stats = Object.fromEntries(STATS.map((name, k) => [name, n[k]!])) as EncapStats;
    stats.flowsClosed += this.forgotten;
    return stats;
  }

  /** Links the programs are attached to. */
  links(): string[] {
    return [...this.attached.keys()];
  }

  /** Detach, delete our qdiscs, unpin (and unmount the bpffs we mounted, when empty). Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    // One `tc` for our two filters on each link; then our qdiscs, each once nothing else is on it (a
    // clsact someone added filters to is theirs too). Only on the links attached to: one made again
    // under a name since is not ours to change.
    const ours = [...this.attached].filter(([dev, index]) => ifindex(dev) === index).map(([dev]) => dev);
    const lines = ours.flatMap((dev) => ['egress', 'ingress'].map((dir) => `filter del dev ${dev} ${dir} pref ${ENCAP_PREF} handle ${this.qdiscs.has(dev) ? ENCAP_HANDLE_OURS : ENCAP_HANDLE} bpf`));
    if (lines.length > 0) run('tc', ['-force', '-batch', '-'], lines.join('\n') + '\n');
    deleteEmptyClsact(ours.filter((dev) => this.qdiscs.has(dev)));
    this.attached.clear();
    this.nl?.close();
    for (const fd of this.fds.values()) this.addon.bpfClose(fd);
    this.fds.clear();
    unpin(this.pins);
    if (this.mounted) run('umount', ['/sys/fs/bpf']);
  }

  /**
   * Attach both programs to every Ethernet link not yet attached (links come and go). A link gone,
   * or deleted and made again under its name (a USB NIC plugged in again, a VLAN or veth made
   * again: another ifindex), took our qdisc and filters with it: forgotten, and the new one attached.
   * What `tc` said when a link refused them (undefined: none refused).
   */
  private attachAll(): string | undefined {
    const now = links();
    for (const [dev, index] of this.attached) {
      if (now.includes(dev) && ifindex(dev) === index) continue;
      this.attached.delete(dev);
      this.qdiscs.delete(dev);
    }
    const devs = now.filter((dev) => !this.attached.has(dev) && !this.opts.skipLinks?.includes(dev));
    if (devs.length === 0) return undefined;
    // Read before the attaching: a link made again meanwhile then has another index, and is attached next time.
    const index = new Map(devs.map((dev) => [dev, ifindex(dev)]));
    // Two `tc` processes in the usual case: which links have a clsact qdisc already (someone else's,
    // kept on close), then every qdisc and filter in one batch. When the batch fails somewhere, each
    // link is done again alone to know which one refused.
    const shown = run('tc', ['qdisc', 'show']);
    const hasClsact = (dev: string): boolean => shown.out.split('\n').some((l) => l.startsWith('qdisc clsact ') && l.includes(` dev ${dev} `));
    // Handle ENCAP_HANDLE_OURS on a clsact we add: the mark a start after a crash reads (removeStaleFilters).
    const filter = (dev: string, dir: 'egress' | 'ingress', ours: boolean): string[] => ['filter', 'replace', 'dev', dev, dir, 'pref', String(ENCAP_PREF), 'handle', String(ours ? ENCAP_HANDLE_OURS : ENCAP_HANDLE), 'bpf', 'da', 'object-pinned', `${this.pins}/shim6_${dir}`];
    const fresh = shown.ok ? devs.filter((dev) => !hasClsact(dev)) : [];
    const lines = devs.flatMap((dev) => [...(fresh.includes(dev) ? [['qdisc', 'add', 'dev', dev, 'clsact']] : []), filter(dev, 'egress', fresh.includes(dev)), filter(dev, 'ingress', fresh.includes(dev))]);
    if (shown.ok && run('tc', ['-batch', '-'], lines.map((l) => l.join(' ')).join('\n') + '\n').ok) {
      for (const dev of devs) {
        this.attached.set(dev, index.get(dev)!);
        if (fresh.includes(dev)) this.qdiscs.add(dev);
      }
      return undefined;
    }
    let refused: string | undefined;
    for (const dev of devs) {
      // A link without clsact before the batch got it from the batch, or gets it now: ours either way.
      const qdisc = run('tc', ['qdisc', 'add', 'dev', dev, 'clsact']);
      if (qdisc.ok || fresh.includes(dev)) this.qdiscs.add(dev);
      const egress = run('tc', filter(dev, 'egress', this.qdiscs.has(dev)));
      const ingress = egress.ok ? run('tc', filter(dev, 'ingress', this.qdiscs.has(dev))) : egress;
      if (ingress.ok) this.attached.set(dev, index.get(dev)!);
      else {
        refused = `${dev}: ${(!qdisc.ok && fresh.includes(dev) ? qdisc.err : ingress.err).split('\n')[0]}`;
        if (this.qdiscs.delete(dev)) run('tc', ['qdisc', 'del', 'dev', dev, 'clsact']);
        else removeStaleFilters(dev);
      }
    }
    return refused;
  }

  /** shim6_cfg: the daemon's port (network order), 2 octets of padding, the TUN's ifindex (host order). */
  private writeConfig(): boolean {
    return this.update('shim6_cfg', u32le(0), Uint8Array.from([...be16(this.opts.port), 0, 0, ...u32le(this.tunIfindex)]));
  }

  /** Add or replace a map entry (bpf(2), no process); false when the kernel refused. */
  private update(map: MapName, key: Uint8Array, value: Uint8Array): boolean {
    const fd = this.fds.get(map);
    return fd !== undefined && this.addon.bpfMapUpdate(fd, key, value) === 0;
  }

  /** Delete a map entry (a missing one is no error). */
  private remove(map: MapName, key: Uint8Array): void {
    const fd = this.fds.get(map);
    if (fd !== undefined) this.addon.bpfMapDelete(fd, key);
  }
}
