/**
 * One DNS message over a fresh TCP connection and one answer back (RFC 7766
 * §8: each message is preceded by a 2-octet length). Connect, write the framed
 * query, collect exactly one framed answer (however the stream splits it), then
 * close; a timeout bounds the whole exchange.
 *
 * Shared by the resolver's TC fallback (resolver/upstream.ts) and the zone
 * tools (zone-tools/dns-transport.ts). It lives under shim/ beside log.ts and
 * errors.ts because both parts already depend on shim/ and neither on the other.
 *
 * This is a driver: it owns one socket and one timer per call and releases both
 * on every path. It must not know what the messages mean: it checks neither ID
 * nor question (each caller validates its own answer) and adds no retries.
 */
import { connect, type Socket } from 'node:net';
import { Shim6Error } from './errors.ts';
import { hostPort } from './log.ts';

/** The largest message the 2-octet length can frame (RFC 7766 §8). */
export const DNS_TCP_MAX_MESSAGE = 0xffff;

/**
 * How a TCP exchange failed: `ETIMEOUT` no whole answer within the time,
 * `ECONNECT` the connection could not be made, `ECLOSED` the server closed or
 * reset it before a whole answer, `ETOOLARGE` the query does not fit the frame.
 */
export type DnsTcpErrorCode = 'ETIMEOUT' | 'ECONNECT' | 'ECLOSED' | 'ETOOLARGE';

/** A failed TCP exchange; `code` says how. */
export class DnsTcpError extends Shim6Error {
  readonly code: DnsTcpErrorCode;
  constructor(code: DnsTcpErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
}

/**
 * Send `query` to `host`:`port` over a new TCP connection and resolve with the
 * first framed message that comes back (its own copy, without the length).
 * Octets after that frame are ignored. Rejects only with DnsTcpError.
 */
export function tcpExchange(host: string, port: number, query: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
  const where = `TCP to ${hostPort(host, port)}`;
  if (query.length > DNS_TCP_MAX_MESSAGE) {
    return Promise.reject(new DnsTcpError('ETOOLARGE', `${where}: a ${query.length}-octet message does not fit the 2-octet length`));
  }
  return new Promise((resolve, reject) => {
    const frame = new Uint8Array(2 + query.length);
    frame[0] = query.length >> 8;
    frame[1] = query.length & 0xff;
    frame.set(query, 2);
    const reader = new FrameReader();
    let connected = false;
    let settled = false;
    let sock: Socket;
    try {
      sock = connect({ host, port });
    } catch (err) { // a port out of range throws at once
      reject(new DnsTcpError('ECONNECT', `${where}: ${(err as Error).message}`, { cause: err }));
      return;
    }
    const finish = (err: DnsTcpError | undefined, answer?: Uint8Array): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err); else resolve(answer!);
    };
    const timer = setTimeout(() => finish(new DnsTcpError('ETIMEOUT', `${where}: no whole answer within ${timeoutMs} ms`)), timeoutMs);
    sock.on('connect', () => { connected = true; sock.write(frame); });
    sock.on('data', (chunk: Buffer) => {
      const answer = reader.push(chunk);
      if (answer) finish(undefined, answer);
    });
    sock.on('error', (err) => finish(connected
      ? new DnsTcpError('ECLOSED', `${where}: connection lost before a whole answer: ${err.message}`, { cause: err })
      : new DnsTcpError('ECONNECT', `${where}: ${err.message}`, { cause: err })));
    // 'close' also covers an 'end' (FIN) with no error; an error before it has already settled.
    sock.on('close', () => finish(new DnsTcpError('ECLOSED', `${where}: closed after ${reader.received} octets, before a whole answer`)));
  });
}

/** Collects stream chunks until one length-prefixed message is complete. */
class FrameReader {
  private head = new Uint8Array(2);
  private body: Uint8Array | undefined;
  /** Octets taken so far (length prefix included). */
  received = 0;

  /** Returns the message once whole; later octets in `chunk` are dropped. */
  push(chunk: Uint8Array): Uint8Array | undefined {
    let at = 0;
    while (this.received < 2 && at < chunk.length) this.head[this.received++] = chunk[at++]!;
    if (this.received < 2) return undefined;
    this.body ??= new Uint8Array((this.head[0]! << 8) | this.head[1]!);
    const filled = this.received - 2;
    const take = Math.min(this.body.length - filled, chunk.length - at);
    this.body.set(chunk.subarray(at, at + take), filled);
    this.received += take;
    return this.received - 2 === this.body.length ? this.body : undefined;
  }
}
