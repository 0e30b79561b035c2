/**
 * The stub's DNS-over-TCP connections (RFC 7766): 2-octet framing, pipelined
 * queries answered as each completes (§6.2.1.1, out of order), and the bounds
 * that keep a local client from exhausting the stub:
 *
 * - reading stops while a connection has `maxInflight` queries unanswered or
 *   `maxUnsentBytes` of answers the client has not read (a client that
 *   pipelines and never reads costs about that, not the stub's whole memory);
 *   answers still due past 4× that bound close the connection;
 * - each message must be complete `messageTimeoutMs` after its first octet
 *   (a client sending one octet every few seconds is closed, not kept);
 * - idle connections close after `idleMs` (§6.2.3);
 * - a client that half-closes (shuts down its sending side after its queries)
 *   still gets every answer; the stub closes once the last one is written;
 * - at most `maxConnections` connections, at most `maxPerClient` from one
 *   address; when a bound is reached, the oldest idle connection (of that
 *   address, or of all) is closed to make room; only when none is idle is the
 *   new connection refused.
 *
 * "Idle" is: nothing owed to the client (no query in flight, no unsent
 * output). "Oldest" is the connection whose last completed exchange (or its
 * accept) lies furthest back; a connection that only trickles octets never
 * completes one, so it ages.
 * It owns the sockets; it must not know what the chain does with a query.
 */
import net from 'node:net';
import type { Logger } from '../shim/log.ts';
import type { ResolverCounters } from './counters.ts';
import type { Reply } from './listener.ts';

export interface TcpOptions {
  /** RFC 7766 §6.2.3: close a connection with nothing in flight after this long without traffic (ms). */
  idleMs: number;
  maxConnections: number;
  /** Connections from one client address. */
  maxPerClient: number;
  /** Pipelined queries per connection before reading pauses. */
  maxInflight: number;
  /** Answers written but not yet taken by the client (octets) before reading pauses. */
  maxUnsentBytes: number;
  /** A message must be complete this long after its first octet (ms). */
  messageTimeoutMs: number;
}

export const DEFAULT_TCP_OPTIONS: TcpOptions = {
  idleMs: 10_000, maxConnections: 256, maxPerClient: 32, maxInflight: 32, maxUnsentBytes: 32 * 1024, messageTimeoutMs: 3_000,
};

/** Answers still due past this many times maxUnsentBytes close the connection. */
const OVERFLOW_FACTOR = 4;

/** Parses, resolves and answers one query; calls `reply.send` at most once, then `reply.done` once. */
export type QueryHandler = (bytes: Uint8Array, reply: Reply) => void;

/** One client connection: its framing, its queries in flight and its deadlines. */
class TcpConn implements Reply {
  /** Octets of a message not yet complete. */
  private partial: Buffer = Buffer.alloc(0);
  /** Complete messages waiting for room (in flight, unsent output), from `next` on. */
  private frames: Uint8Array[] = [];
  private next = 0;
  inflight = 0;
  private deadline: NodeJS.Timeout | undefined = undefined;
  /** Inside pump(): a query answered synchronously (a cache hit) must not start pump() again. */
  private pumping = false;
  /** The client shut down its sending side: answer what it sent, then close. */
  private ended = false;

  constructor(readonly sock: net.Socket, readonly client: string, private readonly owner: TcpConnections) {}

  peer(): string { return this.client; }

  /** Nothing owed to the client: it may be closed to make room. */
  get idle(): boolean {
    return this.inflight === 0 && this.sock.writableLength === 0;
  }

  private get blocked(): boolean {
    return this.inflight >= this.owner.opts.maxInflight || this.sock.writableLength >= this.owner.opts.maxUnsentBytes;
  }

  onData(chunk: Buffer): void {
    let buf = this.partial.length === 0 ? chunk : Buffer.concat([this.partial, chunk]);
    let completed = false;
    while (buf.length >= 2) {
      const len = buf.readUInt16BE(0);
      if (buf.length < 2 + len) break;
      this.frames.push(Uint8Array.prototype.slice.call(buf, 2, 2 + len));
      buf = buf.subarray(2 + len);
      completed = true;
    }
    this.partial = buf;
    // The deadline runs from a message's first octet: a new partial message gets a new one.
    if (completed) this.clearDeadline();
    this.pump();
  }

