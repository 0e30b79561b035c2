/**
 * The stub's listeners: UDP and TCP on each configured address. TCP
 * connections, their framing and their bounds are tcp-listener.ts's.
 *
 * The listener parses the question (malformed → FORMERR, not a query → drop),
 * runs the chain, and gives the answer its last per-client fix-ups. Nothing a
 * client sends may throw out of here. It must not know what the stages do.
 */
import type { Millis } from '../shim/time.ts';
import type { Logger } from '../shim/log.ts';
import { WireError } from '../shim/wire/errors.ts';
import type { Answer, Handler, Request } from './chain.ts';
import { nameKeyToText, parseQuery, Rcode, type ParsedQuery } from './message.ts';
import { errorResponse, finishForClient, pooledCopy, truncatedResponse } from './answer-build.ts';
import type { ResolverCounters } from './counters.ts';
import { Endpoint, openDnsUdp, type DnsUdpSocket, type UdpBackend } from './udp-socket.ts';
import { DEFAULT_TCP_OPTIONS, TcpConnections, type TcpOptions } from './tcp-listener.ts';
import { ClientAcl, isLoopbackHost } from './client-acl.ts';

/** At most one `client not allowed` warning per this many ms (a scan must not flood the log). */
const NOT_ALLOWED_LOG_MS = 60_000;

export interface ListenAddr { host: string; port: number }

export interface ListenerOptions {
  tcp: TcpOptions;
  /**
   * Who may ask on a listener bound to a non-loopback address, besides loopback: prefixes
   * (client-acl.ts). Plain data: the configuration crosses to the resolver threads.
   */
  allow: readonly string[];
}

/**
 * Socket buffers asked for on the UDP listener: a burst of queries must not be
 * dropped by the kernel while the event loop is busy (the kernel caps it at
 * net.core.rmem_max / wmem_max unless we are root on the native backend).
 */
export const UDP_SOCKET_BUFFER = 4 * 1024 * 1024;

/** Largest UDP query read (RFC 6891 allows 65,535; a real query is a few hundred octets at most). */
const MAX_UDP_QUERY = 4096;

export const DEFAULT_LISTENER_OPTIONS: ListenerOptions = { tcp: DEFAULT_TCP_OPTIONS, allow: [] };

/** Called after an answer was handed to the socket (tests use it to order events). */
export type AnswerHook = (q: ParsedQuery, answer: Answer, transport: 'udp' | 'tcp') => void;

/** Where an answer goes: `send` zero or one time, then `done` exactly once. */
export interface Reply {
  send(out: Uint8Array): void;
  done(): void;
  /** The client's address, for the query log. */
  peer(): string;
}

/**
 * The UDP reply target; a class, not a closure, so the hot path allocates one
 * small object: it holds the client's address itself (no Endpoint copy).
 */
class UdpReply extends Endpoint implements Reply {
  constructor(private readonly sock: DnsUdpSocket, from: Endpoint) {
    super();
    this.w0 = from.w0; this.w1 = from.w1; this.w2 = from.w2; this.w3 = from.w3; this.port = from.port; this.host = from.host;
    this.l0 = from.l0; this.l1 = from.l1; this.l2 = from.l2; this.l3 = from.l3; // the answer leaves from the address asked
  }
  send(out: Uint8Array): void {
    this.sock.send(out, this);
  }
  done(): void { /* nothing to release */ }
  peer(): string { return this.text(); }
}

/** The query's parse whatever its opcode, or undefined: what an error answer echoes (question, OPT). */
function parseAnyOpcode(bytes: Uint8Array): ParsedQuery | undefined {
  try { return parseQuery(bytes, true); } catch { return undefined; }
}

const RCODE_NAMES: Record<number, string> = Object.fromEntries(Object.entries(Rcode).map(([k, v]) => [v, k]));

export class Listeners {
  private readonly udp: DnsUdpSocket[] = [];
  private readonly tcp: TcpConnections;
  readonly bound: ListenAddr[] = [];
  private readonly allow: ClientAcl;
  private notAllowedLoggedAt = -Infinity;

  constructor(private readonly handler: Handler, private readonly counters: ResolverCounters, private readonly clock: () => Millis,
    private readonly log: Logger, opts: ListenerOptions, private readonly onAnswer?: AnswerHook,
    private readonly udpBackend?: UdpBackend) {
    this.allow = ClientAcl.parse(opts.allow, 'allow');
    this.tcp = new TcpConnections(opts.tcp, counters, (bytes, reply) => this.handle(bytes, 'tcp', reply), log);
  }

