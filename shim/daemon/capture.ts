/**
 * `shim6 pcap --live`: the daemon records the Shim6 control messages it sends
 * and receives over UDP (and, when asked, the payload headers with the first
 * octets of what they carry) as a pcap file (LINKTYPE_RAW: each record an
 * IPv6 packet with a UDP header, built from the real locators and ports), for
 * tshark and Wireshark (contrib/wireshark/shim6-udp.lua decodes the UDP
 * encapsulation). One capture at a time, bounded in time and octets, and
 * never longer than the control connection that asked for it; while none
 * runs, the driver's tap is unset and the packet path does not know.
 */
import { IPV6_HEADER_LENGTH, UDP_HEADER_LENGTH } from '../constants.ts';
import { parseIpv6, type Ipv6 } from '../wire/ipv6.ts';
import { PCAP_RECORD_HEADER, pcapFileHeader, pcapRecordHeader } from '../wire/pcap.ts';
import { ControlError } from './control/client.ts';
import type { ControlMethod } from './control/server.ts';
import type { PacketTap } from '../dataplane/engine-driver.ts';
import type { Logger } from '../log.ts';

import { DEFAULT_CAPTURE_BYTES, DEFAULT_CAPTURE_SECONDS, MAX_CAPTURE_BYTES, MAX_CAPTURE_SECONDS } from './capture-limits.ts';

export { DEFAULT_CAPTURE_BYTES, DEFAULT_CAPTURE_SECONDS, MAX_CAPTURE_BYTES, MAX_CAPTURE_SECONDS } from './capture-limits.ts';
/** Octets of the upper-layer packet kept after a payload header (enough for TCP's header with options). */
export const PAYLOAD_SNAP = 96;



export interface CaptureParams {
  seconds: number;
  maxBytes: number;
  payload: boolean;
}

export interface CaptureResult {
  /** The pcap file, base64. */
  pcap: string;
  packets: number;
  bytes: number;
  /** Why it ended: time up, asked to stop, the octet bound reached, or the client that asked is gone (nobody reads this one). */
  ended: 'time' | 'stopped' | 'max-bytes' | 'client-gone';
}

/** Read and check the control request's params (hostile input: typed errors, bounds). */
export function captureParams(p: Record<string, unknown>): CaptureParams {
  const num = (k: string, d: number, max: number): number => {
    const v = p[k] ?? d;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > max) throw new ControlError('EPARAMS', `${k}: expected an integer in 1..${max}`);
    return v;
  };
  const payload = p.payload ?? false;
  if (typeof payload !== 'boolean') throw new ControlError('EPARAMS', 'payload: expected true or false');
  return { seconds: num('seconds', DEFAULT_CAPTURE_SECONDS, MAX_CAPTURE_SECONDS), maxBytes: num('maxBytes', DEFAULT_CAPTURE_BYTES, MAX_CAPTURE_BYTES), payload };
}

/**
 * The one capture of a daemon: `start` installs the tap through `setTap` and
 * resolves with the file when it ends. With `clientGone` (the control
 * connection's signal), it ends when that fires: a `shim6 pcap --live` killed
 * without sending `capture-stop` frees the tap, the records and the slot.
 */
export class LiveCapture {
  private running: { stop: (why: CaptureResult['ended']) => void } | undefined;

  constructor(private readonly setTap: (tap: PacketTap | undefined) => void, private readonly localPort: () => number,
    private readonly log?: Logger, private readonly clock: () => number = Date.now) {}

  get busy(): boolean { return this.running !== undefined; }

  start(params: CaptureParams, clientGone?: AbortSignal): Promise<CaptureResult> {
    if (this.running) return Promise.reject(new ControlError('ECAPTURE_BUSY', 'a capture is running already (one at a time; `shim6 pcap --stop` ends it)'));
    // Asked by a client already gone: nothing to start, nobody to answer.
    if (clientGone?.aborted) return Promise.resolve({ pcap: Buffer.from(pcapFileHeader()).toString('base64'), packets: 0, bytes: 24, ended: 'client-gone' });
    const records: Uint8Array[] = [];
    let bytes = 24;
    return new Promise<CaptureResult>((resolve) => {
      let full = false;
      const tap: PacketTap = (dir, local, peer, peerPort, head, rest) => {
        if (full) return;
        const isPayload = head.length >= 3 && (head[2]! & 0x80) !== 0;
        if (isPayload && !params.payload) return;
        const rec = record(this.clock(), dir, local, this.localPort(), peer, peerPort, head, rest, isPayload ? PAYLOAD_SNAP : Infinity);
        if (bytes + rec.length > params.maxBytes) { full = true; setImmediate(() => stop('max-bytes')); return; }
        records.push(rec);
        bytes += rec.length;
      };
      const timer = setTimeout(() => stop('time'), params.seconds * 1000);
      timer.unref(); // a capture never keeps a stopping process alive
      const onGone = (): void => stop('client-gone');
      const stop = (ended: CaptureResult['ended']): void => {
        if (this.running !== handle) return;
        this.running = undefined;
        clearTimeout(timer);
        clientGone?.removeEventListener('abort', onGone);
        this.setTap(undefined);
        this.log?.info('capture ended', { ended, packets: records.length, bytes });
        const file = new Uint8Array(bytes);
        file.set(pcapFileHeader(), 0);
        let off = 24;
        for (const r of records) { file.set(r, off); off += r.length; }
        resolve({ pcap: Buffer.from(file.buffer, file.byteOffset, file.byteLength).toString('base64'), packets: records.length, bytes, ended });
      };
      const handle = { stop };
      this.running = handle;
      clientGone?.addEventListener('abort', onGone, { once: true });
      this.setTap(tap);
      this.log?.info('capture started', { seconds: params.seconds, maxBytes: params.maxBytes, payload: params.payload });
    });
  }

