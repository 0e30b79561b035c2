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
import { nodeArgs, packageRoot } from '../shim/runtime-paths.ts';
import { blackhole, setLink, LAB_ADDR, LAB_IF, LabError, type Lab, type LabLink } from './topology.ts';
import { deprecateAddress, removeAddress } from './renumber.ts';
import type { StreamEvent } from './stream.ts';

/**
 * How link P (or `link`) fails: `blackhole` drops everything on it at A (its ingress, and its
 * output, which A's stack sees as a local error: a TCP sender with nothing in flight then waits
 * in its persist timer, where a network's loss would time it out); `blackhole-far` drops it at B
 * instead (A's packets leave A and are lost, as in a black hole in the network); `down` sets A's
 * interface down; `withdraw`: A's address on the link is deprecated, then removed 500 ms later
 * (renumbering, RFC 4862); `remove`: removed at once (`ip addr del`).
 */
export type FailureKind = 'blackhole' | 'blackhole-far' | 'down' | 'none' | 'withdraw' | 'remove';

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
  /** And not before this resolves (called when the stream connects): e.g. a restarted daemon's context is back. */
  failGate?: () => Promise<void>;
  failure: FailureKind;
  link?: LabLink;
  /** How long after the sending window to wait for the stream to drain and close (default 5000). */
  graceMs?: number;
  /** The sender sends nothing from `atMs` (after it connects) for `ms`: the connection idles. */
  pause?: { atMs: number; ms: number };
  /** Prefix for both stream commands (e.g. `['mptcpize', 'run']`). */
  wrap?: string[];
  /**
   * Other things to do during the stream, each `atMs` after it connects (e.g.
   * restart a daemon). Each must be before the failure; the run waits for them.
   */
  actions?: { atMs: number; run: () => Promise<void> }[];
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
  /** The same, of the silences that ended after the failure (or were still open): the failure's own stall. */
  stall_after_fail_ms: number | null;
  /**
   * True if data written after the failure arrived: the receiver verified more octets than the
   * sender had written by its first report after the failure. (Counting arrivals after the
   * failure's time instead would count octets read late from the receiver's socket buffer when
   * its process is slow, as on a busy machine, as a recovery.)
   */
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
  return spawn('ip', ['netns', 'exec', ns, ...wrap, process.execPath, ...nodeArgs('lab/stream.ts'), ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    cwd: packageRoot,
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

type Tick = Extract<StreamEvent, { ev: 'tick' }>;
type Done = Extract<StreamEvent, { ev: 'done' }>;

/** What the two stream processes reported (filled in as their lines arrive). */
interface Observed {
  samples: Sample[];
  recvTick?: Tick;
  recvDone?: Done;
  sendLast: number;
  sendDone: boolean;
  connectedAt: number;
  failAt?: number;
  /** The sender's octet count in its first report after the failure (≥ what it had written by then). */
  sentAtFailure?: number;
  /** Silences the receiver reported. */
  gaps: { t: number; from: number; ms: number }[];
  /** The running `actions`, and the first that failed. */
  actions: Promise<void>[];
  actionError?: Error;
}

/** Start the receiver in B and wait (≤ 60 s: only a hang takes that long, a busy machine can take 15) until it listens. */
async function startReceiver(lab: Lab, o: RunOptions, port: number, seen: Observed, err: { text: string }): Promise<ChildProcess> {
  const server = streamProc(lab.b, o.wrap ?? [], ['serve', '--port', String(port), '--once']);
  server.stderr?.on('data', (d: Buffer) => { err.text += d.toString(); });
  try {
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new LabError(`stream receiver in ${lab.b} did not start: ${err.text}`)), 60_000);
      lines(server, (e) => {
        o.onEvent?.('recv', e);
        if (e.ev === 'listening') { clearTimeout(t); resolve(); }
        if (e.ev === 'tick') { seen.recvTick = e; seen.samples.push({ t: e.t, bytes: e.bytes }); }
        if (e.ev === 'done') seen.recvDone = e;
        if (e.ev === 'gap') seen.gaps.push(e);
      });
      server.once('exit', () => reject(new LabError(`stream receiver exited: ${err.text}`)));
    });
  } catch (e) {
    await stop(server);
    throw e;
  }
  return server;
}

