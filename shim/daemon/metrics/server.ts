/**
 * The metrics port (config `metrics: ADDR:PORT`, flag `--metrics`): an HTTP
 * server with three GET resources — `/metrics` (Prometheus text format,
 * registry.ts), `/` (the status page, page.ts) and `/status.json` (what the
 * page refreshes from). Everything is read from one `status` snapshot per
 * request (concurrent requests share one), so serving costs nothing until
 * someone asks. Bounded: GET and HEAD only, no request body, short URLs and
 * headers, a few connections at once (at the bound the connection idle the
 * longest makes room for a new one), and timeouts on slow clients. A request
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
 * request in progress, none begun), or is closed itself when every one is busy: clients that
 * connect and send nothing cannot keep the scraper out.
 */
export const MAX_CONNECTIONS = 16;
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

export interface MetricsServer {
  readonly address: string;
  readonly port: number;
  close(): Promise<void>;
}

/** Listen on `at`; resolves once bound (EADDRINUSE and the like become EnvironmentError EMETRICS_LISTEN). */
export async function startMetricsServer(at: MetricsEndpoint, sources: MetricsSources, opts: { log?: Logger; sampleMs?: number } = {}): Promise<MetricsServer> {
  const metrics = new ShimMetrics();
  const history = sources.traffic ? new ThroughputHistory(sources.traffic, { intervalMs: opts.sampleMs ?? 5000 }) : undefined;
  let pending: Promise<StatusReply> | undefined;
  /** One snapshot for the requests that arrive while it is taken. */
  const snapshot = (): Promise<StatusReply> => {
    pending ??= Promise.resolve().then(sources.status).finally(() => { pending = undefined; });
    return pending;
  };
  /** Open connections, the idle longest first, with their requests in progress. */
  const conns = new Map<net.Socket, { busy: number }>();
  const server = http.createServer({ maxHeaderSize: MAX_HEADER_BYTES, requestTimeout: REQUEST_TIMEOUT_MS, headersTimeout: REQUEST_TIMEOUT_MS, keepAliveTimeout: KEEP_ALIVE_MS, connectionsCheckingInterval: TIMEOUT_CHECK_MS }, (req, res) => {
    const c = conns.get(req.socket);
    if (c) {
      c.busy++;
      res.once('close', () => {
        c.busy--;
        // Idle again from now: to the end of the line.
        if (conns.delete(req.socket)) conns.set(req.socket, c);
      });
    }
    void serve(req, res).catch((err: unknown) => {
      opts.log?.warn('metrics request failed', { url: req.url?.slice(0, 100), error: (err as Error).message });
      if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', 'internal error\n');
      else res.destroy();
    });
  });
  server.on('connection', (sock: net.Socket) => {
    if (conns.size >= MAX_CONNECTIONS) {
      let idle: net.Socket | undefined;
      for (const [other, c] of conns) if (c.busy === 0) { idle = other; break; }
      if (!idle) { sock.destroy(); return; }
      conns.delete(idle);
      idle.destroy();
    }
    conns.set(sock, { busy: 0 });
    sock.once('close', () => conns.delete(sock));
  });
  server.maxRequestsPerSocket = 100;
  server.on('clientError', (_err, socket) => { if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n'); else socket.destroy(); });

  const serve = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    // Where this connection arrived, not where the server listens: bound to [::] or 0.0.0.0 it is reachable on loopback too.
    if (isLoopback(req.socket.localAddress ?? '') && !localHost(req.headers.host)) return send(res, 403, 'text/plain; charset=utf-8', 'the Host header must name this server by address or as localhost\n');
    const url = req.url ?? '/';
    if (url.length > MAX_URL) return send(res, 414, 'text/plain; charset=utf-8', 'URI too long\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      return send(res, 405, 'text/plain; charset=utf-8', 'only GET and HEAD\n');
    }
    if (req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0) return send(res, 413, 'text/plain; charset=utf-8', 'no request body accepted\n');
    const path = url.split('?')[0];
    if (path === '/metrics') return send(res, 200, metrics.contentType, await metrics.render(await snapshot()), req.method === 'HEAD');
    if (path === '/status.json') return send(res, 200, 'application/json; charset=utf-8', JSON.stringify(pageData(await snapshot(), history, PAGE_REFRESH_MS)), req.method === 'HEAD');
    if (path === '/') return send(res, 200, 'text/html; charset=utf-8', pageHtml(pageData(await snapshot(), history, PAGE_REFRESH_MS)), req.method === 'HEAD');
    return send(res, 404, 'text/plain; charset=utf-8', 'not found: try / or /metrics\n');
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

function send(res: http.ServerResponse, status: number, type: string, body: string, head = false): void {
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff', 'Content-Security-Policy': "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:" });
  res.end(head ? undefined : body);
}
