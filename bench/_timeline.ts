/**
 * Where a miss's time goes, from the wire: a capture on the loopback while the
 * resolver bench's one-thread interleaved run asks its targets (bench/resolver.ts
 * `--timeline`). Every datagram of a miss is timestamped where the kernel hands it
 * to the loopback device, so per stub and per miss:
 *
 *   to upstream    the client's question → the stub's first upstream question
 *   upstream       that question → the upstream's first answer, and → its last
 *   after last     the last upstream answer → the stub's reply to the client
 *   total          the client's question → the reply
 *
 * and for Knot asked directly by the client, the same "upstream" legs. Medians over
 * the run's misses; for a stub whose misses take two upstream answers (pickup on),
 * also its misses split by how far apart the two answers came. A stub's upstream
 * sockets are told from its others by their owner (`ss -uanp` while the run lasts:
 * the pool replaces a socket every few hundred questions).
 *
 * Needs dumpcap and tshark (Debian `tshark`). A capture costs every target alike
 * but is not free: its figures are for where the time goes, not for the targets.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { median } from './_stats.ts';

/** A stub whose misses the capture follows. */
export interface TimelineStub { name: string; pid: number; port: number }

/** One captured DNS datagram: time (µs), UDP ports, QR, the question's name (lowercased) and type. */
export interface Packet { t: number; src: number; dst: number; response: boolean; name: string; qtype: number }

/** Medians in µs of one stub's legs. */
export interface Legs {
  misses: number;
  toUpstream?: number | undefined;
  firstAnswer?: number | undefined;
  lastAnswer?: number | undefined;
  afterLast?: number | undefined;
  total?: number | undefined;
  /** Misses with two upstream answers, by the time between them: under 10 µs, and the rest. */
  split?: { near: SplitLegs; far: SplitLegs };
}
interface SplitLegs { misses: number; afterLast: number | undefined; total: number | undefined }

export interface Timeline { stubs: Record<string, Legs>; knot: { single: number | undefined; pairFirst: number | undefined; pairLast: number | undefined } }

export class TimelineCapture {
  private readonly dumpcap: ChildProcess;
  private readonly owners = new Map<number, number>(); // local port → pid
  private readonly snapshots: NodeJS.Timeout;
  private readonly ready: Promise<void>;

