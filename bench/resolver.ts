/**
 * `npm run bench -- resolver [seconds] [rounds] [threads] [--json] [--rtt MS] [--parts LIST] [--compare DIR] [--timeline]`: dnsperf
 * against shim6's stub, dnsmasq and unbound (both as forwarders), all forwarding
 * to the same local Knot, in one run; each round prints the four targets of the
 * resolver (issue 16) as same-round ratios with pass/miss, and the end their
 * medians over the rounds. Asserts nothing. `--json`: the figures as JSON on
 * stdout (the text goes to stderr).
 * shim6 and unbound run twice: on one thread, and on `threads` (default one per
 * CPU, at least 2: shim6 `--workers`, unbound `num-threads`); dnsmasq has one.
 *
 * Measurements (each bounded by `seconds`, default 5; `rounds` rounds, default 3, medians):
 *  - cache-hit QPS: 100 names, warmed, dnsperf flat out (-q 200);
 *  - cache-miss QPS: unique names under a wildcard, dnsperf flat out, at most
 *    MISS_NAMES of them (fewer than dnsmasq's cache holds: its miss rate
 *    collapses once the cache is full, and that is not what is measured), with
 *    the CPU per miss of the server (its own /proc/<pid>/stat over the run), of
 *    Knot, and of the whole machine (/proc/stat);
 *  - latency p50/p99 of misses and of hits at a fixed rate (-Q), from dnsperf -v;
 *  - node-bare: a bare Node UDP responder (copies one stored answer, patches
 *    the ID) as the ceiling of Node's dgram on this machine;
 *  - shim6 lookup latency with capability pickup on vs off, interleaved (one
 *    client asks each in turn: interleavedLatency): straight to Knot, and through a delaying
 *    forwarder (bench/_delay-forwarder.ts) that puts Knot `--rtt` ms (default 20) away;
 *  - Knot's own latency for the TYPE65300 + AAAA pair against AAAA alone, with
 *    no stub in the path: the authoritative server's extra cost for the record
 *    question, which the pickup latency target allows on top of pickup off;
 *    measured alone, and again in the one-thread interleaved run (the
 *    target subtracts that one: the same load as the p50s it corrects);
 *  - a control (A/A): shim6-nopickup beside a second, identical pickup-off stub,
 *    in the same interleaved run, printed per round (not a target): how far one
 *    such ratio moves when nothing differs;
 *  - `--compare DIR` (with `side`): the pickup-on stub of another built tree
 *    (`DIR/bin/shim6.js`, e.g. a `git worktree` of the commit before a change) in
 *    the same one-thread interleaved run: its pickup-latency figure against the
 *    same pickup-off stub and Knot's extra, and its p50 against this tree's, per
 *    round and as medians (not targets);
 *  - `--timeline` (with `side`): each round's one-thread interleaved run
 *    under a capture on lo (bench/_timeline.ts, needs tshark), and where its
 *    misses' time goes, leg by leg, per stub and for Knot asked directly (not targets).
 * Every server's caches are emptied before each of its miss runs (emptyCaches),
 * so that all start them in the same state.
 * Knot answers every name (wildcards, with a capability record), so misses
 * measure the forwarders, not the authoritative server.
 * The machine is a VM: a run (interleaved runs and Knot alone included) during which the hypervisor gave more than
 * BENCH_MAX_STEAL (default 2 %) of the CPUs' time to other guests is repeated,
 * up to BENCH_STEAL_RETRIES (default 3) times, keeping the run with the least
 * steal; the steal of the kept runs is printed with the figures.
 *  - after idle (not a target): CPU per miss of a miss run that comes after
 *    IDLE_SECONDS without a query, and of the same server's next run (busy),
 *    with each server's resident memory at the end of the quiet time, for
 *    shim6, for dnsmasq, and for a shim6 run without SHIM6_V8_FLAGS
 *    (`shim6-reducer`): with V8's memory reducer, which shrinks an idle heap
 *    8 s after allocation stops, so that the next burst pays for growing it
 *    again (docs/operations.md, "Memory").
 * The stubs run with SHIM6_V8_FLAGS, as the installed command does.
 * `--parts` (comma-separated, default all): `servers` (each server's own hit,
 * latency and miss runs), `cycles` (the alternating miss runs of the CPU-per-miss
 * target), `side` (Knot alone and the interleaved latency runs of the pickup
 * targets), `idle` (the runs after a quiet minute); e.g. `--parts cycles,side`
 * measures only what the CPU-per-miss and pickup-latency targets need (the
 * hit-QPS target then has no figure).
 * Each target is printed per round, then as the median of the rounds with its
 * interval (bench/_stats.ts) and whether the run decides it (DECIDING_CONFIDENCE).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import dgram from 'node:dgram';
import os from 'node:os';
import path from 'node:path';
import { startAuthDns, type AuthDns } from '../test/helpers/authdns.ts';
import { capLine, capRdataHex } from '../test/resolver/harness.ts';
import { haveTool } from '../lab/tools.ts';
import { SHIM6_V8_FLAGS } from '../shim/runtime-paths.ts';
import { median, medianInterval } from './_stats.ts';
import { TimelineCapture, timelineLines, type TimelineStub } from './_timeline.ts';

const argv = process.argv.slice(2);
const JSON_OUT = argv.includes('--json');
const rttAt = argv.indexOf('--rtt');
/** Round trip (ms) the delaying forwarder puts between the far stubs and Knot. */
const FAR_RTT_MS = rttAt >= 0 ? Number(argv[rttAt + 1]) : 20;
const partsAt = argv.indexOf('--parts');
const PART_NAMES = ['servers', 'cycles', 'side', 'idle'] as const;
/** Which parts of a round run (see the header): all by default. */
const PARTS = new Set<string>(partsAt >= 0 ? String(argv[partsAt + 1] ?? '').split(',').filter(Boolean) : PART_NAMES);
for (const p of PARTS) if (!(PART_NAMES as readonly string[]).includes(p)) throw new Error(`--parts: unknown part ${p} (known: ${PART_NAMES.join(', ')})`);
const compareAt = argv.indexOf('--compare');
/** Another built tree of shim6 whose pickup-on stub joins the one-thread interleaved run (an A/B of two trees in one run). */
const COMPARE = compareAt >= 0 ? path.resolve(String(argv[compareAt + 1] ?? '')) : undefined;
/** Capture each round's one-thread interleaved run on lo and print where its misses' time goes (bench/_timeline.ts). */
const TIMELINE = argv.includes('--timeline');
if (TIMELINE && !(haveTool('dumpcap') && haveTool('tshark'))) throw new Error('--timeline needs dumpcap and tshark (Debian package tshark)');
if (TIMELINE && !PARTS.has('side')) throw new Error('--timeline captures a run of the side part: add side to --parts');
const positional = argv.filter((a, i) => !a.startsWith('--') && !(rttAt >= 0 && i === rttAt + 1) && !(partsAt >= 0 && i === partsAt + 1) && !(compareAt >= 0 && i === compareAt + 1));
const SECONDS = Number(positional[0] ?? 5);
const ROUNDS = Number(positional[1] ?? 3);
/** Threads for the multi-threaded rows (shim6 `--workers`, unbound `num-threads`): one per CPU, at least 2. */
const THREADS = Number(positional[2] ?? Math.max(2, os.cpus().length));
/** dnsmasq's cache (entries). */
const DNSMASQ_CACHE = 150_000;
/**
 * Unique names of one miss run (each asked once: dnsperf -n 1): fewer than
 * dnsmasq's cache holds, so the run ends after these or `seconds`, whichever
 * comes first, and no server's cache fills during it.
 */