/** Start the sender in A; inject the failure `failAtMs` after it connects; resolve when it is done. */
function startSender(lab: Lab, o: RunOptions, port: number, to: string, seen: Observed, err: { text: string }): { client: ChildProcess; finished: Promise<void> } {
  const link = o.link ?? 'P';
  const client = streamProc(lab.a, o.wrap ?? [], ['send', '--to', to, '--port', String(port), '--duration', String(o.durationMs), '--rate', String(o.rate), ...(o.resolver ? ['--resolver', o.resolver] : []), ...(o.pause ? ['--pause', `${o.pause.atMs}:${o.pause.ms}`] : [])]);
  client.stderr?.on('data', (d: Buffer) => { err.text += d.toString(); });
  const finished = new Promise<void>((resolve) => {
    lines(client, (e) => {
      o.onEvent?.('send', e);
      if (e.ev === 'connected') {
        seen.connectedAt = e.t;
        for (const a of o.actions ?? []) {
          seen.actions.push(new Promise<void>((res) => setTimeout(res, a.atMs)).then(a.run).catch((err: Error) => { seen.actionError ??= err; }));
        }
        if (o.failure !== 'none') {
          const at = new Promise<void>((res) => setTimeout(res, o.failAtMs));
          void Promise.all([at, o.failGate?.()]).then(() => {
            if (o.failure === 'blackhole') blackhole(lab, link);
            else if (o.failure === 'blackhole-far') blackhole(lab, link, 'b');
            else if (o.failure === 'withdraw') {
              const address = link === 'P' ? LAB_ADDR.aP : LAB_ADDR.aQ;
              deprecateAddress(lab, 'a', LAB_IF[link], address);
              setTimeout(() => removeAddress(lab, 'a', LAB_IF[link], address), 500).unref();
            } else if (o.failure === 'remove') removeAddress(lab, 'a', LAB_IF[link], link === 'P' ? LAB_ADDR.aP : LAB_ADDR.aQ);
            else setLink(lab, link, false);
            seen.failAt = Date.now();
            o.onEvent?.('lab', { ev: 'failure', t: seen.failAt, kind: o.failure, link });
          });
        }
      }
      if (e.ev === 'tick' || e.ev === 'done') {
        seen.sendLast = e.total;
        if (seen.failAt !== undefined && seen.sentAtFailure === undefined && e.t >= seen.failAt) seen.sentAtFailure = e.total;
      }
      if (e.ev === 'done') { seen.sendDone = true; resolve(); }
    });
    client.once('exit', () => resolve());
  });
  return { client, finished };
}

/** The figures from what was observed. */
function summarize(seen: Observed, durationMs: number): RunResult {
  const { samples, recvTick: tick, recvDone: done, connectedAt, failAt, sentAtFailure } = seen;
  const maxGap = done?.maxGapMs ?? tick?.maxGapMs ?? 0;
  const lastDataAt = tick?.lastAt ?? lastArrival(samples);
  // A silence still open when the receiver was stopped counts until the end of the sending window.
  const openGap = done ? 0 : Math.max(0, connectedAt + durationMs - (lastDataAt ?? connectedAt));
  const verified = done?.verified ?? tick?.verified ?? 0;
  const afterFail = failAt === undefined ? null : Math.max(0, openGap, ...seen.gaps.filter((g) => g.t > failAt).map((g) => g.ms));
  return {
    stall_ms: Math.max(maxGap, openGap),
    stall_after_fail_ms: afterFail,
    recovered: failAt === undefined || (sentAtFailure !== undefined && verified > sentAtFailure),
    complete: seen.sendDone && done !== undefined,
    bytes_sent: seen.sendLast,
    bytes_verified: verified,
    corrupt: done?.corrupt ?? tick?.corrupt ?? 0,
    connectedAt,
    failAt,
    samples,
  };
}

/** Run one stream A→B with a failure of link P at `failAtMs`; bounded by duration + grace (+ start-up). */
export async function runStream(lab: Lab, o: RunOptions): Promise<RunResult> {
  const port = o.port ?? 7000;
  const to = o.to ?? LAB_ADDR.bP;
  const seen: Observed = { samples: [], sendLast: 0, sendDone: false, connectedAt: 0, actions: [], gaps: [] };
  const err = { text: '' };
  const server = await startReceiver(lab, o, port, seen, err);
  let client: ChildProcess | undefined;
  try {
    const sender = startSender(lab, o, port, to, seen, err);
    client = sender.client;
    // The bound's timer is cleared when the sender finishes first: left running, it kept the
    // process (a test file, \`shim6 lab demo\`) alive for the rest of the grace time.
    let bound: NodeJS.Timeout | undefined;
    await Promise.race([sender.finished, new Promise((r) => { bound = setTimeout(r, o.durationMs + (o.graceMs ?? 5000)); })]);
    clearTimeout(bound);
    if (!seen.connectedAt) throw new LabError(`the stream did not connect to ${to}: ${err.text.trim()}`);
    await Promise.all(seen.actions);
    if (seen.actionError) throw seen.actionError;
    // Give the receiver a moment to report its final figures.
    for (let i = 0; i < 20 && !seen.recvDone; i++) await new Promise((r) => setTimeout(r, 100));
    return summarize(seen, o.durationMs);
  } finally {
    await Promise.all([client ? stop(client) : Promise.resolve(), stop(server)]);
  }
}

function lastArrival(samples: Sample[]): number | undefined {
  for (let i = samples.length - 1; i >= 0; i--) if (samples[i]!.bytes > 0) return samples[i]!.t;
  return undefined;
}