  /** Starts capturing UDP on lo to `file` (snaplen 160: headers and the question). */
  constructor(private readonly file: string, private readonly pids: readonly number[]) {
    rmSync(file, { force: true });
    this.dumpcap = spawn('dumpcap', ['-i', 'lo', '-f', 'udp', '-s', '160', '-B', '64', '-w', file], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.ready = new Promise((resolve, reject) => {
      let err = '';
      this.dumpcap.stderr!.on('data', (d: Buffer) => { err += d.toString(); if (err.includes('Capturing on')) resolve(); });
      this.dumpcap.on('exit', (code) => reject(new Error(`dumpcap exited ${code}: ${err.trim()}`)));
    });
    this.snapshots = setInterval(() => this.snapshot(), 250);
    this.snapshots.unref(); // a capture that failed to start must not keep the bench alive
  }

  /** Resolves once packets are being captured. */
  started(): Promise<void> { return this.ready; }

  /** Which of the stubs' processes owns each local UDP port now. */
  private snapshot(): void {
    const out = spawnSync('ss', ['-uanpH'], { encoding: 'utf8' }).stdout ?? '';
    for (const line of out.split('\n')) {
      const m = /:(\d+)\s+\S+\s+users:\(\("[^"]*",pid=(\d+)/.exec(line);
      if (m && this.pids.includes(Number(m[2]))) this.owners.set(Number(m[1]), Number(m[2]));
    }
  }

  /** Stops the capture and reads it: the legs of every stub in `stubs`, and of Knot (on `knotPort`) asked by the client. */
  async finish(stubs: readonly TimelineStub[], knotPort: number): Promise<Timeline> {
    this.snapshot();
    clearInterval(this.snapshots);
    if (this.dumpcap.exitCode === null && this.dumpcap.signalCode === null) {
      const exited = new Promise((resolve) => this.dumpcap.once('exit', resolve));
      this.dumpcap.kill('SIGTERM');
      await exited;
    }
    const r = spawnSync('tshark', ['-r', this.file, '-T', 'fields', '-E', 'separator=,', '-e', 'frame.time_epoch', '-e', 'udp.srcport', '-e', 'udp.dstport',
      '-e', 'dns.flags.response', '-e', 'dns.qry.name', '-e', 'dns.qry.type'], { encoding: 'utf8', maxBuffer: 1024 * 1024 * 1024 });
    rmSync(this.file, { force: true });
    if (r.status !== 0) throw new Error(`tshark: ${r.stderr}`);
    const packets: Packet[] = [];
    for (const line of r.stdout.split('\n')) {
      const f = line.split(',');
      if (f.length < 6 || !f[4]) continue;
      // Seconds since the epoch with ns: µs from the first whole second keep a double's precision.
      const [s, frac = ''] = f[0]!.split('.');
      packets.push({ t: Number(s!.slice(-4)) * 1e6 + Number(frac.padEnd(9, '0')) / 1e3, src: Number(f[1]), dst: Number(f[2]), response: f[3] === '1' || f[3] === 'True', name: f[4].toLowerCase(), qtype: Number(f[5]) });
    }
    return legs(packets, stubs, this.owners, knotPort);
  }
}

/**
 * Each stub's legs and Knot's, from the capture's packets grouped by question name. `owners`:
 * local UDP port → pid, for the stubs' sockets only.
 */
export function legs(packets: readonly Packet[], stubs: readonly TimelineStub[], owners: ReadonlyMap<number, number>, knot: number): Timeline {
  const byName = new Map<string, Packet[]>();
  for (const p of packets) {
    let l = byName.get(p.name);
    if (!l) byName.set(p.name, l = []);
    l.push(p);
  }
  const stubOut: Record<string, Legs> = {};
  for (const stub of stubs) {
    const acc: Record<'toUpstream' | 'firstAnswer' | 'lastAnswer' | 'afterLast' | 'total', number[]> = { toUpstream: [], firstAnswer: [], lastAnswer: [], afterLast: [], total: [] };
    const near: number[][] = [[], []];
    const far: number[][] = [[], []];
    const mine = (port: number): boolean => owners.get(port) === stub.pid;
    for (const ps of byName.values()) {
      const ask = ps.find((p) => !p.response && p.dst === stub.port);
      const reply = ask && ps.find((p) => p.response && p.src === stub.port && p.dst === ask.src);
      const ups = ps.filter((p) => (!p.response && p.dst === knot && mine(p.src)) || (p.response && p.src === knot && mine(p.dst)));
      const sent = ups.filter((p) => !p.response).map((p) => p.t);
      const got = ups.filter((p) => p.response).map((p) => p.t);
      if (!ask || !reply || sent.length === 0 || got.length === 0) continue;
      const first = Math.min(...sent), a0 = Math.min(...got), a1 = Math.max(...got);
      acc.toUpstream.push(first - ask.t);
      acc.firstAnswer.push(a0 - first);
      acc.lastAnswer.push(a1 - first);
      acc.afterLast.push(reply.t - a1);
      acc.total.push(reply.t - ask.t);
      if (got.length === 2) {
        const side = a1 - a0 < 10 ? near : far;
        side[0]!.push(reply.t - a1);
        side[1]!.push(reply.t - ask.t);
      }
    }
    const out: Legs = { misses: acc.total.length };
    for (const k of Object.keys(acc) as Array<keyof typeof acc>) out[k] = median(acc[k]);
    if (near[0]!.length + far[0]!.length > 0) {
      const s = (x: number[][]): SplitLegs => ({ misses: x[0]!.length, afterLast: median(x[0]), total: median(x[1]) });
      out.split = { near: s(near), far: s(far) };
    }
    stubOut[stub.name] = out;
  }
  // Knot asked by the client: a question to Knot from a port no stub owns; a pair when a record question came from that port.
  const single: number[] = [], pairFirst: number[] = [], pairLast: number[] = [];
  for (const ps of byName.values()) {
    for (const q of ps) {
      if (q.response || q.dst !== knot || owners.has(q.src)) continue;
      const answers = ps.filter((p) => p.response && p.src === knot && p.dst === q.src).map((p) => p.t);
      if (answers.length === 0) continue;
      if (answers.length === 1 && q.qtype === 28) single.push(answers[0]! - q.t);
      else if (answers.length === 2) { pairFirst.push(Math.min(...answers) - q.t); pairLast.push(Math.max(...answers) - q.t); }
    }
  }
  return { stubs: stubOut, knot: { single: median(single), pairFirst: median(pairFirst), pairLast: median(pairLast) } };
}

/** The timeline as lines of text. */
export function timelineLines(t: Timeline): string[] {
  const f = (x: number | undefined): string => (x === undefined ? 'n/a' : x.toFixed(0));
  const out: string[] = [];
  for (const [name, l] of Object.entries(t.stubs)) {
    out.push(`${name}: ${l.misses} misses; to upstream ${f(l.toUpstream)} µs, upstream's first answer ${f(l.firstAnswer)}, its last ${f(l.lastAnswer)}, after the last ${f(l.afterLast)}, total ${f(l.total)}`);
    if (l.split) {
      const s = l.split;
      out.push(`  ${name}, the two answers under 10 µs apart: ${s.near.misses} misses, after the last ${f(s.near.afterLast)} µs, total ${f(s.near.total)}; further apart: ${s.far.misses}, after the last ${f(s.far.afterLast)}, total ${f(s.far.total)}`);
    }
  }
  out.push(`Knot asked by the client: AAAA ${f(t.knot.single)} µs; the pair's first answer ${f(t.knot.pairFirst)}, its last ${f(t.knot.pairLast)}`);
  return out;
}
