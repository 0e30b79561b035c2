/**
 * The lab's stream tool: a TCP sender of checksummed, sequence-numbered blocks
 * and a receiver that verifies them on arrival (stream-codec.ts). Both
 * report as JSON lines on stdout, one `tick` per 100 ms (octets in that
 * interval), so an orchestrator in another process can draw a timeline; the
 * receiver also measures the application stall: the longest gap between two
 * arrivals of data.
 *
 * Run as a program inside a namespace (Node cannot enter one itself):
 *   node --import tsx lab/stream.ts serve --port 7000   (compiled: node dist/lab/stream.js …)
 *   node --import tsx lab/stream.ts send --to b.lab.example --resolver 127.0.0.53 --port 7000 --duration 6000
 * Owns only its socket; knows nothing of namespaces or shim6.
 */
import { createServer, connect, isIP, type Socket } from 'node:net';
import { Resolver } from 'node:dns/promises';
import { BlockVerifier, encodeBlock } from './stream-codec.ts';
import { hostPort } from '../shim/log.ts';

export const TICK_MS = 100;
/** Silences longer than this are reported one by one (`gap` events). */
export const GAP_REPORT_MS = 50;

/** One JSON line of the stream tool's report. */
export type StreamEvent =
  | { ev: 'listening'; port: number }
  | { ev: 'connected'; t: number; remote: string }
  /** The receiver: data arrived after a silence of `ms` (> GAP_REPORT_MS) that began at `from`. */
  | { ev: 'gap'; t: number; from: number; ms: number }
  | { ev: 'tick'; t: number; bytes: number; total: number; verified?: number; corrupt?: number; maxGapMs?: number; lastAt?: number }
  | { ev: 'done'; t: number; role: 'send' | 'recv'; total: number; verified?: number; corrupt?: number; blocks?: number; maxGapMs?: number; maxGapAt?: number; firstAt?: number; error?: string };

type Emit = (e: StreamEvent) => void;
const stdoutEmit: Emit = (e) => { process.stdout.write(JSON.stringify(e) + '\n'); };

/** Tracks the longest silence between two data arrivals. */
export class GapMeter {
  firstAt: number | undefined;
  lastAt: number | undefined;
  maxGapMs = 0;
  maxGapAt: number | undefined;

  data(now: number): void {
    if (this.lastAt !== undefined && now - this.lastAt > this.maxGapMs) {
      this.maxGapMs = now - this.lastAt;
      this.maxGapAt = this.lastAt;
    }
    this.firstAt ??= now;
    this.lastAt = now;
  }

  /** The gap so far, counting a silence still open at `now`. */
  closeAt(now: number): void {
    if (this.lastAt !== undefined && now - this.lastAt > this.maxGapMs) {
      this.maxGapMs = now - this.lastAt;
      this.maxGapAt = this.lastAt;
    }
  }
}

/** Receive streams on `port`; report per tick; `once`: exit after the first stream ends. */
export function serve(opts: { port: number; host?: string; once?: boolean }, emit: Emit = stdoutEmit): Promise<void> {
  return new Promise((resolve, reject) => {
    const server = createServer((sock) => {
      const v = new BlockVerifier();
      const gap = new GapMeter();
      let interval = 0;
      emit({ ev: 'connected', t: Date.now(), remote: hostPort(sock.remoteAddress ?? '?', sock.remotePort ?? 0) });
      const timer = setInterval(() => {
        emit({ ev: 'tick', t: Date.now(), bytes: interval, total: v.counters.received, verified: v.counters.verified, corrupt: v.counters.corrupt, maxGapMs: gap.maxGapMs, ...(gap.lastAt !== undefined ? { lastAt: gap.lastAt } : {}) });
        interval = 0;
      }, TICK_MS);
      sock.on('data', (chunk: Buffer) => {
        const now = Date.now();
        if (gap.lastAt !== undefined && now - gap.lastAt > GAP_REPORT_MS) emit({ ev: 'gap', t: now, from: gap.lastAt, ms: now - gap.lastAt });
        gap.data(now);
        interval += chunk.length;
        v.push(chunk);
      });
      const finish = (error?: string): void => {
        clearInterval(timer);
        const c = v.counters;
        emit({
          ev: 'done', t: Date.now(), role: 'recv', total: c.received, verified: c.verified, corrupt: c.corrupt + (v.buffered ? 1 : 0), blocks: c.blocks,
          maxGapMs: gap.maxGapMs, ...(gap.maxGapAt !== undefined ? { maxGapAt: gap.maxGapAt } : {}),
          ...(gap.firstAt !== undefined ? { firstAt: gap.firstAt } : {}), ...(error ? { error } : {}),
        });
        if (opts.once) server.close(() => resolve());
      };
      sock.once('error', (e) => finish(e.message));
      sock.once('end', () => { sock.end(); finish(); });
    });
    server.once('error', reject);
    server.listen({ port: opts.port, host: opts.host ?? '::', ipv6Only: false }, () => {
      const a = server.address();
      emit({ ev: 'listening', port: typeof a === 'object' && a ? a.port : opts.port });
      if (!opts.once) resolve();
    });
  });
}