const MISS_NAMES = 120_000;
/**
 * The CPU-per-miss target's own measurement: in every round, PAIR_CYCLES cycles of short
 * miss runs of shim6, dnsmasq and unbound back to back (PAIR_NAMES fresh names each,
 * flat out, each asked once; the order rotated every cycle), each cycle giving its
 * ratios; the round's figure is the median of its cycles'. Before the first cycle
 * each of the three answers one such run unmeasured: in a full run a server's own
 * runs come minutes before (shim6 waited for seven other servers' at most), and
 * what a run after a quiet minute costs is the idle part's figure, not this one's:
 * the cycles compare the servers busy, each as the others.
 */
const PAIR_CYCLES = Number(process.env.BENCH_PAIR_CYCLES ?? 4);
const PAIR_NAMES = 30_000;
/** The idle part's quiet time before its measured runs (s). */
const IDLE_SECONDS = Number(process.env.BENCH_IDLE_SECONDS ?? 60);
/** The confidence a median's interval needs to decide a target (medianInterval: 5 rounds give 94 %). */
const DECIDING_CONFIDENCE = 0.9;
/** The human-readable figures: stdout, or stderr when the JSON goes to stdout. */
const say = (line: string): void => { if (JSON_OUT) console.error(line); else console.log(line); };
const LAT_SECONDS = Math.min(SECONDS, 4);
const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-resolver-'));
const children: ChildProcess[] = [];
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function freePort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const p = s.address().port;
  s.close();
  return p;
}

function start(name: string, cmd: string, args: string[]): number | undefined {
  const c = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  c.stderr?.on('data', (d: Buffer) => { err += d.toString(); if (err.length > 4000) err = err.slice(-4000); });
  c.on('exit', (code) => { if (code && code !== 0 && !stopping) console.error(`${name} exited ${code}: ${err}`); });
  children.push(c);
  return c.pid;
}

let stopping = false;
async function cleanup(auth: AuthDns | undefined): Promise<void> {
  stopping = true;
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  await sleep(300);
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  await auth?.stop();
  rmSync(dir, { recursive: true, force: true });
}

async function waitAnswers(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const r = spawnSync('dig', ['@127.0.0.1', '-p', String(port), 'ready.bench.', 'A', '+time=1', '+tries=1', '+short'], { encoding: 'utf8' });
    if (r.stdout.trim()) return;
    await sleep(100);
  }
  throw new Error(`nothing answers on port ${port}`);
}

const BARE_RESPONDER = `
import dgram from 'node:dgram';
const s = dgram.createSocket('udp4');
const ans = Buffer.from('0000818000010001000000000572656164790562656e63680000010001c00c000100010000012c0004c0000201', 'hex');
s.on('message', (m, r) => { const out = Buffer.allocUnsafe(ans.length); ans.copy(out); out[0] = m[0]; out[1] = m[1]; s.send(out, r.port, r.address); });
s.bind(Number(process.argv[1]), '127.0.0.1', () => { s.setRecvBufferSize(4 << 20); s.setSendBufferSize(4 << 20); });
`;

function zone(): string {
  const cap = capRdataHex('2001:db8::1', ['2001:db8::1', '2001:db8:1::1']);
  return [
    '$ORIGIN bench.', '$TTL 3600',
    '@ SOA ns.bench. admin.bench. 1 3600 600 86400 3600', '@ NS ns.bench.', 'ns A 127.0.0.1',
    '* 3600 IN A 192.0.2.1', '* 3600 IN AAAA 2001:db8::1', capLine('*', 3600, cap),
  ].join('\n') + '\n';
}

interface Perf {
  qps: number; lost: number; queries: number; cpuUs?: number; authUs?: number; machineUs?: number; busy?: number; p50?: number; p99?: number;
  /** Share of the CPUs' time the hypervisor gave to other guests during the run (/proc/stat steal). */
  steal: number;
  /** Runs thrown away before this one for too much steal. */
  retries?: number;
}

/**
 * Steal above this share of the CPUs' time during a run makes it a run of another
 * machine: on this VM a neighbour took 6–20 % at times, and a flat-out run lost up
 * to half its rate to it. Such a run is repeated (RETRIES times at most); the run
 * with the least steal is kept, and the steal is printed with the figures.
 */
const MAX_STEAL = Number(process.env.BENCH_MAX_STEAL ?? 0.02);
const RETRIES = Number(process.env.BENCH_STEAL_RETRIES ?? 3);

/**
 * The whole machine's time (µs, all CPUs) from /proc/stat: busy (dnsperf, Knot,
 * the server and the kernel), stolen by the hypervisor, and all of it.
 */
function machineMicros(): { busy: number; steal: number; all: number } {
  const v = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.split(/\s+/).slice(1).map(Number);
  const all = v.reduce((a, b) => a + b, 0);
  const steal = v[7] ?? 0;
  return { busy: (all - v[3]! - v[4]! - steal) * 10_000, steal: steal * 10_000, all: all * 10_000 }; // minus idle, iowait and steal
}

/** A process's resident memory (MiB, /proc/<pid>/status VmRSS), or NaN. */
function rssMiB(pid: number | undefined): number {
  try {
    return Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024;
  } catch {
    return NaN;
  }
}

/** Knot's pid, for its CPU per query (the authoritative server every forwarder shares). */
let authPid: number | undefined;

/** CPU time (user + system, µs) a process has used so far, from /proc (clock ticks of 10 ms). */
function cpuMicros(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) * 10_000;
  } catch {
    return undefined;
  }
}

/**
 * dnsperf's arguments for one run: flat out (at most 200 outstanding), or verbose at `rate` queries/s;
 * `once`: every name of the file at most once (the run also ends when the file does).
 */
function dnsperfArgs(port: number, file: string, seconds: number, rate?: number, once = false): string[] {
  const args = ['-s', '127.0.0.1', '-p', String(port), '-d', file, '-l', String(seconds), '-q', '200', '-t', '2', '-c', '4'];
  if (rate) args.push('-Q', String(rate), '-v');
  if (once) args.push('-n', '1');
  return args;
}

/** The per-query latencies (ms, ascending) in a verbose dnsperf run's output. */
function latencies(out: string): number[] {
  return [...out.matchAll(/^> \S+ \S+ \S+ ([\d.]+)$/gm)].map((m) => Number(m[1]) * 1000).sort((a, b) => a - b);
}

