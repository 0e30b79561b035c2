/**
 * The metrics port (config `metrics: ADDR:PORT`, flag `--metrics`): an HTTP
 * server with three GET resources — `/metrics` (Prometheus text format,
 * registry.ts), `/` (the status page, page.ts) and `/status.json` (what the
 * page refreshes from). Everything is read from one `status` snapshot per
 * request (concurrent requests share one), so serving costs nothing until
 * someone asks. Bounded: GET and HEAD only, no request body, short URLs and
 * headers, a few connections at once (at the bound the connection idle the
 * longest, else the one stuck the longest on a client that does not read,
 * makes room for a new one), timeouts on slow clients, and one request of a
 * connection answered at a time: reading it stops until the response has gone
 * to the kernel, so the port holds at most one response per connection. A request
 * that reaches the server on a loopback address (whatever address it listens
 * on: a wildcard one is reachable on loopback too) must name the server by
 * address or as localhost: a web page whose own name resolves to 127.0.0.1
 * (DNS rebinding) must not read the status through a browser on this host.
 */
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { hostPort, type Logger } from '../../log.ts';
import { EnvironmentError } from '../../errors.ts';
import type { MetricsEndpoint } from './endpoint.ts';
import type { StatusReply } from '../status-view.ts';
import { ShimMetrics } from './registry.ts';
import { ThroughputHistory, type TrafficReading } from './history.ts';
import { pageData, pageHtml } from './page.ts';

/**
 * Connections held at once. A new one past this closes the connection idle the longest (no
 * request in progress, none begun), else the one whose response has waited the longest for its
 * client to take more, or is closed itself when every one is preparing a response: clients that
 * connect and send nothing, or ask and never read, cannot keep the scraper out.
 */
export const MAX_CONNECTIONS = 16;
/**
 * Requests a connection may have received and waiting behind the one being answered (HTTP
 * pipelining); one more closes it. Each is only its parsed head: no response is made for it
 * before the one ahead has gone.
 */
export const MAX_PIPELINED = 16;
/**
 * A response its client takes nothing of for this long (ms) closes the connection: a client that
 * asks and never reads holds a connection, and the one response kept for it, no longer than this.
 */
export const STALL_MS = 10_000;
/** A response is written in pieces of this many octets; each one the client's side takes is progress. */
const PIECE = 16 * 1024;
/** Longest request line + headers (octets). */
export const MAX_HEADER_BYTES = 8 * 1024;
/** Longest URL (octets). */
const MAX_URL = 512;
/** A request must be complete within this (ms); idle keep-alive connections close after KEEP_ALIVE_MS. */
const REQUEST_TIMEOUT_MS = 10_000;
const KEEP_ALIVE_MS = 5_000;
/** How often node looks for requests past REQUEST_TIMEOUT_MS (its default is 30 s). */
const TIMEOUT_CHECK_MS = 1_000;
/** How often the page refreshes itself (ms). */
export const PAGE_REFRESH_MS = 2000;

export interface MetricsSources {
  /** The `status` reply (the control socket's). */
  status: () => Promise<StatusReply> | StatusReply;
  /** Each context's payload octets, for the throughput plots (absent: no plots). */
  traffic?: () => TrafficReading[];
}

export interface MetricsServerOptions {
  log?: Logger;
  /** How often the page's throughput is sampled (ms). */
  sampleMs?: number;
  /** MAX_CONNECTIONS unless set (tests). */
  maxConnections?: number;
  /** STALL_MS unless set (tests). */
  stallMs?: number;
}

/** One connection's requests: answered one at a time, in order. */
interface Conn {
  /** Requests received and not answered yet, in order; the first is being answered while `answering`. */
  readonly queue: Array<[http.IncomingMessage, http.ServerResponse]>;
  answering: boolean;
  /** While a response is being written: when its client last took some of it (performance.now()). */
  progressAt?: number | undefined;
  /** Closes the connection when its client takes nothing for stallMs. */
  stall?: NodeJS.Timeout | undefined;
}

export interface MetricsServer {
  readonly address: string;
  readonly port: number;
  close(): Promise<void>;
}

