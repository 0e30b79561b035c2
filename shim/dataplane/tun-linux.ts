/**
 * The real Linux TUN device through our N-API addon (native/tun.c, loaded by native/addon.ts): the addon
 * opens /dev/net/tun (IFF_TUN | IFF_NO_PI), polls the non-blocking fd on
 * Node's own libuv loop and hands each batch of packets to JS in one call,
 * into buffers preallocated here. Setting the MTU and the link up is done
 * with iproute2 (routes.ts), not here.
 *
 * Why not fs/net: see docs/dataplane.md ("TUN access, by measurement").
 */
import { loadAddon, type NativeAddon } from '../../native/addon.ts';
import { EnvironmentError } from '../errors.ts';
import { closeSync, existsSync, readFileSync } from 'node:fs';
import type { PacketsHandler, TunDevice } from './tun.ts';

/** IFF_PERSIST, IFF_TAP, IFF_MULTI_QUEUE in /sys/class/net/NAME/tun_flags (linux/if_tun.h). */
const IFF_PERSIST = 0x0800;
const IFF_TAP = 0x0002;
const IFF_MULTI_QUEUE = 0x0100;
/** IFF_UP in /sys/class/net/NAME/flags (linux/if.h). */
const IFF_UP = 0x1;

/**
 * Why a TUNSETIFF failed when the name is taken by a link of another kind (a veth, an Ethernet
 * link): the kernel only says "Invalid argument". A TUN link has /sys/class/net/NAME/tun_flags.
 */
function notTun(name: string): string {
  if (!/^[\w.-]{1,15}$/.test(name) || !existsSync(`/sys/class/net/${name}`)) return '';
  let flags: number;
  try { flags = Number.parseInt(readFileSync(`/sys/class/net/${name}/tun_flags`, 'utf8'), 16); } catch {
    return ` (${name} exists and is not a TUN device: choose another tun.name)`;
  }
  // A persistent device of another kind (ip tuntap add): TUNSETIFF says only "Invalid argument".
  if ((flags & IFF_TAP) !== 0) return ` (${name} is a TAP device, not a TUN: choose another tun.name)`;
  if ((flags & IFF_MULTI_QUEUE) !== 0) return ` (${name} is a multi-queue TUN device (ip tuntap add … multi_queue): remove it or choose another tun.name)`;
  return ' (a TUN of that name exists: another process holds it)';
}

/** What the daemon changes on its TUN link (routes.ts `setup`): its MTU and whether it is up (IFF_UP). */
export interface TunLinkSettings {
  mtu: number;
  up: boolean;
}

/**
 * A persistent TUN device of this name made before us (`ip tuntap add`): the kernel keeps it when
 * its last fd closes, so it outlives every daemon. Undefined when there is none (the kernel then
 * makes one that goes with our fd). `owner`/`group`: who besides root may open it (-1: nobody);
 * `link`: its MTU and up flag as found, for the stop to put back (undefined when unreadable).
 */
export function persistentTun(name: string): { owner: number; group: number; link: TunLinkSettings | undefined } | undefined {
  if (!/^[\w.-]{1,15}$/.test(name)) return undefined;
  const read = (f: string): string | undefined => {
    try { return readFileSync(`/sys/class/net/${name}/${f}`, 'utf8').trim(); } catch { return undefined; }
  };
  const flags = read('tun_flags');
  if (flags === undefined || (Number.parseInt(flags, 16) & IFF_PERSIST) === 0) return undefined;
  const mtu = Number(read('mtu'));
  const flags2 = Number.parseInt(read('flags') ?? '', 16);
  const link = Number.isInteger(mtu) && mtu > 0 && Number.isInteger(flags2) ? { mtu, up: (flags2 & IFF_UP) !== 0 } : undefined;
  return { owner: Number(read('owner') ?? -1), group: Number(read('group') ?? -1), link };
}

/** Options of a real TUN device. */
export interface LinuxTunOptions {
  /** Interface name; `%d` lets the kernel number it. */
  name: string;
  /** The MTU the caller configures on the link (used to size read buffers). */
  mtu: number;
  /** Packets per batch (one JS call per batch). */
  batch?: number;
  /**
   * TUN offloads (IFF_VNET_HDR, TSO6 + CSUM; default on): the kernel's TCP
   * hands us 64 KB segments that the addon cuts into MTU-sized packets, and
   * runs of in-order segments we write are merged into one (GRO), so the
   * kernel's TCP does per-64 KB work instead of per-packet. Packets seen by
   * JS are always ordinary MTU-sized IPv6 packets either way.
   */
  offload?: boolean;
}

