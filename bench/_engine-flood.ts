// Flood figures for bench/engine.ts (issue 15 "Figures"; not a benchmark itself:
// the leading "_" keeps it out of `npm run bench`). Real `shim6 resolver`
// processes — the engine in control-plane-only mode on UDP 5533, no TUN — one
// with the default reply limits and one with `replyLimit: off`, each alone in a
// namespace of ours, side by side in one run; a flood tool (bench/_flooder.ts)
// in a third namespace holds 1,000 source addresses in 1,000 /64s. Each flood
// (I1s, or payload packets with unknown tags, from 1 source or from 1,000) goes
// to one target at a time; around it we read the target's CPU time
// (utime + stime, /proc/PID/stat), its namespace's UDP counters (what reached
// its socket), its `engine.guard` counters (control socket), and the replies
// the flooder got back. Traffic goes only to namespaces created here.
import { spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { NetLab, type Netns } from '../test/helpers/netns.ts';
import { controlRequest } from '../shim/daemon/control/client.ts';
import { DEFAULT_REPLY_LIMIT } from '../shim/engine/reply-limit.ts';
import { SHIM6_UDP_PORT } from '../shim/constants.ts';
import { loadAddon } from '../native/addon.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.join(HERE, '..');
const BIN = path.join(ROOT, 'bin', 'shim6.js');
const FLOODER = path.join(HERE, '_flooder.ts');
/** Sources of the many-source floods: 2001:db8:1000::1 … one per /64. */
export const SOURCES = 1000;
const source = (i: number): string => `2001:db8:${(0x1000 + i).toString(16)}::1`;
/** Before each flood: the buckets refill (burst 10 per /64 at 10/s, 200 overall at 200/s) and the target is idle. */
const PAUSE_MS = 1500;

export type Limits = 'on' | 'off';
export interface FloodKind { kind: 'i1' | 'payload'; sources: number }
export const FLOODS: readonly FloodKind[] = [
  { kind: 'i1', sources: 1 }, { kind: 'i1', sources: SOURCES },
  { kind: 'payload', sources: 1 }, { kind: 'payload', sources: SOURCES },
];

/** One flood against one target. */
export interface FloodRun {
  kind: FloodKind['kind']; sources: number; limits: Limits;
  sent: number; octets: number;
  /** Datagrams the target's namespace delivered to its socket, and those its full socket dropped. */
  reached: number; socketDrops: number;
  /** Replies the flooder received, by message. */
  replies: number; byType: Record<string, number>;
  /** The target's own counts (engine.guard.replies, all kinds): sent, limited, oversize. */
  guard: { sent: number; limited: number; oversize: number };
  /** Target CPU time during the flood: user + system, and each. */
  sendMs: number; lastReplyMs: number; cpuMs: number; userMs: number; sysMs: number;
}

interface Target { limits: Limits; address: string; pid: number; sock: string }

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** utime and stime of `pid` (every thread), in ms. */
function cpuOf(pid: number): { user: number; sys: number } {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return { user: (Number(f[11]) * 1000) / CLK_TCK, sys: (Number(f[12]) * 1000) / CLK_TCK };
}

const cpuMsOf = (pid: number): number => { const c = cpuOf(pid); return c.user + c.sys; };

/** UDP counters of the namespace `pid` lives in (/proc/PID/net is that namespace's). */
function udpCounters(pid: number): { inDatagrams: number; rcvbufErrors: number } {
  const text = readFileSync(`/proc/${pid}/net/snmp6`, 'utf8');
  const get = (k: string): number => Number(new RegExp(`^${k}\\s+(\\d+)`, 'm').exec(text)?.[1] ?? 0);
  return { inDatagrams: get('Udp6InDatagrams'), rcvbufErrors: get('Udp6RcvbufErrors') };
}

/** Octets waiting in the target's UDP 5533 socket (0 once it has read everything). */
function rxQueue(pid: number): number {
  const port = `:${SHIM6_UDP_PORT.toString(16).toUpperCase().padStart(4, '0')}`;
  let total = 0;
  for (const line of readFileSync(`/proc/${pid}/net/udp6`, 'utf8').split('\n')) {
    // sl local_address remote_address st tx_queue:rx_queue …
    const cols = line.trim().split(/\s+/);
    if (cols[1]?.endsWith(port)) total += parseInt(cols[4]?.split(':')[1] ?? '0', 16);
  }
  return total;
}

async function guardOf(t: Target): Promise<FloodRun['guard']> {
  const st = await controlRequest(t.sock, 'status') as { engine: { guard: { replies: Record<string, { sent: number; limited: number; oversize: number }> } } | null };
  if (!st.engine) throw new Error(`target ${t.limits}: the engine did not start`);
  const g = { sent: 0, limited: 0, oversize: 0 };
  for (const c of Object.values(st.engine.guard.replies)) { g.sent += c.sent; g.limited += c.limited; g.oversize += c.oversize; }
  return g;
}

/** The flood tool in its namespace: one JSON line per command and per answer. */
class Flooder {
  private readonly pending: Array<(v: Record<string, unknown>) => void> = [];
  constructor(private readonly child: ChildProcess) {
    createInterface({ input: child.stdout! }).on('line', (l) => this.pending.shift()?.(JSON.parse(l) as Record<string, unknown>));
  }

  async ask(cmd: Record<string, unknown>): Promise<Record<string, unknown>> {
    const answer = new Promise<Record<string, unknown>>((r) => this.pending.push(r));
    this.child.stdin!.write(JSON.stringify(cmd) + '\n');
    const a = await answer;
    if (a.ok !== true) throw new Error(`flooder: ${String(a.error)}`);
    return a;
  }
}

async function startTarget(net: NetLab, dir: string, ns: Netns, limits: Limits, address: string): Promise<Target> {
  const conf = path.join(dir, `${limits}.yaml`);
  writeFileSync(conf, limits === 'off' ? 'replyLimit: off\n' : '{}\n');
  const sock = path.join(dir, `${limits}.sock`);
  // `ip netns exec` execs the command, so the child's pid is the resolver's own.
  const child = net.spawn(ns, [process.execPath, BIN, 'resolver', '--config', conf, '--listen', '127.0.0.1:5300', '--upstream', '127.0.0.1:9', '--socket', sock, '--no-capability'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr!.on('data', (d: Buffer) => { if (log.length < 20_000) log += d.toString(); });
  for (let i = 0; i < 200 && !log.includes('resolver ready'); i++) {
    if (child.exitCode !== null) break;
    await sleep(50);
  }
  if (!log.includes(`ulid ${address}`)) throw new Error(`target ${limits} did not start with its engine on ${address}: ${log.slice(0, 2000)}`);
  return { limits, address, pid: child.pid!, sock };
}

/** One flood against one target: counters and CPU before, the flood, the target's socket drained, counters and CPU after. */
async function floodOnce(flooder: Flooder, t: Target, f: FloodKind, count: number, rate: number): Promise<FloodRun> {
  await flooder.ask({ op: 'prepare', kind: f.kind, count, sources: Array.from({ length: f.sources }, (_, i) => source(i)), dst: t.address, port: SHIM6_UDP_PORT });
  await sleep(PAUSE_MS);
  const g0 = await guardOf(t);
  const u0 = udpCounters(t.pid);
  const c0 = cpuOf(t.pid);
  const r = await flooder.ask({ op: 'go', rate }) as { sent: number; octets: number; sendMs: number; lastReplyMs: number; replies: Record<string, number> };
  for (let i = 0; i < 1500 && rxQueue(t.pid) > 0; i++) await sleep(20);
  await sleep(50);
  const c1 = cpuOf(t.pid);
  const u1 = udpCounters(t.pid);
  const g1 = await guardOf(t);
  return {
    kind: f.kind, sources: f.sources, limits: t.limits, sent: r.sent, octets: r.octets,
    reached: u1.inDatagrams - u0.inDatagrams, socketDrops: u1.rcvbufErrors - u0.rcvbufErrors,
    replies: Object.values(r.replies).reduce((a, b) => a + b, 0), byType: r.replies,
    guard: { sent: g1.sent - g0.sent, limited: g1.limited - g0.limited, oversize: g1.oversize - g0.oversize },
    sendMs: r.sendMs, lastReplyMs: r.lastReplyMs, cpuMs: c1.user + c1.sys - c0.user - c0.sys, userMs: c1.user - c0.user, sysMs: c1.sys - c0.sys,
  };
}

/** Why the floods cannot run here, or undefined when they can (root for namespaces, the addon for the flooder's sendmmsg). */
export function floodsUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces)';
  try {
    loadAddon();
  } catch (e) {
    return (e as Error).message;
  }
  return undefined;
}

/**
 * Every flood of FLOODS against both targets, `rounds` times; within a flood
 * the two targets take turns going first (floodsUnavailable() first).
 */
export async function floodFigures(opts: { count: number; rate: number; rounds: number; progress: (s: string) => void }): Promise<{ runs: FloodRun[]; idleCpuMsPerS: number }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-flood-'));
  const net = new NetLab();
  try {
    const fl = net.ns('efl');
    const targets: Target[] = [];
    for (const [i, limits] of (['on', 'off'] as const).entries()) {
      const ns = net.ns(`e${limits}`);
      const prefix = `2001:db8:${(0xa + i).toString(16)}::`;
      net.veth(fl, `fl${i}`, ns, 'tg0');
      net.addr(fl, `fl${i}`, `${prefix}2/64`);
      net.addr(ns, 'tg0', `${prefix}1/64`);
      // Replies to every source go through the flooder's one address on the link (one neighbour entry).
      net.run(ns, ['ip', '-6', 'route', 'add', 'default', 'via', `${prefix}2`, 'dev', 'tg0']);
      targets.push(await startTarget(net, dir, ns, limits, `${prefix}1`));
    }
    const batch = Array.from({ length: SOURCES }, (_, i) => `address add ${source(i)}/128 dev fl0 nodad`).join('\n') + '\n';
    net.run(fl, ['ip', '-6', '-batch', '-'], { input: batch });
    const flooder = new Flooder(net.spawn(fl, [process.execPath, '--import', 'tsx', FLOODER], { stdio: ['pipe', 'pipe', 'inherit'], cwd: ROOT }));
    await flooder.ask({ op: 'setup', sources: Array.from({ length: SOURCES }, (_, i) => source(i)) });

    // The idle cost of a target, to set against the floods' CPU figures.
    const idle0 = cpuMsOf(targets[0]!.pid);
    await sleep(2000);
    const idleCpuMsPerS = (cpuMsOf(targets[0]!.pid) - idle0) / 2;

    const runs: FloodRun[] = [];
    for (let round = 0; round < opts.rounds; round++) {
      for (const [k, f] of FLOODS.entries()) {
        const order = (round + k) % 2 === 0 ? targets : [...targets].reverse();
        for (const t of order) {
          const r = await floodOnce(flooder, t, f, opts.count, opts.rate);
          runs.push(r);
          opts.progress(`  round ${round + 1}/${opts.rounds} ${label(r)}, limits ${r.limits}: ${r.replies} replies (target: sent ${r.guard.sent}, limited ${r.guard.limited}, oversize ${r.guard.oversize}), reached ${r.reached}/${r.sent} (${r.socketDrops} dropped by its full socket), ${r.sendMs.toFixed(0)} ms, target CPU ${r.cpuMs.toFixed(0)} ms (user ${r.userMs.toFixed(0)}, system ${r.sysMs.toFixed(0)})`);
        }
      }
    }
    return { runs, idleCpuMsPerS };
  } finally {
    await net.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
}

export const label = (f: FloodKind): string => `${f.kind === 'i1' ? 'I1' : 'payload, unknown tag'} × ${f.sources === 1 ? '1 source' : `${f.sources.toLocaleString('en-US')} sources`}`;

const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2; };
const int = (x: number): string => Math.round(x).toLocaleString('en-US');