/** One dnsperf run; with `rate` it runs verbose at that rate and computes latency percentiles (ms). */
function dnsperf(port: number, file: string, opts: { rate?: number; seconds: number; pid?: number | undefined; once?: boolean }): Perf {
  const cpu0 = cpuMicros(opts.pid);
  const auth0 = cpuMicros(authPid);
  const m0 = machineMicros();
  const r = spawnSync('dnsperf', dnsperfArgs(port, file, opts.seconds, opts.rate, opts.once), { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024, timeout: (opts.seconds + 20) * 1000 });
  const out = String(r.stdout);
  const qps = Number(/Queries per second:\s+([\d.]+)/.exec(out)?.[1] ?? 0);
  const lost = Number(/Queries lost:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const queries = Number(/Queries completed:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const cpu1 = cpuMicros(opts.pid);
  const auth1 = cpuMicros(authPid);
  const m1 = machineMicros();
  const cpuUs = cpu0 !== undefined && cpu1 !== undefined && queries > 0 ? (cpu1 - cpu0) / queries : undefined;
  const authUs = auth0 !== undefined && auth1 !== undefined && queries > 0 ? (auth1 - auth0) / queries : undefined;
  const machine = queries > 0 ? { machineUs: (m1.busy - m0.busy) / queries, busy: (m1.busy - m0.busy) / (m1.all - m0.all) } : {};
  const steal = m1.all > m0.all ? (m1.steal - m0.steal) / (m1.all - m0.all) : 0;
  if (!opts.rate) return { qps, lost, queries, steal, ...(cpuUs !== undefined ? { cpuUs } : {}), ...(authUs !== undefined ? { authUs } : {}), ...machine };
  const lat = latencies(out);
  const pct = (p: number): number => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] ?? NaN;
  return { qps, lost, queries, steal, p50: pct(0.5), p99: pct(0.99) };
}

/**
 * `run` again while the hypervisor stole more than MAX_STEAL of the machine
 * (see there) during it, at most RETRIES more times; the try with the least
 * steal is kept. `before` runs ahead of every try (a fresh name file, a cache flush).
 */
async function leastSteal<T>(run: () => Promise<{ value: T; steal: number }>, before?: () => Promise<void> | void): Promise<{ value: T; steal: number; retries: number }> {
  let best: { value: T; steal: number; retries: number } | undefined;
  for (let i = 0; i <= RETRIES; i++) {
    if (i > 0) await settle();
    await before?.();
    const r = await run();
    if (!best || r.steal < best.steal) best = { ...r, retries: i };
    if (r.steal <= MAX_STEAL) break;
  }
  return best!;
}

/** One dnsperf run with least steal (dnsperf's own steal figure). */
async function lowSteal(run: () => Perf, before?: () => Promise<void> | void): Promise<Perf> {
  const r = await leastSteal(async () => { const p = run(); return { value: p, steal: p.steal }; }, before);
  return { ...r.value, retries: r.retries };
}

/** The runs that are not one dnsperf (the interleaved runs, Knot alone): the machine's steal over the whole of `run`. */
async function lowStealAsync<T>(run: () => Promise<T>): Promise<{ value: T; steal: number; retries: number }> {
  return leastSteal(async () => {
    const m0 = machineMicros();
    const value = await run();
    const m1 = machineMicros();
    return { value, steal: m1.all > m0.all ? (m1.steal - m0.steal) / (m1.all - m0.all) : 0 };
  });
}

const stealText = (r: { steal: number; retries: number }): string => `${(100 * r.steal).toFixed(1)} %${r.retries ? ` after ${r.retries} retr${r.retries > 1 ? 'ies' : 'y'}` : ''}`;

/** The interleaved miss client (bench/_miss-client.c), compiled into the bench's folder at its start. */
const MISS_CLIENT = path.join(dir, 'miss-client');
function buildMissClient(): void {
  const cc = haveTool('cc') ? 'cc' : 'clang-14'; // clang-14 is one of the system packages (scripts/system-packages.txt)
  const r = spawnSync(cc, ['-O2', '-Wall', '-o', MISS_CLIENT, path.join(ROOT, 'bench/_miss-client.c')], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`bench: cannot compile bench/_miss-client.c with ${cc}: ${r.error?.message ?? r.stderr}`);
}

/**
 * One target of an interleaved run: a server's port, asked an AAAA question as an application
 * asks; or Knot, asked (`upstream`) an AAAA question as a stub asks it (AD set, 0x20 letter
 * case), or (`pair`) the pair a stub with pickup sends.
 */
interface MissTarget { port: number; pair?: boolean; upstream?: boolean }
/** A target's figures: questions asked and answered, and the p10, p50 and p90 of its round trips (µs). */
interface MissFigures { asked: number; answered: number; p10: number; p50: number; p90: number }

/**
 * Miss latency of several servers under the same conditions: one client
 * (bench/_miss-client.c) asks each of them in turn, every 2 ms each (the
 * 500/s of the latency runs), each turn about a fresh name (the same for all),
 * the targets spread evenly over the 2 ms and their order rotated every turn.
 * The servers of a ratio thus share every state of the machine, as when a
 * dnsperf per server ran at once, without one's work ever waiting for the
 * other's on this 2-CPU machine: with two dnsperfs, the phase between them
 * decided how often a miss of one met a miss of the other, and an A/A pair of
 * identical stubs gave per-round ratios of 0.84–1.74. The client waits for
 * answers in poll(), as dnsperf does, and asks Knot directly (`pair`) from a
 * pool of random ports, as the stub's pool does (one port would meet one of
 * Knot's SO_REUSEPORT workers for a whole run). Per target, in `targets` order.
 */
function interleavedLatency(targets: readonly MissTarget[], seconds: number, tag: string): Promise<MissFigures[]> {
  return new Promise((resolve, reject) => {
    const c = spawn(MISS_CLIENT, [String(seconds), '500', `${tag}-`, ...targets.map((t) => `${t.port}:${t.pair ? 'p' : t.upstream ? 'u' : 'a'}`)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    c.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    c.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    c.on('error', reject);
    c.on('close', (code) => {
      const rows = out.trim().split('\n').map((l) => l.split(' '));
      if (code !== 0 || rows.length !== targets.length) { reject(new Error(`bench: miss client exited ${code}: ${err.trim()}`)); return; }
      resolve(rows.map((f) => ({ asked: Number(f[2]), answered: Number(f[3]), p50: Number(f[4]), p10: Number(f[5]), p90: Number(f[6]) })));
    });
  });
}

/** `run` under a capture on lo (bench/_timeline.ts), whose figures are printed. */
async function timed<T>(round: number, stubs: readonly TimelineStub[], knotPort: number, run: () => Promise<T>): Promise<T> {
  const capture = new TimelineCapture(path.join(os.tmpdir(), `shim6-bench-timeline-${process.pid}.pcapng`), stubs.map((s) => s.pid));
  await capture.started();
  const got = await run();
  say(`round ${round + 1}/${ROUNDS} where the misses' time goes, from a capture on lo of the one-thread interleaved run (not a target; the capture costs every target alike):`);
  for (const line of timelineLines(await capture.finish(stubs, knotPort))) say(`  ${line}`);
  return got;
}

/**
 * Wait until the machine is quiet (under 10 % busy over 200 ms, at most 5 s):
 * a forwarder may still be working off a backlog after its flat-out run (dnsmasq
 * waits seconds for lost upstream queries), and that CPU must not be charged to
 * whichever server runs next. Returns how long it waited (ms).
 */
async function settle(): Promise<number> {
  const t0 = Date.now();
  while (Date.now() - t0 < 5000) {
    const a = machineMicros();
    await sleep(200);
    const b = machineMicros();
    if ((b.busy - a.busy) / (b.all - a.all) < 0.1) break;
  }
  return Date.now() - t0;
}

/**
 * Empty a server's caches (before each of its miss runs): dnsmasq by SIGHUP, a
 * shim6 stub by `shim6 flush` on its control socket, unbound by unbound-control
 * (`flush_zone .`: every message and RRset); node-bare has none. Then 200 ms for
 * the server to get on with it.
 */
async function emptyCaches(name: string, pid: number | undefined): Promise<void> {
  if (name === 'dnsmasq' && pid !== undefined) process.kill(pid, 'SIGHUP');
  else if (name.startsWith('shim6')) spawnSync(process.execPath, [path.join(ROOT, 'bin/shim6.js'), 'flush', '--socket', path.join(dir, `${name}.sock`)], { timeout: 30_000, stdio: 'ignore' });
  else if (name.startsWith('unbound')) spawnSync('unbound-control', ['-c', path.join(dir, `${name}.conf`), 'flush_zone', '.'], { timeout: 30_000, stdio: 'ignore' });
  else return;
  await sleep(200);
}

/** A shim6 stub's counters (`shim6 status --json` on its control socket, the threads added up; MBs with pickup), or undefined. */
function stubCounters(name: string): Record<string, number> | undefined {
  const r = spawnSync(process.execPath, [path.join(ROOT, 'bin/shim6.js'), 'status', '--json', '--socket', path.join(dir, `${name}.sock`)], { encoding: 'utf8', timeout: 30_000, maxBuffer: 256 * 1024 * 1024 });
  try {
    return (JSON.parse(r.stdout) as { resolver?: { counters?: Record<string, number> } }).resolver?.counters;
  } catch {
    return undefined;
  }
}

let fileSeq = 0;
function names(prefix: string, count: number, type = 'AAAA'): string {
  const f = path.join(dir, `q${fileSeq++}.txt`);
  const lines: string[] = [];
  for (let i = 0; i < count; i++) lines.push(`${prefix}${i}.bench. ${type}`);
  writeFileSync(f, lines.join('\n') + '\n');
  return f;
}

/** One round's figures: per server its medians-to-be, and the interleaved and floor runs. */
interface Round {
  /** /proc/loadavg's 1-minute figure at the start and the end of the round. */
  load: [number, number];
  servers: Record<string, Record<string, number>>;
  /** Knot alone: median round trip (µs) of AAAA, and of TYPE65300 + AAAA. */
  floor?: { single: number; pair: number };
  /**
   * The same, measured in the one-thread interleaved run (same load, same time): the Knot
   * extra the pickup latency target subtracts, as the stubs' p50s are measured under that load.
   */
  floorDuring?: { single: number; pair: number };
  /** Interleaved miss p50s (µs), pickup on and off: one thread, `threads` workers, the far upstream; `aa` the control (shim6-nopickup, shim6-nopickup-b). */
  side: { one?: [number, number]; multi?: [number, number]; far?: [number, number]; aa?: [number, number]; compare?: number };
  /** The alternating short miss runs: per cycle, CPU µs per miss of shim6 (pickup on, one thread), dnsmasq and unbound. */
  pairs?: Array<{ shim6: number; dnsmasq: number; unbound: number }>;
  /** The idle part: per server, CPU µs per miss of the run after IDLE_SECONDS without queries and of the run after that, and its resident memory (MiB) at the end of the quiet time. */
  idle?: Record<string, { idle: number; busy: number; rssMiB: number }>;
  checks: Check[];
}

/**
 * One target in one round, or the median over the rounds: then also `interval` (medianInterval) and
 * `decided`: whether the whole interval is on one side of the bound, with at least
 * DECIDING_CONFIDENCE (5 rounds or more). `pass` is the median's side.
 */
interface Check {
  key: string; label: string; value: number; unit: '×' | 'ms'; op: '≥' | '≤'; bound: number; pass: boolean; detail: string;
  interval?: { lo: number; hi: number; confidence: number }; decided?: boolean;
}

/** The four targets of the resolver (issue 16), from one round's figures of the default shim6 (pickup on, one thread). */
function checks(r: Omit<Round, 'checks'>): Check[] {
  const out: Check[] = [];
  const s = r.servers;
  const add = (key: string, label: string, value: number | undefined, unit: Check['unit'], op: Check['op'], bound: number, detail: string): void => {
    if (value === undefined || !Number.isFinite(value)) return;
    out.push({ key, label, value, unit, op, bound, pass: meets({ op, bound }, value), detail });
  };
  const sh = s.shim6, dm = s.dnsmasq, ub = s.unbound;
  if (sh && dm) add('hitQps', 'cache-hit QPS, shim6 / dnsmasq', sh.hitQps! / dm.hitQps!, '×', '≥', 1.0, `${sh.hitQps!.toFixed(0)} / ${dm.hitQps!.toFixed(0)} q/s`);
  // CPU per miss: the median over the round's alternating cycles of each cycle's ratio (see PAIR_CYCLES).
  const pairs = r.pairs ?? [];
  const cycles = (k: 'dnsmasq' | 'unbound'): string => pairs.map((c) => `${c.shim6.toFixed(1)}/${c[k].toFixed(1)}`).join(', ');
  const separate = (o: Record<string, number> | undefined): string => (sh?.missCpu && o?.missCpu ? `; the round's long miss runs: ${(sh.missCpu / o.missCpu).toFixed(2)}×` : '');
  if (pairs.length) add('missCpuDnsmasq', 'CPU per miss (pickup on), shim6 / dnsmasq', median(pairs.map((c) => c.shim6 / c.dnsmasq))!, '×', '≤', 1.0, `median of ${pairs.length} alternating cycles, µs per miss shim6/dnsmasq: ${cycles('dnsmasq')}${separate(dm)}`);
  if (pairs.length) add('missCpuUnbound', 'CPU per miss (pickup on), shim6 / unbound', median(pairs.map((c) => c.shim6 / c.unbound))!, '×', '≤', 1.5, `median of ${pairs.length} alternating cycles, µs per miss shim6/unbound: ${cycles('unbound')}${separate(ub)}`);
  const floor = r.floorDuring ?? r.floor;
  if (r.side.one && floor) {
    const [on, off] = r.side.one;
    const extra = floor.pair - floor.single;
    const alone = r.floor && r.floorDuring ? `; measured alone before it: ${(r.floor.pair - r.floor.single).toFixed(0)} µs` : '';
    add('pickupLatency', 'miss p50, (pickup on − Knot\'s extra) / pickup off', (on - extra) / off, '×', '≤', 1.05,
      `on ${on.toFixed(0)} µs, off ${off.toFixed(0)} µs, Knot's extra for the record question ${extra.toFixed(0)} µs${r.floorDuring ? ' (in the same run)' : ''}${alone}`);
  }
  if (r.side.one && floor && r.side.compare !== undefined) {
    const [on, off] = r.side.one;
    const extra = floor.pair - floor.single;
    const cmp = r.side.compare;
    add('pickupLatencyCompare', 'not a target: the --compare tree\'s miss p50, (pickup on − Knot\'s extra) / pickup off', (cmp - extra) / off, '×', '≤', 1.05,
      `on ${cmp.toFixed(0)} µs (this tree's ${on.toFixed(0)}), off ${off.toFixed(0)} µs, Knot's extra ${extra.toFixed(0)} µs`);
    add('compareP50', 'not a target: miss p50 with pickup, this tree / the --compare tree', on / cmp, '×', '≤', 1.0, `${on.toFixed(0)} / ${cmp.toFixed(0)} µs`);
  }
  if (r.side.far) {
    const [on, off] = r.side.far;
    add('pickupLatencyFar', `miss p50 with Knot ${FAR_RTT_MS} ms away, pickup on − off`, (on - off) / 1000, 'ms', '≤', 1.0, `on ${(on / 1000).toFixed(3)} ms, off ${(off / 1000).toFixed(3)} ms`);
  }
  return out;
}

/** Whether `x` is on the target's side of its bound. */
const meets = (c: Pick<Check, 'op' | 'bound'>, x: number): boolean => (c.op === '≥' ? x >= c.bound : x <= c.bound);

function checkLine(c: Check): string {
  const fmt = (x: number): string => (c.unit === '×' ? `${x.toFixed(2)}×` : `${x >= 0 ? '+' : ''}${x.toFixed(3)} ms`);
  const b = c.unit === '×' ? `${c.bound.toFixed(2)}×` : `${c.bound} ms`;
  const i = c.interval;
  const within = i ? ` (${(100 * i.confidence).toFixed(0)} % interval ${fmt(i.lo)} … ${fmt(i.hi)})` : '';
  const verdict = c.decided === false ? `${c.pass ? 'pass' : 'MISS'}, not decided by this run` : c.pass ? 'pass' : 'MISS';
  return `${c.label}: ${fmt(c.value)}${within} (target ${c.op} ${b}) ${verdict} — ${c.detail}`;
}

const loadavg = (): number => Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);

async function main(): Promise<void> {
  let auth: AuthDns | undefined;
  try {
    auth = await startAuthDns({ server: 'knot', zones: [{ name: 'bench.', text: zone() }], ipv6: false });
    const up = `127.0.0.1#${auth.port}`;
    const authPort = auth.port;
    authPid = Number(readFileSync(path.join(auth.dir, 'knot.pid'), 'utf8').trim()) || undefined;
    const servers: Record<string, number> = {};
    const pids: Record<string, number | undefined> = {};
    // dnsmasq: the miss runs ask fewer names than its cache holds (MISS_NAMES); forward limit raised from 150.
    servers.dnsmasq = await freePort();
    pids.dnsmasq = start('dnsmasq', 'dnsmasq', ['-k', '--conf-file=/dev/null', '--no-resolv', '--no-hosts', '--bind-interfaces', '--listen-address=127.0.0.1',
      `--port=${servers.dnsmasq}`, `--server=${up}`, `--cache-size=${DNSMASQ_CACHE}`, '--dns-forward-max=1000', `--pid-file=${dir}/dnsmasq.pid`]);
    for (const [name, threads] of [['unbound', 1], [`unbound-t${THREADS}`, THREADS]] as const) {
      servers[name] = await freePort();
      writeFileSync(path.join(dir, `${name}.conf`), [
        'server:', `  interface: 127.0.0.1@${servers[name]}`, `  num-threads: ${threads}`, '  username: ""', '  chroot: ""', `  directory: "${dir}"`,
        `  pidfile: "${dir}/${name}.pid"`, '  use-syslog: no', '  verbosity: 0', '  do-not-query-localhost: no', '  module-config: "iterator"',
        '  qname-minimisation: no', '  msg-cache-size: 128m', '  rrset-cache-size: 256m', '  access-control: 127.0.0.0/8 allow',
        // One socket per thread (SO_REUSEPORT), as shim6's workers have.
        ...(threads > 1 ? ['  so-reuseport: yes'] : []),
        // unbound-control on a Unix socket of its own (no certificates), for emptyCaches().
        'remote-control:', '  control-enable: yes', `  control-interface: "${dir}/${name}.ctl"`, '  control-use-cert: no',
        'forward-zone:', '  name: "."', `  forward-addr: 127.0.0.1@${auth.port}`,
      ].join('\n') + '\n');
      pids[name] = start(name, 'unbound', ['-d', '-c', path.join(dir, `${name}.conf`)]);
    }
    // Answer cache as big as dnsmasq's here; the capability cache at its default (10,000 peers): a
    // bigger one only keeps decoded records of 10^5 one-off names alive, and the heap that grows
    // with them slows every later round (measured: CPU/miss 37 → 51 µs over 3 rounds at 300,000).
    writeFileSync(path.join(dir, 'shim6.json'), JSON.stringify({ cache: { maxEntries: 300_000, maxBytes: 256 * 1024 * 1024 } }));
    const shim6 = (name: string, upstream: number, extra: readonly string[], nodeFlags: readonly string[] = SHIM6_V8_FLAGS, root = ROOT): number | undefined => start(name, process.execPath, [...nodeFlags, path.join(root, 'bin/shim6.js'), 'resolver', '--no-engine',
      '--log-level', 'error', '--listen', `127.0.0.1:${servers[name] ?? far[name] ?? control[name] ?? reference[name]}`, '--upstream', `127.0.0.1:${upstream}`, '--socket', path.join(dir, `${name}.sock`),
      '--config', path.join(dir, 'shim6.json'), ...extra]);
    const far: Record<string, number> = {};
    /** The interleaved runs' control: a second stub like shim6-nopickup, to show their noise (A/A, see interleavedLatency). */
    const control: Record<string, number> = {};
    /** The idle part's reference: a stub like shim6 run without SHIM6_V8_FLAGS (V8's memory reducer on). */
    const reference: Record<string, number> = {};
    const w = `--workers=${THREADS}`;
    for (const [name, extra] of [['shim6', []], ['shim6-nopickup', ['--no-capability']], [`shim6-w${THREADS}`, [w]], [`shim6-w${THREADS}-nopickup`, [w, '--no-capability']]] as const) {
      servers[name] = await freePort();
      pids[name] = shim6(name, auth.port, extra);
    }
    // The ceiling of Node's dgram on this machine: a responder that copies one stored answer and patches the ID.
    servers['node-bare'] = await freePort();
    pids['node-bare'] = start('node-bare', process.execPath, ['--input-type=module', '-e', BARE_RESPONDER, String(servers['node-bare'])]);
    // Knot FAR_RTT_MS away: a delaying forwarder of our own (no netem here), and a pickup on/off pair behind it.
    const delayPort = await freePort();
    // At a raised priority (nice −10): it stands for the network, whose delay should not wait for a CPU behind the servers.
    start('delay-forwarder', 'nice', ['-n', '-10', process.execPath, '--import', 'tsx', path.join(ROOT, 'bench/_delay-forwarder.ts'), String(delayPort), String(auth.port), String(FAR_RTT_MS)]);
    for (const [name, extra] of [['shim6-far', []], ['shim6-far-nopickup', ['--no-capability']]] as const) {
      far[name] = await freePort();
      shim6(name, delayPort, extra);
    }
    if (PARTS.has('side')) {
      control['shim6-nopickup-b'] = await freePort();
      pids['shim6-nopickup-b'] = shim6('shim6-nopickup-b', auth.port, ['--no-capability']);
      if (COMPARE) {
        control['shim6-compare'] = await freePort();
        pids['shim6-compare'] = shim6('shim6-compare', auth.port, [], SHIM6_V8_FLAGS, COMPARE);
      }
    }
    if (PARTS.has('idle')) {
      reference['shim6-reducer'] = await freePort();
      pids['shim6-reducer'] = shim6('shim6-reducer', auth.port, [], []);
    }
    for (const p of [...Object.values(servers), ...Object.values(far), ...Object.values(control), ...Object.values(reference)]) await waitAnswers(p);
    if (PARTS.has('side')) buildMissClient();

    // Rounds interleave the servers so that load from elsewhere on the machine hits them alike; medians are reported.
    const samples: Record<string, Record<string, number[]>> = {};
    const hitFile = names('hit', 100);
    const rounds: Round[] = [];
    let retried = 0;
    if (!PARTS.has('servers')) {
      // Without the servers' own runs nothing has warmed them (JIT, caches, socket pools) before the
      // first measured runs: one unmeasured flat-out miss run each, with a hit run before it.
      for (const [name, port] of Object.entries(servers)) {
        if (name === 'node-bare') continue;
        const warm = names(`warm-${name}-`, PAIR_NAMES);
        dnsperf(port, hitFile, { seconds: 1 });
        dnsperf(port, warm, { seconds: SECONDS, once: true });
        rmSync(warm, { force: true });
      }
    }
    // The control and reference stubs are warmed as above in either case (they have no turns of their own).
    for (const port of [...Object.values(control), ...Object.values(reference)]) {
      const warm = names('warm-control-', PAIR_NAMES);
      dnsperf(port, hitFile, { seconds: 1 });
      dnsperf(port, warm, { seconds: SECONDS, once: true });
      rmSync(warm, { force: true });
    }
    for (let round = 0; round < ROUNDS; round++) {
      const load0 = loadavg();
      const roundServers: Record<string, Record<string, number>> = {};
      const order = PARTS.has('servers') ? Object.entries(servers) : [];
      for (let k = 0; k < round && order.length > 0; k++) order.push(order.shift()!); // none without `servers` (--parts)
      for (const [name, port] of order) {
        const pid = pids[name];
        await settle();
        dnsperf(port, hitFile, { seconds: 1 }); // (re)warm the hit names
        const hit = await lowSteal(() => dnsperf(port, hitFile, { seconds: SECONDS, pid }));
        const hitLat = await lowSteal(() => dnsperf(port, hitFile, { seconds: LAT_SECONDS, rate: 2000 }));
        // dnsmasq's cache is emptied (SIGHUP) before each miss run, as every other server's holds none of its names.
        // Every server's caches are emptied before each miss run, so that each starts it in the same state: dnsmasq
        // by SIGHUP (its miss rate collapses once its cache is full), shim6 by `shim6 flush` (answer and capability
        // caches), unbound by `unbound-control flush_zone .`. Kept across rounds, the stubs' caches held up to
        // 300,000 answers from earlier rounds, dnsmasq's none: each miss then also evicted one, and the collector
        // traced a heap of them (see docs/benchmarks.md).
        const flush = async (): Promise<void> => { await emptyCaches(name, pid); };
        const bare = name === 'node-bare'; // answers everything from one stored answer: no miss path
        const none: Perf = { qps: NaN, lost: 0, queries: 0, steal: 0 };
        // Miss latency before the flat-out miss run: after it, a forwarder may still hold a backlog of
        // lost upstream queries (dnsmasq waits seconds for them), which is not lookup latency.
        // Every try gets names of its own: a repeated try must miss as the first did.
        // The same names for every server (each asks them of its own cache, and Knot answers them alike).
        let latFile = '';
        let tries = 0; // in the names: a repeated try asks names the server has not seen (the same ones would be cache hits)
        let missFile = '';
        // Its counters before the miss runs (status lists every capability entry: several MB with pickup,
        // whose garbage the latency run below digests rather than the flat-out run).
        const stub = name.startsWith('shim6');
        const c0 = stub ? stubCounters(name) : undefined;
        const missLat = bare ? none : await lowSteal(() => dnsperf(port, latFile, { seconds: LAT_SECONDS, rate: 500 }),
          async () => { await flush(); latFile = names(`lat-${round}-${tries++}-`, 10_000); });
        const miss = bare ? none : await lowSteal(() => dnsperf(port, missFile, { seconds: SECONDS, pid, once: true }),
          async () => { if (missFile) rmSync(missFile); await flush(); missFile = names(`miss-${round}-${tries++}-`, MISS_NAMES); });
        if (missFile) rmSync(missFile);
        // Pickup really on (or off) during the miss runs: the stub's own counters, capability lookups per miss.
        const c1 = stub ? stubCounters(name) : undefined;
        const capPerMiss = c0 && c1 && c1.misses! > c0.misses! ? (c1.capabilityQueries! - c0.capabilityQueries!) / (c1.misses! - c0.misses!) : undefined;
        const s = (samples[name] ??= {});
        const rs = (roundServers[name] = {} as Record<string, number>);
        const add = (k: string, v: number | undefined): void => { if (v !== undefined && !Number.isNaN(v)) { (s[k] ??= []).push(v); rs[k] = v; } };
        add('hitQps', hit.qps); add('missQps', miss.qps); add('missLost', miss.lost); add('missQueries', miss.queries); add('hitCpu', hit.cpuUs); add('missCpu', miss.cpuUs);
        add('missAuth', miss.authUs); add('missMachine', miss.machineUs); add('missBusy', miss.busy);
        add('hitP50', hitLat.p50); add('hitP99', hitLat.p99); add('missP50', missLat.p50); add('missP99', missLat.p99);
        add('missCapLookups', capPerMiss);
        add('missSteal', miss.steal); add('missLatSteal', missLat.steal); add('hitSteal', hit.steal);
        retried += (hit.retries ?? 0) + (hitLat.retries ?? 0) + (missLat.retries ?? 0) + (miss.retries ?? 0);
        const pc = (r: Perf): string => `${(100 * r.steal).toFixed(1)} %${r.retries ? ` after ${r.retries} retr${r.retries > 1 ? 'ies' : 'y'}` : ''}`;
        const cpu = (v: number | undefined): string => (v === undefined ? 'n/a' : v.toFixed(1));
        say(`round ${round + 1}/${ROUNDS} ${name}: hit ${hit.qps.toFixed(0)} q/s (${cpu(hit.cpuUs)} µs CPU/hit), miss ${miss.qps.toFixed(0)} q/s (${miss.queries} answered, lost ${miss.lost}, ${cpu(miss.cpuUs)} µs CPU/miss${capPerMiss !== undefined ? `, ${capPerMiss.toFixed(2)} capability lookups/miss` : ''}), hit p50/p99 ${hitLat.p50?.toFixed(3)}/${hitLat.p99?.toFixed(3)} ms, miss p50/p99 ${missLat.p50?.toFixed(3)}/${missLat.p99?.toFixed(3)} ms; steal: miss run ${pc(miss)}, miss latency ${pc(missLat)}, hit run ${pc(hit)}`);
      }
      const r: Omit<Round, 'checks'> = { load: [load0, load0], servers: roundServers, side: {}, pairs: [] };
      // CPU per miss, alternating: short miss runs of shim6, dnsmasq and unbound back to back, the order
      // rotated each cycle, so that the machine's drift between two runs of a ratio is seconds, not minutes.
      const trio = ['shim6', 'dnsmasq', 'unbound'] as const;
      if (PARTS.has('cycles')) {
        const file = names(`cyc-${round}-warm-`, PAIR_NAMES);
        for (const name of trio) { await settle(); await emptyCaches(name, pids[name]); dnsperf(servers[name]!, file, { seconds: SECONDS, once: true }); }
        rmSync(file, { force: true });
      }
      for (let cycle = 0; cycle < (PARTS.has('cycles') ? PAIR_CYCLES : 0); cycle++) {
        const got: Record<string, number> = {};
        // The same names for the three (each run starts with its caches emptied, so every name is a miss).
        const file = names(`cyc-${round}-${cycle}-`, PAIR_NAMES);
        for (let k = 0; k < trio.length; k++) {
          const name = trio[(k + cycle + round) % trio.length]!;
          await settle();
          const run = await lowSteal(() => dnsperf(servers[name]!, file, { seconds: SECONDS, pid: pids[name], once: true }), () => emptyCaches(name, pids[name]));
          retried += run.retries ?? 0;
          if (run.cpuUs !== undefined) got[name] = run.cpuUs;
        }
        rmSync(file, { force: true });
        if (got.shim6 !== undefined && got.dnsmasq !== undefined && got.unbound !== undefined) {
          r.pairs!.push({ shim6: got.shim6, dnsmasq: got.dnsmasq, unbound: got.unbound });
          say(`round ${round + 1}/${ROUNDS} alternating miss runs, cycle ${cycle + 1}/${PAIR_CYCLES}: CPU µs per miss shim6 ${got.shim6.toFixed(1)}, dnsmasq ${got.dnsmasq.toFixed(1)}, unbound ${got.unbound.toFixed(1)} (shim6/dnsmasq ${(got.shim6 / got.dnsmasq).toFixed(2)}×)`);
        }
      }
      // After idle: all quiet for IDLE_SECONDS (caches emptied first), then each server's miss run, then each one's next.
      if (PARTS.has('idle')) {
        const idlers = ['shim6', 'dnsmasq', 'shim6-reducer'] as const;
        const portOf = (n: string): number => servers[n] ?? reference[n]!;
        for (const n of idlers) await emptyCaches(n, pids[n]);
        await settle();
        await sleep(IDLE_SECONDS * 1000);
        const got: Record<string, { idle: number; busy: number; rssMiB: number }> = {};
        for (const n of idlers) got[n] = { idle: NaN, busy: NaN, rssMiB: rssMiB(pids[n]) };
        for (const phase of ['idle', 'busy'] as const) {
          const file = names(`idle-${round}-${phase}-`, PAIR_NAMES); // the same names for the three
          for (let k = 0; k < idlers.length; k++) {
            const n = idlers[(k + round) % idlers.length]!;
            if (phase === 'busy') { await settle(); await emptyCaches(n, pids[n]); }
            const run = dnsperf(portOf(n), file, { seconds: SECONDS, pid: pids[n], once: true });
            if (run.cpuUs !== undefined) got[n]![phase] = run.cpuUs;
          }
          rmSync(file, { force: true });
        }
        r.idle = got;
        say(`round ${round + 1}/${ROUNDS} after ${IDLE_SECONDS} s idle, CPU µs per miss (the next run's), resident memory at the end of the quiet time: ${idlers.map((n) => `${n} ${got[n]!.idle.toFixed(1)} (${got[n]!.busy.toFixed(1)}), ${got[n]!.rssMiB.toFixed(0)} MiB`).join('; ')}`);
      }
      // The authoritative server's own share of the pickup's latency cost, alone (the target uses the one measured with the stubs, below).
      let tryNo = 0; // in the names: a repeated try asks names the stubs have not seen
      if (PARTS.has('side')) {
        await settle();
        const alone = await lowStealAsync(() => interleavedLatency([{ port: authPort, upstream: true }, { port: authPort, pair: true }], LAT_SECONDS, `floor-${round}-${tryNo++}`));
        retried += alone.retries;
        const [single, pair] = alone.value;
        r.floor = { single: single!.p50, pair: pair!.p50 };
        say(`round ${round + 1}/${ROUNDS} Knot alone: AAAA ${r.floor.single.toFixed(0)} µs, TYPE65300 + AAAA ${r.floor.pair.toFixed(0)} µs (p50, no stub; steal ${stealText(alone)})`);
      }
      // The pickup's latency: one thread (with Knot's pair and the A/A control in the same run), workers, Knot far away.
      for (const [key, on, off] of PARTS.has('side') ? [['one', 'shim6', 'shim6-nopickup'], ['multi', `shim6-w${THREADS}`, `shim6-w${THREADS}-nopickup`], ['far', 'shim6-far', 'shim6-far-nopickup']] as const : []) {
        await settle();
        const one = key === 'one';
        const ports = key === 'far' ? [far[on]!, far[off]!] : [servers[on]!, servers[off]!];
        const targets: MissTarget[] = [...ports.map((port) => ({ port })), ...(one ? [{ port: control['shim6-nopickup-b']! }, { port: authPort, upstream: true }, { port: authPort, pair: true }] : []),
          ...(one && COMPARE ? [{ port: control['shim6-compare']! }] : [])];
        const timeline = one && TIMELINE ? ['shim6', 'shim6-nopickup', 'shim6-nopickup-b', ...(COMPARE ? ['shim6-compare'] : [])].map((name) => ({ name, pid: pids[name]!, port: servers[name] ?? control[name]! })) : undefined;
        const measure = (): Promise<MissFigures[]> => interleavedLatency(targets, LAT_SECONDS, `side-${round}-${key}-${tryNo++}`);
        const run = await lowStealAsync(() => (timeline ? timed(round, timeline, authPort, measure) : measure()));
        retried += run.retries;
        const got = run.value;
        const lost = got.map((g) => g.asked - g.answered);
        r.side[key] = [got[0]!.p50, got[1]!.p50];
        const [onP50, offP50] = r.side[key]!;
        say(`round ${round + 1}/${ROUNDS} interleaved miss latency p50 (p10–p90): ${on} ${onP50.toFixed(0)} µs (${got[0]!.p10.toFixed(0)}–${got[0]!.p90.toFixed(0)}), ${off} ${offP50.toFixed(0)} µs (${got[1]!.p10.toFixed(0)}–${got[1]!.p90.toFixed(0)}) (${(onP50 / offP50).toFixed(2)}×, ${((onP50 - offP50) / 1000).toFixed(3)} ms; unanswered ${lost.join('/')}; steal ${stealText(run)})`);
        if (one) {
          const [b, single, pair] = [got[2]!, got[3]!, got[4]!];
          r.side.aa = [offP50, b.p50];
          r.floorDuring = { single: single.p50, pair: pair.p50 };
          say(`round ${round + 1}/${ROUNDS} in the same run: shim6-nopickup-b ${b.p50.toFixed(0)} µs (A/A ${(offP50 / b.p50).toFixed(2)}×); Knot AAAA ${single.p50.toFixed(0)} µs, TYPE65300 + AAAA ${pair.p50.toFixed(0)} µs (its extra for the record question ${(pair.p50 - single.p50).toFixed(0)} µs)`);
          const cmp = got[5];
          if (cmp) {
            r.side.compare = cmp.p50;
            say(`round ${round + 1}/${ROUNDS} in the same run: shim6-compare (${COMPARE}) ${cmp.p50.toFixed(0)} µs; shim6 / shim6-compare ${(onP50 / cmp.p50).toFixed(2)}×`);
          }
        }
      }
      r.load[1] = loadavg();
      const full: Round = { ...r, checks: checks(r) };
      rounds.push(full);
      say(`round ${round + 1}/${ROUNDS} targets (load average ${r.load[0].toFixed(1)} → ${r.load[1].toFixed(1)}):`);
      for (const c of full.checks) say(`  ${checkLine(c)}`);
    }
    report(samples, rounds, retried);
  } finally {
    await cleanup(auth);
  }
}

function report(samples: Record<string, Record<string, number[]>>, rounds: readonly Round[], retried: number): void {
  const rows: Record<string, Record<string, number | undefined>> = {};
  for (const [name, s] of Object.entries(samples)) rows[name] = Object.fromEntries(Object.entries(s).map(([k, v]) => [k, median(v)]));
  const base = rows.dnsmasq ?? {};
  const f = (v: number | undefined, d = 0): string => (v === undefined || Number.isNaN(v) ? 'n/a' : v.toFixed(d));
  const ratio = (a: number | undefined, b: number | undefined): string => (a && b ? (a / b).toFixed(2) + '×' : 'n/a');
  const loads = rounds.flatMap((r) => r.load);
  const loadText = `load average ${f(Math.min(...loads), 1)}–${f(Math.max(...loads), 1)}`;
  say(`\n## Resolver (median of ${ROUNDS} interleaved rounds, ${SECONDS} s per throughput run, at most ${MISS_NAMES} names per miss run, ${os.cpus().length} CPUs, ${loadText}, all forwarding to one local Knot)\n`);
  say('| server | hit QPS | ×dnsmasq | miss QPS | ×dnsmasq | CPU µs/hit | CPU µs/miss | hit p50/p99 ms | miss p50/p99 ms |');
  say('|---|---|---|---|---|---|---|---|---|');
  for (const [name, r] of Object.entries(rows)) {
    say(`| ${name} | ${f(r.hitQps)} | ${ratio(r.hitQps, base.hitQps)} | ${f(r.missQps)} | ${ratio(r.missQps, base.missQps)} | ${f(r.hitCpu, 1)} | ${f(r.missCpu, 1)} | ${f(r.hitP50, 3)} / ${f(r.hitP99, 3)} | ${f(r.missP50, 3)} / ${f(r.missP99, 3)} |`);
  }
  say('\nWhere a miss run\'s CPU went (µs per answered miss; machine = all CPUs busy, incl. dnsperf, Knot, kernel; steal = the hypervisor\'s share, not counted as busy):\n');
  say('| server | server CPU | Knot CPU | machine CPU | machine busy | steal, miss run | steal, miss latency run |');
  say('|---|---|---|---|---|---|---|');
  const pct = (v: number | undefined, d = 0): string => (v === undefined ? 'n/a' : (100 * v).toFixed(d) + ' %');
  for (const [name, r] of Object.entries(rows)) {
    if (r.missMachine === undefined) continue;
    say(`| ${name} | ${f(r.missCpu, 1)} | ${f(r.missAuth, 1)} | ${f(r.missMachine, 1)} | ${pct(r.missBusy)} | ${pct(r.missSteal, 1)} | ${pct(r.missLatSteal, 1)} |`);
  }
  say(`\nruns repeated for steal above ${pct(MAX_STEAL, 1)} (at most ${RETRIES} times each, the run with the least steal kept): ${retried}`);
  const sideMedian = (key: keyof Round['side']): { on?: number; off?: number; ratio?: number; diffMs?: number } => {
    const xs = rounds.map((r) => r.side[key]).filter((x): x is [number, number] => x !== undefined);
    const on = median(xs.map((x) => x[0])), off = median(xs.map((x) => x[1]));
    const ratio = median(xs.map(([a, b]) => a / b)), diffMs = median(xs.map(([a, b]) => (a - b) / 1000));
    return { ...(on !== undefined ? { on } : {}), ...(off !== undefined ? { off } : {}), ...(ratio !== undefined ? { ratio } : {}), ...(diffMs !== undefined ? { diffMs } : {}) };
  };
  const side = { one: sideMedian('one'), multi: sideMedian('multi'), far: sideMedian('far'), aa: sideMedian('aa') };
  const floors = rounds.map((r) => r.floor).filter((x): x is { single: number; pair: number } => x !== undefined);
  const floor = { single: median(floors.map((x) => x.single)), pair: median(floors.map((x) => x.pair)), extra: median(floors.map((x) => x.pair - x.single)) };
  const durings = rounds.map((r) => r.floorDuring).filter((x): x is { single: number; pair: number } => x !== undefined);
  const floorDuring = { single: median(durings.map((x) => x.single)), pair: median(durings.map((x) => x.pair)), extra: median(durings.map((x) => x.pair - x.single)) };
  say(`interleaved miss latency p50 (medians of the rounds'): pickup on vs off ${f(side.one.on)} / ${f(side.one.off)} µs (${f(side.one.ratio, 2)}×, one thread), ` +
    `${f(side.multi.on)} / ${f(side.multi.off)} µs (${f(side.multi.ratio, 2)}×, ${THREADS} workers), ${f((side.far.on ?? NaN) / 1000, 3)} / ${f((side.far.off ?? NaN) / 1000, 3)} ms (Knot ${FAR_RTT_MS} ms away)`);
  const aaRatios = rounds.map((r) => r.side.aa).filter((x): x is [number, number] => x !== undefined).map(([a, b]) => a / b);
  if (aaRatios.length) say(`control (A/A): two identical pickup-off stubs in the one-thread run, p50 ratio per round ${aaRatios.map((x) => x.toFixed(2)).join(', ')} (median ${f(median(aaRatios), 2)}×): the noise of one such ratio`);
  say(`Knot alone: AAAA ${f(floor.single)} µs, TYPE65300 + AAAA ${f(floor.pair)} µs: the record question costs Knot ${f(floor.extra)} µs (median of the rounds')`);
  say(`Knot in the one-thread interleaved run: AAAA ${f(floorDuring.single)} µs, TYPE65300 + AAAA ${f(floorDuring.pair)} µs: the record question costs Knot ${f(floorDuring.extra)} µs (median of the rounds'; the target subtracts this)`);
  const idles = rounds.map((r) => r.idle).filter((x): x is NonNullable<Round['idle']> => x !== undefined);
  if (idles.length) {
    const m = (n: string, k: 'idle' | 'busy' | 'rssMiB'): number | undefined => median(idles.map((x) => x[n]?.[k]).filter((v): v is number => v !== undefined));
    const per = (n: string): string => `${n} ${f(m(n, 'idle'), 1)} µs (${f(m(n, 'busy'), 1)} busy, ${ratio(m(n, 'idle'), m(n, 'busy'))}; ${f(m(n, 'rssMiB'))} MiB resident when idle)`;
    say(`after ${IDLE_SECONDS} s idle, CPU per miss of the next ${PAIR_NAMES} misses (medians of the rounds'): ${per('shim6')}, ${per('dnsmasq')}, ${per('shim6-reducer')} (V8's memory reducer on); shim6 / dnsmasq after idle ${ratio(m('shim6', 'idle'), m('dnsmasq', 'idle'))}`);
  }
  const bareRow = rows['node-bare'], on = rows.shim6 ?? {}, off = rows['shim6-nopickup'] ?? {};
  if (bareRow) say(`node-bare (Node dgram ceiling: copy a stored answer, patch the ID): hit QPS ${ratio(bareRow.hitQps, base.hitQps)} dnsmasq; shim6 hit QPS = ${ratio(on.hitQps, bareRow.hitQps)} of node-bare`);
  say(`CPU per miss, pickup off (one upstream exchange per miss, like dnsmasq): shim6-nopickup / dnsmasq ${ratio(off.missCpu, base.missCpu)}`);
  // The targets: each round's comparison, and the median over the rounds.
  const keys = [...new Set(rounds.flatMap((r) => r.checks.map((c) => c.key)))];
  const medians: Check[] = [];
  say(`\nTargets (default shim6: pickup on, one thread; each round's servers measured in that round; ${loadText}):`);
  for (const key of keys) {
    const per = rounds.map((r) => r.checks.find((c) => c.key === key));
    const got = per.filter((c): c is Check => c !== undefined);
    const c0 = got[0]!;
    const value = median(got.map((c) => c.value))!;
    const interval = medianInterval(got.map((c) => c.value))!;
    const decided = interval.confidence >= DECIDING_CONFIDENCE && meets(c0, interval.lo) === meets(c0, interval.hi);
    const m: Check = { ...c0, value, pass: meets(c0, value), interval, decided, detail: `rounds: ${per.map((c) => (c ? `${c.unit === '×' ? c.value.toFixed(2) : c.value.toFixed(3)} ${c.pass ? 'pass' : 'MISS'}` : 'n/a')).join(', ')}` };
    medians.push(m);
    say(`  median ${checkLine(m)}`);
  }
  if (JSON_OUT) {
    console.log(JSON.stringify({
      seconds: SECONDS, rounds: ROUNDS, threads: THREADS, cpus: os.cpus().length, missNames: MISS_NAMES, dnsmasqCache: DNSMASQ_CACHE, farRttMs: FAR_RTT_MS,
      retriedForSteal: retried, servers: rows, interleaved: side, knotFloor: floor, knotFloorDuring: floorDuring,
      targets: Object.fromEntries(medians.map((c) => [c.key, { value: c.value, op: c.op, bound: c.bound, pass: c.pass, unit: c.unit, interval: c.interval, decided: c.decided }])),
      perRound: rounds,
    }, null, 2));
  }
}

await main();