/** A real TUN device. Create with `LinuxTun.open`. */
export class LinuxTun implements TunDevice {
  private handle: object | undefined;
  private handler: PacketsHandler = () => {};
  private readonly views: Uint8Array[];
  private readonly batchViews: Uint8Array[][] = [];
  private closed = false;

  private constructor(private readonly native: NativeAddon, private readonly fd: number, readonly name: string, readonly mtu: number, batch: number,
    /** Whether the device runs with the virtio header (offloads). */
    readonly offload: boolean,
    /** A persistent device made before us (persistentTun): it stays when we close it. */
    readonly persistent: boolean,
    /** A persistent device's MTU and up flag as found before we changed them: the stop puts them back. */
    readonly linkBefore: TunLinkSettings | undefined) {
    // One slot per packet, big enough for any packet the MTU allows (the kernel
    // never hands out more than the MTU without IFF_VNET_HDR offloads).
    const slot = Math.max(1280, mtu) + 64;
    const buf = new ArrayBuffer(slot * batch);
    const lens = new Int32Array(batch);
    this.views = [];
    for (let i = 0; i < batch; i++) this.views.push(new Uint8Array(buf, i * slot, slot));
    this.handle = native.startReader(fd, buf, slot, batch, lens, (count, err) => {
      if (err !== 0 || count === 0) return;
      let out = this.batchViews[count];
      if (!out) out = this.batchViews[count] = new Array<Uint8Array>(count);
      for (let i = 0; i < count; i++) out[i] = this.views[i]!.subarray(0, lens[i]!);
      this.handler(out);
    }, offload);
  }

  /** Open (or create) the TUN interface `opts.name`. Needs CAP_NET_ADMIN. */
  static open(opts: LinuxTunOptions): LinuxTun {
    const native = loadAddon();
    // A persistent device another user may open (`ip tuntap add … user U`) would give that user
    // whatever is routed into it whenever we do not hold it: after a crash, until the next start.
    const persistent = persistentTun(opts.name);
    if (persistent !== undefined && (![-1, 0].includes(persistent.owner) || ![-1, 0].includes(persistent.group))) {
      const who = [persistent.owner >= 0 && persistent.owner !== 0 ? `uid ${persistent.owner}` : '', persistent.group >= 0 && persistent.group !== 0 ? `gid ${persistent.group}` : ''].filter(Boolean).join(' and ');
      throw new EnvironmentError('ETUNOPEN', `cannot use TUN ${opts.name}: it is a persistent TUN device that ${who} may open too (ip tuntap add … user/group): remove it (ip tuntap del ${opts.name} mode tun) or choose another tun.name`);
    }
    let fd: number, name: string, vnet: boolean;
    try {
      [fd, name, vnet] = native.open(opts.name, opts.offload ?? true);
    } catch (e) {
      const err = e as Error & { code?: string };
      throw new EnvironmentError('ETUNOPEN', `cannot open TUN ${opts.name}: ${err.message}${notTun(opts.name)}`);
    }
    return new LinuxTun(native, fd, name, opts.mtu, opts.batch ?? 64, vnet, persistent !== undefined, persistent?.link);
  }

  onPackets(cb: PacketsHandler): void {
    this.handler = cb;
  }

  write(packets: readonly Uint8Array[]): number {
    if (this.closed || packets.length === 0) return 0;
    const n = this.native.writeBatch(this.fd, packets, packets.length, this.offload);
    return n < 0 ? 0 : n;
  }

  write2(head: Uint8Array, body: Uint8Array): boolean {
    if (this.closed) return false;
    return this.native.write2(this.fd, head, body, this.offload) > 0;
  }

  /** Whether the device keeps the process alive (like socket.ref/unref). */
  ref(on: boolean): void {
    if (this.handle) this.native.ref(this.handle, on);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.handle) this.native.close(this.handle);
    this.handle = undefined;
    // The fd is closed by libuv's close callback; give it one loop turn.
    await new Promise((r) => setImmediate(r));
    if (this.persistent && this.offload) this.dropOffloads();
  }

  /**
   * A persistent device keeps the IFF_VNET_HDR flag and the offloads (TSO, checksum) we set
   * (TUNSETIFF, TUNSETOFFLOAD) once we close it: its next user, opening it without a virtio
   * header, would keep TSO and checksum offloads on. Attached once more without them (and closed), the
   * device has neither again, as `ip tuntap add` made it. Best effort: a device another process
   * took meanwhile is left alone (EBUSY).
   */
  private dropOffloads(): void {
    try {
      const [fd] = this.native.open(this.name, false);
      closeSync(fd);
    } catch { /* taken by another process, or gone */ }
  }
}
