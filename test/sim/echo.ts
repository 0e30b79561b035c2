/**
 * EchoEndpoint: a trivial stand-in with the Engine's sans-I/O surface, used to
 * test the simulator itself (not shim6). `ping()` sends PING to a peer locator
 * and retransmits on a timer, moving to the next locator pair on each retry; a
 * PING is answered with PONG on the reversed pair; a payload "header" is 8
 * octets (0xEE, nextHeader, 6 zeros) and the ULIDs are the locators.
 */
import { ms, type Millis } from '../../shim/time.ts';
import type { AppPacket, Datagram, EncapsulateResult, EndpointEvent, HandleResult, Ipv6, SimEndpoint } from './endpoint.ts';

const enc = new TextEncoder();
const dec = new TextDecoder();
const MARK = 0xee;

export class EchoEndpoint implements SimEndpoint {
  readonly #out: Datagram[] = [];
  readonly #events: EndpointEvent[] = [];
  #pending: { nonce: number; peers: Ipv6[]; attempt: number; deadline: Millis } | undefined;
  #nonce = 0;
  /** A broken endpoint for tests: when set, it reports every payload with swapped ULIDs. */
  swapUlids = false;
  /** A broken endpoint for tests: when set, its timer never advances (always due). */
  stuckTimer = false;

  constructor(readonly locators: readonly Ipv6[], readonly opts: { retryTimeout: Millis; retries: number } = { retryTimeout: ms(100), retries: 3 }) {}

  /** Send PING to `peers[0]`, retrying on the next pairs. */
  ping(now: Millis, peers: Ipv6[]): number {
    const nonce = ++this.#nonce;
    this.#pending = { nonce, peers, attempt: 0, deadline: ms(now + this.opts.retryTimeout) };
    this.#sendPing();
    return nonce;
  }

  #sendPing(): void {
    const p = this.#pending!;
    const src = this.locators[p.attempt % this.locators.length]!;
    const dst = p.peers[Math.floor(p.attempt / this.locators.length) % p.peers.length]!;
    this.#out.push({ src, dst, bytes: enc.encode(`PING|${p.nonce}`) });
  }

  handleDatagram(_now: Millis, d: Datagram): HandleResult {
    if (d.bytes[0] === MARK && d.bytes.length >= 8) {
      const srcUlid = this.swapUlids ? d.dst : d.src;
      const dstUlid = this.swapUlids ? d.src : d.dst;
      return { kind: 'payload', srcUlid, dstUlid, nextHeader: d.bytes[1]!, payload: d.bytes.subarray(8) };
    }
    const [kind, n] = dec.decode(d.bytes).split('|');
    if (kind === 'PING') {
      this.#out.push({ src: d.dst, dst: d.src, bytes: enc.encode(`PONG|${n}`) });
      return { kind: 'consumed' };
    }
    if (kind === 'PONG' && this.#pending && Number(n) === this.#pending.nonce) {
      this.#events.push({ kind: 'pong', nonce: this.#pending.nonce, attempt: this.#pending.attempt, src: d.dst, dst: d.src });
      this.#pending = undefined;
      return { kind: 'consumed' };
    }
    return { kind: 'drop', reason: 'unexpected' };
  }

  encapsulate(_now: Millis, p: AppPacket): EncapsulateResult {
    if (!this.locators.includes(p.srcUlid)) return { kind: 'no-context' };
    const header = new Uint8Array(8);
    header[0] = MARK;
    header[1] = p.nextHeader;
    return { kind: 'send', src: p.srcUlid, dst: p.dstUlid, header };
  }

  handleTimeout(now: Millis): void {
    const p = this.#pending;
    if (!p || now < p.deadline) return;
    if (p.attempt >= this.opts.retries) {
      this.#events.push({ kind: 'ping-failed', nonce: p.nonce });
      this.#pending = undefined;
      return;
    }
    p.attempt++;
    p.deadline = ms(now + this.opts.retryTimeout);
    this.#sendPing();
  }

  pollTransmit(): Datagram | undefined {
    return this.#out.shift();
  }

  pollTimeout(): Millis | undefined {
    if (this.stuckTimer) return ms(0);
    return this.#pending?.deadline;
  }

  pollEvent(): EndpointEvent | undefined {
    return this.#events.shift();
  }
}
