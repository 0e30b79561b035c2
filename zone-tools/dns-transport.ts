/**
 * Sending one DNS message to a server and getting the answer: UDP with a
 * bounded number of tries, TCP (RFC 7766 two-octet framing) when the message
 * is large or the UDP answer is truncated, or when asked (the TCP exchange
 * itself is shim/dns-tcp.ts, shared with the resolver).
 *
 * Owns: sockets and timeouts for the zone tools' queries and updates, the
 * `ADDR[:PORT]` server syntax, and looking up a server given by name. Must not
 * know: what the messages mean.
 */
import { createSocket } from 'node:dgram';
import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { Shim6Error, UsageError } from '../shim/errors.ts';
import { tcpExchange, type DnsTcpError } from '../shim/dns-tcp.ts';
import { FLAG_TC } from './dns-message.ts';
import { hostPort } from '../shim/log.ts';
import { canonicalIpv6 } from '../shim/wire/ipv6.ts';

export interface ServerAddress {
  host: string;
  port: number;
}

/** `127.0.0.1`, `127.0.0.1:5353`, `::1`, `[::1]:5353`, `ns.example:53`. Throws UsageError naming `field`. */
export function parseServer(text: string, field = 'server'): ServerAddress {
  const bad = (why: string): never => {
    throw new UsageError('EINVALID', `${field}: invalid value ${JSON.stringify(text)}: ${why}`, field);
  };
  let host = text;
  let portText: string | undefined;
  const br = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  if (br) {
    host = br[1]!;
    portText = br[2];
  } else if (isIP(text) === 6) {
    host = text;
  } else {
    const i = text.lastIndexOf(':');
    if (i >= 0) { host = text.slice(0, i); portText = text.slice(i + 1); }
  }
  if (host.length === 0) bad('no address');
  if (isIP(host) === 0 && !/^[A-Za-z0-9.-]+$/.test(host)) bad('not an address or host name (use [v6addr]:port for a port with IPv6)');
  let port = 53;
  if (portText !== undefined) {
    if (!/^\d{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) bad('port must be 1..65535');
    port = Number(portText);
  }
  return { host, port };
}

/** A network failure talking to the server (timeout, connection refused, a server name with no address). */
export class TransportError extends Shim6Error {
  readonly code: 'ETIMEOUT' | 'ESOCKET' | 'ESEND' | 'ECONNECT' | 'ECLOSED' | 'ETOOLARGE' | 'ERESOLVE';
  /**
   * The message may have reached the server before the failure (a datagram was sent, a
   * truncated UDP answer came back, a TCP connection was made or may have been): for an
   * update, the server may have applied it. False only when nothing can have arrived.
   */
  readonly mayHaveArrived: boolean;
  constructor(code: TransportError['code'], message: string, mayHaveArrived = false) {
    super(message);
    this.code = code;
    this.mayHaveArrived = mayHaveArrived;
  }
}

export interface ExchangeOptions {
  /** Per-try timeout in ms (default 2000). */
  timeoutMs?: number;
  /** UDP tries (default 3). */
  tries?: number;
  /** Use TCP from the start. */
  tcp?: boolean;
}

/** UDP messages above this go over TCP (RFC 1035 §4.2.1 size without EDNS). */
const UDP_LIMIT = 512;

/**
 * Send `message`, return the answer (matched on ID). A server given by name is
 * looked up once (node:dns lookup, the system's resolver: /etc/hosts, then DNS),
 * and that one address is asked, over UDP and TCP alike, and is the only source
 * an answer is taken from; an address is used as it is, with no lookup.
 */
export async function exchange(server: ServerAddress, message: Uint8Array, opts: ExchangeOptions = {}): Promise<Uint8Array> {
  const udpTimeout = opts.timeoutMs ?? 2000;
  const tries = opts.tries ?? 3;
  const to = await resolveServer(server, udpTimeout * tries);
  if (opts.tcp || message.length > UDP_LIMIT) return exchangeTcp(to, message, opts.timeoutMs ?? 5000, false);
  const answer = await exchangeUdp(to, message, udpTimeout, tries);
  // A truncated answer is the server's answer to the message: it arrived, whatever TCP does next.
  if ((((answer[2]! << 8) | answer[3]!) & FLAG_TC) !== 0) return exchangeTcp(to, message, opts.timeoutMs ?? 5000, true);
  return answer;
}

/** The server's address to send to, and how to name it in messages (`ns.example (192.0.2.53):53`). */
interface Target {
  address: string;
  port: number;
  where: string;
}

/** A name looked up once (at most `timeoutMs`); an address as it is. ERESOLVE when the name has no address. */
async function resolveServer(server: ServerAddress, timeoutMs: number): Promise<Target> {
  if (isIP(server.host) !== 0) return { address: server.host, port: server.port, where: hostPort(server.host, server.port) };
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no address within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    const { address } = await Promise.race([dnsLookup(server.host), late]);
    return { address, port: server.port, where: `${server.host} (${hostPort(address, server.port)})` };
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code === 'ENOTFOUND' ? 'no such host' : (e as Error).message;
    throw new TransportError('ERESOLVE', `cannot resolve the server name ${JSON.stringify(server.host)}: ${why}; nothing was sent`);
  } finally {
    clearTimeout(timer);
  }
}