export interface SendOptions {
  to: string;
  port: number;
  durationMs: number;
  /** Octets per second; 0 = as fast as the socket takes them. */
  rate: number;
  blockSize?: number;
  /** DNS server to resolve `to` with (A's stub in the lab). */
  resolver?: string;
  /** Send nothing from `atMs` for `ms` (the connection stays open and idle), then go on at `rate`. */
  pause?: { atMs: number; ms: number };
}

/** Resolve a name to its first AAAA through `server` (or the system's resolver). */
export async function resolveAaaa(name: string, server?: string): Promise<string> {
  if (isIP(name)) return name;
  const r = new Resolver({ timeout: 2000, tries: 2 });
  if (server) r.setServers([server]);
  const addrs = await r.resolve6(name);
  if (!addrs[0]) throw new Error(`no AAAA for ${name}`);
  return addrs[0];
}

/** Connect, send paced blocks for `durationMs`, then close and report. */
export async function send(opts: SendOptions, emit: Emit = stdoutEmit): Promise<void> {
  const addr = await resolveAaaa(opts.to, opts.resolver);
  const sock: Socket = await new Promise((resolve, reject) => {
    const s = connect({ host: addr, port: opts.port, noDelay: true }, () => resolve(s));
    s.once('error', reject);
    setTimeout(() => reject(new Error(`connect to [${addr}]:${opts.port} timed out`)), 10_000).unref();
  });
  emit({ ev: 'connected', t: Date.now(), remote: `[${addr}]:${opts.port}` });
  const blockSize = opts.blockSize ?? 16_384;
  const start = Date.now();
  let seq = 0;
  let sent = 0;
  let interval = 0;
  let blocked = false;
  let error: string | undefined;
  sock.on('drain', () => { blocked = false; });
  sock.on('error', (e) => { error = e.message; });
  const pump = (): void => {
    const elapsed = Date.now() - start;
    const p = opts.pause;
    if (p && elapsed >= p.atMs && elapsed < p.atMs + p.ms) return;
    const active = p && elapsed >= p.atMs + p.ms ? elapsed - p.ms : elapsed;
    const owed = opts.rate > 0 ? (opts.rate * active) / 1000 - sent : Infinity;
    let budget = opts.rate > 0 ? owed : 64 * blockSize;
    while (!blocked && budget > 0 && !error) {
      const b = encodeBlock(seq++, blockSize);
      sent += b.length;
      interval += b.length;
      budget -= b.length;
      if (!sock.write(b)) blocked = true;
    }
  };
  const ticker = setInterval(() => { emit({ ev: 'tick', t: Date.now(), bytes: interval, total: sent }); interval = 0; }, TICK_MS);
  const pacer = setInterval(pump, opts.rate > 0 ? 5 : 1);
  await new Promise((r) => setTimeout(r, opts.durationMs));
  clearInterval(pacer);
  clearInterval(ticker);
  // Wait for the receiver to close its side after reading everything (bounded by the caller).
  await new Promise<void>((resolve) => {
    sock.once('close', () => resolve());
    sock.end();
  });
  emit({ ev: 'done', t: Date.now(), role: 'send', total: sent, ...(error ? { error } : {}) });
}

function arg(argv: string[], name: string, def?: string): string {
  const i = argv.indexOf(`--${name}`);
  const v = i >= 0 ? argv[i + 1] : def;
  if (v === undefined) throw new Error(`lab-stream: --${name} is required`);
  return v;
}

/** Program entry: `serve …` or `send …` (see the header). */
export async function streamMain(argv: string[]): Promise<void> {
  const [mode, ...rest] = argv;
  if (mode === 'serve') {
    await serve({ port: Number(arg(rest, 'port', '7000')), once: rest.includes('--once') });
  } else if (mode === 'send') {
    const resolver = rest.includes('--resolver') ? arg(rest, 'resolver') : undefined;
    const pause = rest.includes('--pause') ? arg(rest, 'pause').split(':').map(Number) : undefined;
    await send({
      to: arg(rest, 'to'), port: Number(arg(rest, 'port', '7000')), durationMs: Number(arg(rest, 'duration', '5000')),
      rate: Number(arg(rest, 'rate', '0')), blockSize: Number(arg(rest, 'block', '16384')), ...(resolver ? { resolver } : {}),
      ...(pause && pause.length === 2 && pause.every((x) => Number.isInteger(x) && x >= 0) ? { pause: { atMs: pause[0]!, ms: pause[1]! } } : {}),
    });
  } else {
    throw new Error('usage: stream.ts serve --port N [--once] | send --to HOST --port N --duration MS [--rate B/s] [--resolver ADDR] [--pause AT:MS]');
  }
}

if (process.argv[1] && import.meta.filename === process.argv[1]) {
  streamMain(process.argv.slice(2)).then(
    () => process.exit(0),
    (e: unknown) => { process.stderr.write(`lab-stream: ${(e as Error).message}\n`); process.exit(1); },
  );
}