  /** End the running capture now (its `start` resolves); false when none runs. */
  stop(): boolean {
    if (!this.running) return false;
    this.running.stop('stopped');
    return true;
  }
}

/**
 * One pcap record: an IPv6 header (Next Header UDP) and a UDP header around
 * the Shim6 octets (`head` then `rest`), the UDP checksum over the whole
 * datagram (RFC 8200 §8.1), the record cut after `snap` octets of Shim6 data.
 */
export function record(nowMs: number, dir: 'in' | 'out', local: Ipv6, localPort: number, peer: Ipv6, peerPort: number, head: Uint8Array, rest: Uint8Array | undefined, snap: number): Uint8Array {
  const dataLen = head.length + (rest?.length ?? 0);
  const udpLen = UDP_HEADER_LENGTH + dataLen;
  const src = parseIpv6(dir === 'out' ? local : peer);
  const dst = parseIpv6(dir === 'out' ? peer : local);
  const sport = dir === 'out' ? localPort : peerPort;
  const dport = dir === 'out' ? peerPort : localPort;
  const kept = Math.min(dataLen, snap);
  const origLen = IPV6_HEADER_LENGTH + udpLen;
  const capLen = IPV6_HEADER_LENGTH + UDP_HEADER_LENGTH + kept;
  const out = new Uint8Array(PCAP_RECORD_HEADER + capLen);
  const v = new DataView(out.buffer);
  out.set(pcapRecordHeader(Math.round(nowMs * 1000), capLen, origLen), 0);
  const ip = PCAP_RECORD_HEADER;
  v.setUint32(ip, 0x6000_0000);
  v.setUint16(ip + 4, udpLen > 0xffff ? 0 : udpLen);
  out[ip + 6] = 17;
  out[ip + 7] = 64;
  out.set(src, ip + 8);
  out.set(dst, ip + 24);
  const udp = ip + IPV6_HEADER_LENGTH;
  v.setUint16(udp, sport);
  v.setUint16(udp + 2, dport);
  v.setUint16(udp + 4, udpLen > 0xffff ? 0 : udpLen);
  v.setUint16(udp + 6, udpChecksum(src, dst, sport, dport, udpLen, head, rest));
  const data = udp + UDP_HEADER_LENGTH;
  const fromHead = Math.min(head.length, kept);
  out.set(head.subarray(0, fromHead), data);
  if (rest && kept > fromHead) out.set(rest.subarray(0, kept - fromHead), data + fromHead);
  return out;
}

/** The UDP checksum over the IPv6 pseudo-header and the datagram (0 is sent as 0xffff). */
function udpChecksum(src: Uint8Array, dst: Uint8Array, sport: number, dport: number, udpLen: number, head: Uint8Array, rest: Uint8Array | undefined): number {
  let sum = 0;
  const add16 = (b: Uint8Array): void => {
    for (let i = 0; i + 1 < b.length; i += 2) sum += (b[i]! << 8) | b[i + 1]!;
  };
  add16(src);
  add16(dst);
  sum += (udpLen >>> 16) + (udpLen & 0xffff) + 17;
  sum += sport + dport + udpLen;
  // The data as one stream: an odd-length head shifts the pairing of `rest`.
  const data = rest && rest.length ? concat(head, rest) : head;
  add16(data);
  if (data.length % 2 === 1) sum += data[data.length - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  const c = ~sum & 0xffff;
  return c === 0 ? 0xffff : c;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/**
 * The control socket's methods for a capture: `capture` (params: seconds,
 * maxBytes, payload; it ends when its connection closes) and `capture-stop`.
 */
export function captureMethods(capture: LiveCapture): Record<string, ControlMethod> {
  return {
    capture: (params, ctx) => capture.start(captureParams(params), ctx.clientGone),
    'capture-stop': () => ({ stopped: capture.stop() }),
  };
}