/** Listen on `at`; resolves once bound (EADDRINUSE and the like become EnvironmentError EMETRICS_LISTEN). */
export async function startMetricsServer(at: MetricsEndpoint, sources: MetricsSources, opts: MetricsServerOptions = {}): Promise<MetricsServer> {
  const metrics = new ShimMetrics();
  const history = sources.traffic ? new ThroughputHistory(sources.traffic, { intervalMs: opts.sampleMs ?? 5000 }) : undefined;
  const maxConnections = opts.maxConnections ?? MAX_CONNECTIONS;
  const stallMs = opts.stallMs ?? STALL_MS;
  let pending: Promise<StatusReply> | undefined;
  /** One snapshot for the requests that arrive while it is taken. */
  const snapshot = (): Promise<StatusReply> => {
    pending ??= Promise.resolve().then(sources.status).finally(() => { pending = undefined; });
    return pending;
  };
  /** Open connections, the idle longest first. */
  const conns = new Map<net.Socket, Conn>();

  /** A request of `sock` arrived (node parses what one read brought, several pipelined requests maybe): queue it. */
  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const sock = req.socket;
    const c = conns.get(sock);
    if (!c || sock.destroyed) return void sock.destroy();
    if (c.queue.length > MAX_PIPELINED) {
      opts.log?.debug('metrics client disconnected: too many pipelined requests', { limit: MAX_PIPELINED });
      return void sock.destroy();
    }
    c.queue.push([req, res]);
    next(sock, c);
  };

  /** Answer the connection's first waiting request, unless one is being answered; read from it only while none waits. */
  const next = (sock: net.Socket, c: Conn): void => {
    if (sock.destroyed) return;
    const first = c.queue[0];
    if (!first) { sock.resume(); return; }
    sock.pause();
    if (c.answering) return;
    c.answering = true;
    const [req, res] = first;
    let closed = false;
    // Finished (all of it handed to the kernel) or the connection gone.
    res.once('close', () => {
      closed = true;
      clearTimeout(c.stall);
      c.stall = undefined;
      c.progressAt = undefined;
      c.queue.shift();
      c.answering = false;
      // Idle again from now: to the end of the line.
      if (conns.delete(sock)) conns.set(sock, c);
      next(sock, c);
    });
    const progress = (): void => {
      // A client gone while its response was being made (the status snapshot) has nothing to stall.
      if (closed) return;
      c.progressAt = performance.now();
      if (c.stall) c.stall.refresh();
      else {
        c.stall = setTimeout(() => {
          opts.log?.info('metrics client disconnected: it took nothing of its response', { stallMs });
          sock.destroy();
        }, stallMs);
        c.stall.unref(); // a stop during a scrape is not held up by it
      }
    };
    const write = (status: number, type: string, body: string, head = false): void => send(res, status, type, body, head, progress);
    void serve(req, write).catch((err: unknown) => {
      opts.log?.warn('metrics request failed', { url: req.url?.slice(0, 100), error: (err as Error).message });
      if (!res.headersSent) write(500, 'text/plain; charset=utf-8', 'internal error\n');
      else res.destroy();
    });
  };

  /** The connection to close for a newcomer: the one idle the longest, else the one whose client took nothing for the longest. */
  const evictable = (): net.Socket | undefined => {
    let stuck: net.Socket | undefined;
    let since = Infinity;
    for (const [sock, c] of conns) {
      if (!c.answering) return sock;
      if (c.progressAt !== undefined && c.progressAt < since) { stuck = sock; since = c.progressAt; }
    }
    return stuck;
  };

  const server = http.createServer({ maxHeaderSize: MAX_HEADER_BYTES, requestTimeout: REQUEST_TIMEOUT_MS, headersTimeout: REQUEST_TIMEOUT_MS, keepAliveTimeout: KEEP_ALIVE_MS, connectionsCheckingInterval: TIMEOUT_CHECK_MS, requireHostHeader: false }, onRequest);
  // Every request goes through onRequest (its bounds), none is answered by node on its own: an
  // Expect header (417 unless 100-continue, and no 100 Continue is sent: no body is read), a
  // missing Host (400, in serve); past maxRequestsPerSocket node answers 503 itself, which only
  // a client pipelining past that asks for: it is closed.
  server.on('checkContinue', onRequest);
  server.on('checkExpectation', onRequest);
  server.on('dropRequest', (_req: http.IncomingMessage, sock: net.Socket) => sock.destroy());
  server.on('connection', (sock: net.Socket) => {
    if (conns.size >= maxConnections) {
      const victim = evictable();
      if (!victim) { sock.destroy(); return; }
      conns.delete(victim);
      victim.destroy();
    }
    conns.set(sock, { queue: [], answering: false });
    sock.once('close', () => {
      const c = conns.get(sock);
      if (c) clearTimeout(c.stall);
      conns.delete(sock);
    });
  });
  server.maxRequestsPerSocket = 100;
  server.on('clientError', (_err, socket) => { if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n'); else socket.destroy(); });

  const serve = async (req: http.IncomingMessage, send: (status: number, type: string, body: string, head?: boolean) => void): Promise<void> => {
    if (req.httpVersion === '1.1' && req.headers.host === undefined) return send(400, 'text/plain; charset=utf-8', 'HTTP/1.1 needs a Host header\n');
    const expect = req.headers.expect;
    if (expect !== undefined && !/(?:^|\W)100-continue(?:$|\W)/i.test(expect)) return send(417, 'text/plain; charset=utf-8', 'no expectation is met\n');
    // Where this connection arrived, not where the server listens: bound to [::] or 0.0.0.0 it is reachable on loopback too.
    if (isLoopback(req.socket.localAddress ?? '') && !localHost(req.headers.host)) return send(403, 'text/plain; charset=utf-8', 'the Host header must name this server by address or as localhost\n');
    const url = req.url ?? '/';
    if (url.length > MAX_URL) return send(414, 'text/plain; charset=utf-8', 'URI too long\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'text/plain; charset=utf-8', 'only GET and HEAD\n');
    if (req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0) return send(413, 'text/plain; charset=utf-8', 'no request body accepted\n');
    const path = url.split('?')[0];
    if (path === '/metrics') return send(200, metrics.contentType, await metrics.render(await snapshot()), req.method === 'HEAD');
    if (path === '/status.json') return send(200, 'application/json; charset=utf-8', JSON.stringify(pageData(await snapshot(), history, PAGE_REFRESH_MS)), req.method === 'HEAD');
    if (path === '/') return send(200, 'text/html; charset=utf-8', pageHtml(pageData(await snapshot(), history, PAGE_REFRESH_MS)), req.method === 'HEAD');
    return send(404, 'text/plain; charset=utf-8', 'not found: try / or /metrics\n');
  };

  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      reject(new EnvironmentError('EMETRICS_LISTEN', `metrics: cannot listen on ${fmt(at)}: ${err.code ?? err.message}`));
    };
    server.once('error', onError);
    server.listen({ host: at.address, port: at.port, ipv6Only: at.address.includes(':') }, () => { server.off('error', onError); resolve(); });
  });
  server.on('error', (err) => opts.log?.warn('metrics server error', { error: err.message }));
  history?.start();
  const bound = server.address() as AddressInfo;
  opts.log?.info('metrics listening', { url: `http://${fmt({ address: at.address, port: bound.port })}/`, metrics: '/metrics' });
  return {
    address: at.address,
    port: bound.port,
    close: () => new Promise<void>((resolve) => {
      history?.stop();
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}

function isLoopback(address: string): boolean {
  return address === '::1' || /^127\./.test(address) || /^::ffff:127\./i.test(address);
}

/**
 * A Host header a browser sends only when it was pointed at this server by address or as
 * localhost (not by some web site's name): an IP address, `localhost` or a name under it
 * (RFC 6761 §6.3), with or without a port. No header at all is not a browser's.
 */
function localHost(host: string | undefined): boolean {
  if (host === undefined) return true;
  const close = host.indexOf(']');
  if (host.startsWith('[') && close < 0) return false;
  const name = host.startsWith('[') ? host.slice(1, close) : host.replace(/:\d*$/, '');
  const lower = name.toLowerCase();
  return net.isIP(name) !== 0 || lower === 'localhost' || lower.endsWith('.localhost');
}

function fmt(e: MetricsEndpoint): string {
  return hostPort(e.address, e.port);
}

/**
 * Answer with `body`, in pieces of PIECE octets: the next piece once the socket has taken the last
 * (node holds at most one response's unsent part), `progress` called at the start and each time.
 */
function send(res: http.ServerResponse, status: number, type: string, body: string, head: boolean, progress: () => void): void {
  const data = Buffer.from(body);
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': data.length, 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff', 'Content-Security-Policy': "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:", ...(status === 405 ? { Allow: 'GET, HEAD' } : {}) });
  let at = head ? data.length : 0;
  const more = (): void => {
    progress();
    while (at < data.length) {
      const piece = data.subarray(at, at + PIECE);
      at += piece.length;
      if (!res.write(piece)) { res.once('drain', more); return; }
    }
    res.end();
  };
  more();
}