/**
 * The table: per flood, limits on and off, medians over the rounds (each
 * column its own median; the CPU ratio is the median of the rounds' ratios,
 * each round's pair measured back to back). `bound` is
 * what the limits allow over the time the target answered (first packet sent →
 * last reply received): burst + rate·t of the per-/64 bucket for one source, of
 * the global bucket for many.
 */
export function floodTable(runs: readonly FloodRun[], count: number): string[] {
  const out = [
    '| flood | limits | reached the target | replies | per 100k sent | bound burst + rate·t | flood s | t s (to last reply) | target CPU ms (user + system) | µs per packet reached | CPU on/off |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const f of FLOODS) {
    const of = (l: Limits) => runs.filter((r) => r.kind === f.kind && r.sources === f.sources && r.limits === l);
    const on = of('on'), off = of('off');
    const ratios = on.map((r, i) => (off[i] ? r.cpuMs / off[i].cpuMs : NaN)).filter((x) => Number.isFinite(x));
    for (const [l, rs] of [['on', on], ['off', off]] as const) {
      if (rs.length === 0) continue;
      const b = f.sources === 1 ? DEFAULT_REPLY_LIMIT.perPrefix : DEFAULT_REPLY_LIMIT.global;
      const m = (pick: (r: FloodRun) => number): number => median(rs.map(pick));
      const t = m((r) => r.lastReplyMs) / 1000;
      const replies = m((r) => r.replies);
      const targetSent = m((r) => r.guard.sent);
      const cells = [
        label(f), l, int(m((r) => r.reached)),
        `${int(replies)}${targetSent === replies ? '' : ` (target sent ${int(targetSent)})`}`,
        int((replies * 100_000) / count),
        l === 'on' ? int(b.burst + b.rate * t) : '—',
        (m((r) => r.sendMs) / 1000).toFixed(1), t.toFixed(1),
        `${int(m((r) => r.cpuMs))} (${int(m((r) => r.userMs))} + ${int(m((r) => r.sysMs))})`, m((r) => (r.cpuMs * 1000) / Math.max(1, r.reached)).toFixed(1),
        l === 'on' && ratios.length ? `**${median(ratios).toFixed(2)}**${ratios.length > 1 ? ` (${ratios.map((x) => x.toFixed(2)).join(', ')})` : ''}` : '',
      ];
      out.push(`| ${cells.join(' | ')} |`);
    }
  }
  return out;
}
