/**
 * The one typed loader of our N-API addon — the TUN device (tun.c, with the
 * TCP offloads of offload.c), the batched UDP sockets (udp.c) and the systemd
 * notification (notify.c) and the nftables log group reader (nflog.c) — built by `npm install` with node-gyp into
 * native/build. Every user (the data plane's TUN and UDP transport, the
 * resolver's sockets, the service notification, the lab's checks) loads it
 * here, through one interface: no second declaration, no casts. The compiled
 * loader (dist/native/addon.js) finds the same native/build of the package.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { EnvironmentError } from '../shim/errors.ts';
import { packageRoot } from '../shim/runtime-paths.ts';

/** Where node-gyp puts the addon, in the sources and in an installed package alike. */
export const ADDON_PATH = path.join(packageRoot, 'native/build/Release/shim6_tun.node');

/** ICMPv6 error records of udpStartReader (native/udp.h): octets per record, header octets, records per batch. */
export const UDP_ERR_SLOT = 72 + 1280;
export const UDP_ERR_HEAD = 72;
export const UDP_ERR_SLOTS = 16;

/** What the addon exports (the N-API property table at the end of tun.c). */
export interface NativeAddon {
  /** TUN: open /dev/net/tun as `name` (`%d` numbered by the kernel) → [fd, name, offloads on]. */
  open(name: string, offload: boolean): [number, string, boolean];
  startReader(fd: number, buf: ArrayBuffer, slot: number, slots: number, lens: Int32Array,
    cb: (count: number, err: number) => void, vnet: boolean): object;
  close(handle: object): void;
  ref(handle: object, on: boolean): void;
  writeBatch(fd: number, packets: readonly Uint8Array[], count: number, vnet: boolean): number;
  write2(fd: number, head: Uint8Array, body: Uint8Array, vnet: boolean): number;
  /**
   * UDP: a socket on `port` (`bind`: a 16-octet address, else any; `dualStack`
   * for [::]; `shards` joins an SO_REUSEPORT group spread by question name) → [fd, port, GRO on].
   */
  udpOpen(port: number, bufferSize: number, gro: boolean, bind?: Uint8Array, dualStack?: boolean, shards?: number, recvErr?: boolean): [number, number, boolean];
  /**
   * Read datagrams in batches (`cb(count)`, records in `meta`); with `errs`
   * (UDP_ERR_SLOTS × UDP_ERR_SLOT octets) and `errCb`, also drain the error
   * queue of a socket opened with `recvErr` (ICMPv6 errors, layout in udp.h).
   */
  udpStartReader(fd: number, buf: ArrayBuffer, slot: number, slots: number, meta: ArrayBuffer, cb: (count: number) => void,
    errs?: ArrayBuffer, errCb?: (count: number) => void): object;
  udpClose(handle: object): void;
  udpSend(fd: number, arena: ArrayBuffer, meta: ArrayBuffer, count: number, gso?: boolean): number;
  udpRef(handle: object, ref: boolean): void;
  /**
   * Whole IPv6 packets (header included) out through an IPPROTO_RAW socket,
   * routed by the kernel as the host's own → how many were sent (root).
   */
  rawSend(packets: readonly Uint8Array[], count: number): number;
  /**
   * One sd_notify(3) datagram (`state`: newline-separated KEY=value) to the
   * AF_UNIX socket `path` (a file system path, or `@name` in the abstract
   * namespace) → 0, or -errno when it could not be sent.
   */
  notify(path: string, state: string): number;
  /**
   * nftables log group (nflog.c): a netlink socket bound to `group` → fd
   * (throws E<errno>; EBUSY when another program reads the group).
   */
  nflogOpen(group: number, rcvbuf: number): number;
  /** Read it: per wake-up `cb(count, lost)`, `count` records of 34 octets (src 16, dst 16, next header, pad) in `out`. */
  nflogStartReader(fd: number, out: ArrayBuffer, max: number, cb: (count: number, lost: number) => void): object;
  nflogClose(handle: object): void;
  /**
   * bpf(2) on pinned maps (bpfmap.c): open one (BPF_OBJ_GET) → fd or -errno; update (add or
   * replace), delete, lookup (into `out`), the key after `key` (null: the first) → 0 or -errno.
   * Keys and values must have the map's sizes (else -EINVAL); a per-CPU map's value is the value once
   * per possible CPU, each rounded up to 8 octets (as the kernel copies it).
   */
  bpfObjGet(path: string): number;
  bpfMapUpdate(fd: number, key: Uint8Array, value: Uint8Array): number;
  bpfMapDelete(fd: number, key: Uint8Array): number;
  bpfMapLookup(fd: number, key: Uint8Array, out: Uint8Array): number;
  /** A per-CPU map's 64-bit counter summed over the CPUs, or -errno. */
  bpfPercpuSum(fd: number, key: Uint8Array): number;
  bpfMapNextKey(fd: number, key: Uint8Array | null, out: Uint8Array): number;
  bpfClose(fd: number): number;
  /**
   * nf_tables counters over netlink (nftcounters.c): a socket (in the namespace of the
   * /run/netns file `netnsPath`, else this one) → fd or -errno; every counter object of a table
   * → [name, packets, bytes, …] or -errno (a missing table: none), or with `names` only those
   * counters (one request each, no dump; a missing one: -ENOENT); close → 0 or -errno.
   */
  nftCountersOpen(netnsPath: string | null): number;
  nftCountersRead(fd: number, family: number, table: string, names?: string[]): Array<string | number> | number;
  /**
   * A context's two counters and their elements `key` → counter in two maps of `table`, made in
   * one transaction (`add`), or removed one by one (a missing one is not an error) → 0 or -errno.
   * `key`: the maps' 32-octet concatenated key.
   */
  nftCountersBind(fd: number, family: number, table: string, add: boolean, key: Uint8Array, mapA: string, counterA: string, mapB: string, counterB: string): number;
  nftCountersClose(fd: number): number;
  /**
   * rtnetlink (rtnl.c): a NETLINK_ROUTE socket (in the namespace of the /run/netns file
   * `netnsPath`, else this one) → fd or -errno; one request (built by shim/dataplane/rtnetlink.ts,
   * with NLM_F_ACK) and its acknowledgment → the octets of the answer copied into `out` (0: an
   * acknowledgment alone) or -errno; close → 0 or -errno.
   */
  rtnlOpen(netnsPath: string | null): number;
  rtnlTransact(fd: number, request: Uint8Array, out: Uint8Array): number;
  rtnlClose(fd: number): number;
  /**
   * CLOCK_BOOTTIME (clock.c: monotonic, and counts the time the machine was suspended; shim/clock.ts):
   * `read()` puts it, in ms, into the 8-octet `slot` (a Float64Array's one element). One per thread.
   */
  bootClockOpen(): [read: () => void, slot: ArrayBuffer];
  /**
   * A timer on CLOCK_BOOTTIME (clock.c: a timerfd, which the kernel fires at a resume when its time
   * passed during the suspend): `cb()` at the time `bootTimerSet` gives (ms on bootClock; <= 0:
   * disarmed; `ref`: keeps the event loop alive while armed) → 0 or -errno. Closed by bootTimerClose.
   */
  bootTimerOpen(cb: () => void): object;
  bootTimerSet(handle: object, at: number, ref: boolean): number;
  bootTimerClose(handle: object): void;
}

let addon: NativeAddon | undefined;

/** The addon; EnvironmentError ENATIVE when it is not built (or older than this code). */
export function loadAddon(): NativeAddon {
  if (addon) return addon;
  const require = createRequire(import.meta.url);
  let a: NativeAddon;
  try {
    a = require(ADDON_PATH) as NativeAddon;
  } catch (e) {
    throw new EnvironmentError('ENATIVE', `the native addon is not built (run \`npm rebuild -g shim6\` for an installed shim6, \`npm ci\` in a checkout): ${(e as Error).message}`);
  }
  if (typeof a.notify !== 'function' || typeof a.rawSend !== 'function' || typeof a.nftCountersBind !== 'function' || typeof a.bootClockOpen !== 'function' || typeof a.bootTimerOpen !== 'function') throw new EnvironmentError('ENATIVE', 'the native addon is older than this code (run `npm rebuild -g shim6` for an installed shim6, `npm rebuild` in a checkout)');
  addon = a;
  return addon;
}