function exchangeUdp(to: Target, message: Uint8Array, timeoutMs: number, tries: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const sock = createSocket(isIP(to.address) === 6 ? 'udp6' : 'udp4');
    let attempt = 0;
    /** Datagrams handed to the kernel: any of them may reach the server. */
    let sent = 0;
    let timer: NodeJS.Timeout | undefined;
    const done = (err: Error | undefined, value?: Uint8Array): void => {
      if (timer) clearTimeout(timer);
      sock.close();
      if (err) reject(err); else resolve(value!);
    };
    const send = (): void => {
      attempt += 1;
      sock.send(message, to.port, to.address, (err) => {
        if (err) done(new TransportError('ESEND', `cannot send to ${to.where}: ${err.message}`, sent > 0));
        else sent += 1;
      });
      timer = setTimeout(() => {
        if (attempt >= tries) done(new TransportError('ETIMEOUT', `no answer from ${to.where} after ${tries} tries of ${timeoutMs} ms`, sent > 0));
        else send();
      }, timeoutMs);
    };
    // The answer must come from the server asked, to the ID asked (RFC 5452 §9.1): anyone else's datagram is dropped.
    const from = canonical(to.address);
    sock.on('message', (msg, rinfo) => {
      if (rinfo.port !== to.port || canonical(rinfo.address) !== from) return;
      if (msg.length >= 12 && msg[0] === message[0] && msg[1] === message[1]) done(undefined, new Uint8Array(msg));
    });
    sock.on('error', (err) => done(new TransportError('ESOCKET', `${to.where}: ${err.message}`, sent > 0)));
    send();
  });
}

/** An address as one text per address (IPv6 in RFC 5952 form), to compare a datagram's source with the server. */
function canonical(address: string): string {
  return isIP(address) === 6 ? canonicalIpv6(address) : address;
}

/**
 * RFC 7766 §8 framing through shim/dns-tcp.ts; its codes (ETIMEOUT, ECONNECT, ECLOSED, ETOOLARGE)
 * are kept. `arrived`: the message already reached the server (over UDP, answered with TC).
 * Over TCP it may have arrived unless the connection was refused or it was too large to frame
 * (a timeout may come after the connection and the message).
 */
async function exchangeTcp(to: Target, message: Uint8Array, timeoutMs: number, arrived: boolean): Promise<Uint8Array> {
  try {
    return await tcpExchange(to.address, to.port, message, timeoutMs);
  } catch (e) {
    const err = e as DnsTcpError;
    const overTcp = err.code === 'ETIMEOUT' || err.code === 'ECLOSED';
    const was = arrived ? ` (after a truncated UDP answer from ${to.where}: the server got the message)` : '';
    throw new TransportError(err.code, `${err.message}${was}`, arrived || overTcp);
  }
}