  /** Start the waiting queries while there is room; pause reading when there is none. */
  pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      // An index, not shift(): one read can hold a couple of thousand pipelined queries.
      while (this.next < this.frames.length && !this.blocked && !this.sock.destroyed) {
        this.inflight++;
        this.owner.handle(this.frames[this.next++]!, this);
      }
    } finally {
      this.pumping = false;
    }
    if (this.next === this.frames.length) { this.frames = []; this.next = 0; }
    if (this.sock.destroyed) return;
    if (this.ended) {
      if (this.inflight === 0 && this.frames.length === 0) this.sock.end();
      return;
    }
    if (this.blocked || this.frames.length > 0) {
      if (!this.sock.isPaused()) {
        this.sock.pause();
        if (this.inflight < this.owner.opts.maxInflight) this.owner.counters.tcpWritePauses++;
      }
      // Octets we do not read are not the client's delay: the rest of a message gets a fresh deadline on resume.
      this.clearDeadline();
      return;
    }
    if (this.sock.isPaused()) this.sock.resume();
    if (this.partial.length > 0 && this.deadline === undefined) {
      this.deadline = setTimeout(() => this.owner.timedOut(this), this.owner.opts.messageTimeoutMs);
    }
  }

  send(out: Uint8Array): void {
    const c = this.sock;
    if (this.owner.closed || c.destroyed || !c.writable) return;
    if (c.writableLength > OVERFLOW_FACTOR * this.owner.opts.maxUnsentBytes) {
      this.owner.counters.tcpOverflows++;
      c.destroy();
      return;
    }
    const frame = Buffer.allocUnsafe(2 + out.length);
    frame.writeUInt16BE(out.length, 0);
    frame.set(out, 2);
    c.write(frame);
  }

  done(): void {
    if (--this.inflight === 0 && !this.sock.destroyed) this.sock.setTimeout(this.owner.opts.idleMs);
    this.owner.exchanged(this);
    this.pump();
  }

  /** The client's FIN: a message it left incomplete is dropped; the rest is answered (pump() closes after). */
  onEnd(): void {
    this.ended = true;
    this.partial = Buffer.alloc(0);
    this.clearDeadline();
    this.pump();
  }

  clearDeadline(): void {
    if (this.deadline !== undefined) clearTimeout(this.deadline);
    this.deadline = undefined;
  }
}

export class TcpConnections {
  /** Every open connection, least recently exchanged first (Set order: re-added on each exchange). */
  private readonly conns = new Set<TcpConn>();
  private readonly perClient = new Map<string, number>();
  private readonly servers: net.Server[] = [];
  /** Set by close(): late answers are not sent any more. */
  closed = false;

  constructor(readonly opts: TcpOptions, readonly counters: ResolverCounters, readonly handle: QueryHandler, private readonly log: Logger) {}

  /** `admit`: whether a client (its address) may connect at all (client-acl.ts); absent, all may. */
  async listen(host: string, port: number, admit?: (client: string) => boolean): Promise<void> {
    // highWaterMark = the unsent bound: write() reports "full" (and 'drain' follows) exactly there.
    // allowHalfOpen: a client's FIN must not end our side before its queries are answered (onEnd).
    const server = net.createServer({ highWaterMark: this.opts.maxUnsentBytes, noDelay: true, allowHalfOpen: true }, (c) => {
      if (admit && !admit(c.remoteAddress ?? '')) { c.destroy(); return; }
      this.accept(c);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => { server.off('error', reject); resolve(); });
    });
    server.on('error', (err) => this.log.warn('TCP listener error', { error: err.message }));
    this.servers.push(server);
  }

  /** Open connections (status). */
  get size(): number { return this.conns.size; }

  private accept(c: net.Socket): void {
    const client = c.remoteAddress ?? '';
    if (this.closed || !this.makeRoom(client)) {
      this.counters.tcpRefused++;
      c.destroy();
      return;
    }
    const conn = new TcpConn(c, client, this);
    this.conns.add(conn);
    this.perClient.set(client, (this.perClient.get(client) ?? 0) + 1);
    // Not setTimeout's callback: node registers it with `once`, so a connection whose queries were
    // still in flight when it first fired would never be closed afterwards. The 'timeout' listener
    // stays; done() re-arms the timer from the last answer.
    c.setTimeout(this.opts.idleMs);
    c.on('timeout', () => { if (conn.inflight === 0) c.destroy(); });
    c.on('error', () => c.destroy());
    c.on('close', () => this.forget(conn));
    c.on('drain', () => conn.pump());
    c.on('data', (chunk: Buffer) => conn.onData(chunk));
    c.on('end', () => conn.onEnd());
  }

  /** Room for one more connection from `client`: close the oldest idle one where a bound is reached. */
  private makeRoom(client: string): boolean {
    if ((this.perClient.get(client) ?? 0) >= this.opts.maxPerClient && !this.evictOldestIdle(client)) return false;
    if (this.conns.size >= this.opts.maxConnections && !this.evictOldestIdle(undefined)) return false;
    return true;
  }

  private evictOldestIdle(client: string | undefined): boolean {
    for (const conn of this.conns) {
      if (!conn.idle || (client !== undefined && conn.client !== client)) continue;
      this.counters.tcpEvicted++;
      this.forget(conn); // at once: the count must drop before the new connection is counted
      conn.sock.destroy();
      return true;
    }
    return false;
  }

  /** A query of `conn` was answered: it is the most recently active now. */
  exchanged(conn: TcpConn): void {
    if (!this.conns.delete(conn)) return;
    this.conns.add(conn);
  }

  timedOut(conn: TcpConn): void {
    this.counters.tcpMessageTimeouts++;
    conn.sock.destroy();
  }

  private forget(conn: TcpConn): void {
    conn.clearDeadline();
    if (!this.conns.delete(conn)) return;
    const n = (this.perClient.get(conn.client) ?? 1) - 1;
    if (n > 0) this.perClient.set(conn.client, n); else this.perClient.delete(conn.client);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const conn of [...this.conns]) { this.forget(conn); conn.sock.destroy(); }
    await Promise.all(this.servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
    this.servers.length = 0;
  }
}
