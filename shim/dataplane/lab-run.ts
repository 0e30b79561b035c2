/**
 * One measured stream through the lab: the receiver in B, the sender in A, a
 * failure of link P injected mid-stream, and the figures (stall, octets sent
 * and verified, corruption). Used by `shim6 lab demo` and `bench/failover.ts`.
 *
 * Owns the two stream processes it starts (killed when the run ends, however
 * it ends); knows nothing of shim6 itself: the same run measures plain TCP,
 * MPTCP (`wrap: ['mptcpize', 'run']`) and TCP through the shim6 daemons.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import path from 'node:path';
import { blackhole, setLink, LAB_ADDR, LabError, type Lab, type LabLink } from './lab-topology.ts';
import type { StreamEvent } from './lab-stream.ts';

const STREAM_MAIN = path.join(import.meta.dirname, 'lab-stream.ts');

export type FailureKind = 'blackhole' | 'down' | 'none';

export interface RunOptions {
  /** Name or address of B as the sender sees it (default B's address on P). */
  to?: string;
  /** DNS server the sender resolves `to` with. */
  resolver?: string;
  port?: number;
  durationMs: number;
  /** Octets per second (0 = unpaced). */
  rate: number;
  /** When, after the stream connects, link P fails. */
  failAtMs: number;
  failure: FailureKind;
  link?: LabLink;
  /** How long after the sending window to wait for the stream to drain and close (default 5000). */
  graceMs?: number;
  /** Prefix for both stream commands (e.g. `['mptcpize', 'run']`). */
  wrap?: string[];
  /** Called with every event as it arrives (for a live timeline). */
  onEvent?: (who: 'send' | 'recv' | 'lab', e: StreamEvent | { ev: 'failure'; t: number; kind: FailureKind; link: LabLink }) => void;
}

/** A 100 ms sample of the receiver. */
export interface Sample {
  t: number;
  bytes: number;
}

export interface RunResult {
  /** Longest gap between two arrivals of data at the receiver, ms (counting a silence still open at the end). */
  stall_ms: number;
  /** True if data arrived again after the failure. */
  recovered: boolean;
  /** Both ends finished within the grace time (the receiver saw the end of the stream). */
  complete: boolean;
  bytes_sent: number;
  bytes_verified: number;
  corrupt: number;
  connectedAt: number;
  failAt: number | undefined;
  /** Receiver samples, one per 100 ms. */
  samples: Sample[];
}

function streamProc(ns: string, wrap: string[], args: string[]): ChildProcess {
  return spawn('ip', ['netns', 'exec', ns, ...wrap, process.execPath, '--import', 'tsx', STREAM_MAIN, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    cwd: path.resolve(import.meta.dirname, '../..'),
  });
}

function lines(child: ChildProcess, on: (e: StreamEvent) => void): void {
  if (!child.stdout) return;
  createInterface({ input: child.stdout }).on('line', (l) => {
    try { on(JSON.parse(l) as StreamEvent); } catch { /* not ours */ }
  });
}

function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => { child.kill('SIGKILL'); resolve(); }, 1500);
    child.once('exit', () => { clearTimeout(t); resolve(); });
    child.kill('SIGTERM');
  });
}

/** Run one stream A→B with a failure of link P at `failAtMs`; bounded by duration + grace (+ start-up). */
export async function runStream(lab: Lab, o: RunOptions): Promise<RunResult> {
  const port = o.port ?? 7000;
  const wrap = o.wrap ?? [];
  const link = o.link ?? 'P';
  const server = streamProc(lab.b, wrap, ['serve', '--port', String(port), '--once']);
  let client: ChildProcess | undefined;
  let stderr = '';
  server.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); });
  try {
    const samples: Sample[] = [];
    let recvTick: Extract<StreamEvent, { ev: 'tick' }> | undefined;
    let recvDone: Extract<StreamEvent, { ev: 'done' }> | undefined;
    let sendLast = 0;
    let sendDone = false;
    let failAt: number | undefined;
    let connectedAt = 0;
    const listening = new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new LabError(`stream receiver in ${lab.b} did not start: ${stderr}`)), 15_000);
      lines(server, (e) => {
        o.onEvent?.('recv', e);
        if (e.ev === 'listening') { clearTimeout(t); resolve(); }
        if (e.ev === 'tick') { recvTick = e; samples.push({ t: e.t, bytes: e.bytes }); }
        if (e.ev === 'done') recvDone = e;
      });
      server.once('exit', () => reject(new LabError(`stream receiver exited: ${stderr}`)));
    });
    await listening;
    const to = o.to ?? LAB_ADDR.bP;
    client = streamProc(lab.a, wrap, ['send', '--to', to, '--port', String(port), '--duration', String(o.durationMs), '--rate', String(o.rate), ...(o.resolver ? ['--resolver', o.resolver] : [])]);
    client.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); });
    const finished = new Promise<void>((resolve) => {
      lines(client!, (e) => {
        o.onEvent?.('send', e);
        if (e.ev === 'connected') {
          connectedAt = e.t;
          if (o.failure !== 'none') {
            setTimeout(() => {
              if (o.failure === 'blackhole') blackhole(lab, link); else setLink(lab, link, false);
              failAt = Date.now();
              o.onEvent?.('lab', { ev: 'failure', t: failAt, kind: o.failure, link });
            }, o.failAtMs);
          }
        }
        if (e.ev === 'tick' || e.ev === 'done') sendLast = e.total;
        if (e.ev === 'done') { sendDone = true; resolve(); }
      });
      client!.once('exit', () => resolve());
    });
    await Promise.race([finished, new Promise((r) => setTimeout(r, o.durationMs + (o.graceMs ?? 5000)))]);
    if (!connectedAt) throw new LabError(`the stream did not connect to ${to}: ${stderr.trim()}`);
    // Give the receiver a moment to report its final figures.
    for (let i = 0; i < 20 && !recvDone; i++) await new Promise((r) => setTimeout(r, 100));
    const endAt = connectedAt + o.durationMs;
    const tick = recvTick as Extract<StreamEvent, { ev: 'tick' }> | undefined;
    const done = recvDone as Extract<StreamEvent, { ev: 'done' }> | undefined;
    const maxGap = done?.maxGapMs ?? tick?.maxGapMs ?? 0;
    const lastDataAt = tick?.lastAt ?? lastArrival(samples);
    const openGap = done ? 0 : Math.max(0, endAt - (lastDataAt ?? connectedAt));
    const recovered = failAt === undefined || samples.some((s) => s.t > failAt! + 100 && s.bytes > 0);
    return {
      stall_ms: Math.max(maxGap, openGap),
      recovered,
      complete: sendDone && done !== undefined,
      bytes_sent: sendDone || sendLast ? sendLast : 0,
      bytes_verified: done?.verified ?? tick?.verified ?? 0,
      corrupt: done?.corrupt ?? tick?.corrupt ?? 0,
      connectedAt,
      failAt,
      samples,
    };
  } finally {
    await Promise.all([client ? stop(client) : Promise.resolve(), stop(server)]);
  }
}

function lastArrival(samples: Sample[]): number | undefined {
  for (let i = samples.length - 1; i >= 0; i--) if (samples[i]!.bytes > 0) return samples[i]!.t;
  return undefined;
}