  /**
   * Bind UDP then TCP on each address; port 0 picks one port for both.
   * `shards`: the UDP socket joins a group of that many, one per resolver
   * thread (workers.ts); `tcp: false` for the threads that serve UDP only.
   */
  async listen(addrs: readonly ListenAddr[], opts: { shards?: number; tcp?: boolean } = {}): Promise<void> {
    for (const a of addrs) await this.listenOne(a, opts);
  }

  /**
   * One address. With port 0 the kernel picks a free UDP port, which TCP may
   * have in use: then both are let go and picked again (a few times).
   */
  private async listenOne(a: ListenAddr, opts: { shards?: number; tcp?: boolean }): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const sock = await openDnsUdp({
        host: a.host, port: a.port, bufferSize: UDP_SOCKET_BUFFER, maxDatagram: MAX_UDP_QUERY, batch: 64,
        onError: (err) => this.log.warn('UDP listener error', { error: err.message }),
        ...(opts.shards ? { shards: opts.shards } : {}),
      }, this.udpBackend);
      // A loopback socket hears this host alone: no client check on the default stub's path.
      const checked = !isLoopbackHost(a.host);
      sock.onDatagram((bytes, from) => {
        // Source port 0 (RFC 768: no reply expected) has nowhere to be answered; dgram's send would throw.
        if (from.port === 0) { this.dropFromPortZero(); return; }
        // The datagram's bytes are the socket's receive slot (native): the chain may keep them. A pooled
        // copy (Node's slab) rather than Uint8Array#slice, which makes an ArrayBuffer per query.
        const query = sock.backend === 'native' ? pooledCopy(bytes) : bytes;
        if (checked && !this.allow.allows(from)) { this.notAllowed(query, new UdpReply(sock, from), from.text()); return; }
        this.handle(query, 'udp', new UdpReply(sock, from));
      });
      const port = sock.port;
      if (opts.tcp !== false) {
        try {
          await this.tcp.listen(a.host, port, checked ? (client) => this.admitTcp(client) : undefined);
        } catch (err) {
          if (a.port !== 0 || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt >= 5) { sock.close(); throw err; }
          sock.close();
          continue;
        }
        this.log.info('listening', { address: a.host, port, udp: sock.backend });
      }
      this.udp.push(sock);
      this.bound.push({ host: a.host, port });
      return;
    }
  }

  /**
   * Parse, resolve, answer. Every failure path ends in an answer or a counted
   * drop. The synchronous (cache-hit) path creates no closures: it is the hot path.
   */
  handle(bytes: Uint8Array, transport: 'udp' | 'tcp', reply: Reply): void {
    this.counters.queries++;
    if (transport === 'udp') this.counters.udpQueries++; else this.counters.tcpQueries++;
    let q: ParsedQuery;
    try {
      q = parseQuery(bytes);
    } catch (err) {
      // A datagram without a full header, or a response (QR=1), gets no answer (no reflection loops).
      if (bytes.length < 12 || (bytes[2]! & 0x80) !== 0) { this.counters.dropped++; reply.done(); return; }
      const notImp = err instanceof WireError && err.code === 'ETYPE';
      if (notImp) this.counters.refused++; else this.counters.formerr++;
      // Another opcode's message that is otherwise a query: its question and OPT are echoed (RFC 6891 §7).
      reply.send(errorResponse(bytes, notImp ? parseAnyOpcode(bytes) : undefined, notImp ? Rcode.NOTIMP : Rcode.FORMERR));
      reply.done();
      return;
    }
    const local = this.localAnswer(bytes, q);
    if (local) {
      reply.send(local);
      if (this.log.enabled('debug')) this.logQuery(q, (local[3]! & 0x0f) | (q.edns && q.ednsVersion !== 0 ? Rcode.BADVERS : 0), 'local', transport, reply, local.length);
      reply.done();
      return;
    }
    const req: Request = { query: bytes, q, key: q.key, now: this.clock(), transport };
    let r: Answer | Promise<Answer>;
    try {
      r = this.handler(req);
    } catch (err) {
      this.fail(err, bytes, q, transport, reply);
      return;
    }
    // A throw while answering (a bug) is logged, not an unhandled rejection, which would end the process.
    if (r instanceof Promise) r.then((a) => this.answer(a, bytes, q, transport, reply), (err: unknown) => this.fail(err, bytes, q, transport, reply)).catch(this.answerFailed);
    else this.answer(r, bytes, q, transport, reply);
  }

  /** A datagram from UDP port 0: counted as a query and dropped, as a runt is. */
  private dropFromPortZero(): void {
    this.counters.queries++;
    this.counters.udpQueries++;
    this.counters.dropped++;
  }

  /**
   * A UDP query from a client `allow` does not name: REFUSED (RFC 1035 §4.1.1, as unbound's
   * access-control "refuse"), no larger than the query; a response or a runt gets nothing.
   */
  private notAllowed(bytes: Uint8Array, reply: Reply, client: string): void {
    this.counters.queries++;
    this.counters.udpQueries++;
    this.counters.notAllowed++;
    this.logNotAllowed(client, 'udp');
    if (bytes.length < 12 || (bytes[2]! & 0x80) !== 0) { reply.done(); return; }
    reply.send(errorResponse(bytes, parseAnyOpcode(bytes), Rcode.REFUSED));
    reply.done();
  }

  private readonly answerFailed = (err: unknown): void => {
    this.log.error('answering a query failed', { error: (err as Error)?.message });
  };

  /** A TCP connection from a client `allow` does not name is closed at once. */
  private admitTcp(client: string): boolean {
    if (this.allow.allowsAddress(client)) return true;
    this.counters.notAllowed++;
    this.logNotAllowed(client, 'tcp');
    return false;
  }

  private logNotAllowed(client: string, transport: 'udp' | 'tcp'): void {
    const now = this.clock();
    if (now - this.notAllowedLoggedAt < NOT_ALLOWED_LOG_MS) return;
    this.notAllowedLoggedAt = now;
    this.log.warn('client not allowed: refused (config key allow; at most one such line a minute)', { client, transport });
  }

  private answer(a: Answer, bytes: Uint8Array, q: ParsedQuery, transport: 'udp' | 'tcp', reply: Reply): void {
    // The bytes may be shared with coalesced waiters and the cache: patch a copy (pooled: no ArrayBuffer per answer).
    let out = finishForClient(a.owned ? a.bytes : pooledCopy(a.bytes), a.optOff, bytes, q);
    if (transport === 'udp' && out.length > q.udpSize) { out = truncatedResponse(out, bytes, q, a.optOff); this.counters.truncated++; }
    // TCP frames a message in 2 octets: an upstream answer of nearly 65,535 octets with our OPT added does not fit.
    if (out.length > 0xffff) { a = { ...a, rcode: Rcode.SERVFAIL, source: 'local' }; out = errorResponse(bytes, q, Rcode.SERVFAIL); }
    if (a.rcode === Rcode.SERVFAIL) {
      this.counters.servfail++;
      if (a.source === 'local') this.counters.servfailNoAnswer++; else this.counters.servfailUpstream++;
    }
    reply.send(out);
    this.onAnswer?.(q, a, transport);
    if (this.log.enabled('debug')) this.logQuery(q, a.rcode, a.source, transport, reply, out.length);
    reply.done();
  }

  /** One line per answered query, as dnsmasq's log-queries: who asked what, and how it was answered. */
  private logQuery(q: ParsedQuery, rcode: number, source: string, transport: 'udp' | 'tcp', reply: Reply, size: number): void {
    this.log.debug('query', { client: reply.peer(), transport, name: nameKeyToText(q.nameKey), type: q.qtype, rcode: RCODE_NAMES[rcode] ?? rcode, source, size });
  }

  private fail(err: unknown, bytes: Uint8Array, q: ParsedQuery, transport: 'udp' | 'tcp', reply: Reply): void {
    this.log.error('chain failed', { error: (err as Error)?.message });
    this.counters.servfail++;
    this.counters.servfailInternal++;
    const out = errorResponse(bytes, q, Rcode.SERVFAIL);
    reply.send(out);
    if (this.log.enabled('debug')) this.logQuery(q, Rcode.SERVFAIL, 'internal', transport, reply, out.length);
    reply.done();
  }

  /** Answers the stub gives itself: BADVERS (RFC 6891 §6.1.3) and zone transfers (not a stub's job). */
  private localAnswer(bytes: Uint8Array, q: ParsedQuery): Uint8Array | undefined {
    if (q.edns && q.ednsVersion !== 0) return errorResponse(bytes, q, Rcode.BADVERS);
    if (q.qtype === 251 || q.qtype === 252) { this.counters.refused++; return errorResponse(bytes, q, Rcode.NOTIMP); }
    return undefined;
  }

  /** Open TCP connections. */
  get tcpConnections(): number { return this.tcp.size; }

  async close(): Promise<void> {
    for (const s of this.udp) s.close();
    await this.tcp.close();
    this.udp.length = 0;
  }
}
