/**
 * The TUN device as the driver sees it (wireguard-go `tun.Device` style): a
 * name, an MTU, batches of packets in, batches out. Two implementations share
 * one compliance suite (test/dataplane/tun-compliance.ts): the real Linux TUN
 * (tun-linux.ts, native addon) and the in-memory twin below.
 *
 * Must not know: Shim6, UDP, routes.
 */

/** Receives one batch. The views are valid only during the call (buffers are reused). */
export type PacketsHandler = (packets: readonly Uint8Array[]) => void;

export interface TunDevice {
  /** Interface name the kernel gave it. */
  readonly name: string;
  /** MTU the device was set up with (the largest packet `write` accepts). */
  readonly mtu: number;
  /** Set the one receiver of packets the kernel routes into the device. */
  onPackets(cb: PacketsHandler): void;
  /** Hand packets to the kernel, as if they arrived on the device. Returns how many went out. */
  write(packets: readonly Uint8Array[]): number;
  /** Hand one packet made of a header and a body (no copy into one buffer). */
  write2(head: Uint8Array, body: Uint8Array): boolean;
  /** Stop reading, release the device. Idempotent. */
  close(): Promise<void>;
}

/**
 * The in-memory twin. The "kernel side" is `inject` (a packet the kernel
 * routes into the device) and `written` / `onWrite` (packets we handed back).
 * Like the real device it delivers asynchronously, in batches, and copies
 * packets (so callers may reuse their buffers).
 */
export class MemoryTun implements TunDevice {
  readonly written: Uint8Array[] = [];
  private handler: PacketsHandler | undefined;
  private queue: Uint8Array[] = [];
  private scheduled = false;
  private closed = false;
  private writeListener: ((p: Uint8Array) => void) | undefined;

  constructor(readonly name = 'memtun0', readonly mtu = 1400) {}

  onPackets(cb: PacketsHandler): void {
    this.handler = cb;
  }

  write(packets: readonly Uint8Array[]): number {
    if (this.closed) return 0;
    let n = 0;
    for (const p of packets) {
      this.deliverToKernel(p.slice());
      n++;
    }
    return n;
  }

  write2(head: Uint8Array, body: Uint8Array): boolean {
    if (this.closed) return false;
    const p = new Uint8Array(head.length + body.length);
    p.set(head);
    p.set(body, head.length);
    this.deliverToKernel(p);
    return true;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.queue = [];
  }

  /** Kernel side: a packet routed into the device. */
  inject(packet: Uint8Array): void {
    if (this.closed) return;
    this.queue.push(packet.slice());
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      const batch = this.queue;
      this.queue = [];
      if (!this.closed && batch.length > 0) this.handler?.(batch);
    });
  }

  /** Kernel side: be told of each packet written to the device. */
  onWrite(cb: (p: Uint8Array) => void): void {
    this.writeListener = cb;
  }

  private deliverToKernel(p: Uint8Array): void {
    this.written.push(p);
    this.writeListener?.(p);
  }
}
