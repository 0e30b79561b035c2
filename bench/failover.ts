/**
 * `npm run bench -- failover [--runs N] [--modes tcp,mptcp,shim6,…] [--duration MS] [--fail-at MS] [--rate Mbit/s] [--load] [--discovery-samples N] [--prefix labNAME]`
 *
 * Application stall after a silent black hole of link P (nftables drop in A,
 * the link stays up), in the same two-host lab, side by side in one run:
 * plain TCP, Linux MPTCP with two subflows (`mptcpize run`), shim6 with the
 * fast timer profile (Send Timeout 150 ms, probes 50 ms apart), and shim6 with
 * the earlier fast timers (Send Timeout 600 ms, probes 100 ms apart,
 * `shim6-600`) for comparison. `shim6` runs the TUN path (`dataPath:
 * tun`: every packet through the TUN and the daemon), `shim6-kernel` the same
 * with `dataPath: kernel` and `encapsulation: kernel` (docs/dataplane.md "Kernel path"). `--load` keeps
 * every CPU busy with a load generator (one spinning process per CPU) during
 * every mode's runs. The stream goes to B by name through A's stub, so
 * shim6 is primed by DNS. Two more shim6 rows: `shim6-discovery` (B publishes no
 * capability record and A streams to B's address: the context comes from host-based
 * discovery) and `shim6-restart` (A's daemon is restarted, SIGTERM then start, 500 ms
 * into the stream; the failure comes 5 s later than in the other modes, and not before
 * the new daemon's context with B is up, on a stream 8 s longer). Then the time from a new connection's first packet (just before
 * connect()) to A's context by discovery, median of `--discovery-samples` (20)
 * connections, A's daemon restarted with no caches between them. The stall is the
 * longest gap between two arrivals of data at the receiver; the figure is the
 * median of N runs (default 5). Prints figures and ratios; asserts nothing.
 *
 * Renumbering (issue 18), modes `mptcp-renumber` and `shim6-renumber`: instead
 * of the black hole, A's address on P — the one the stream runs on — is
 * withdrawn: deprecated (preferred lifetime 0), removed 500 ms later. MPTCP
 * has A's Q address as a subflow endpoint (`ip mptcp endpoint`), shim6 has
 * A's daemon (CGA identity, watching its addresses); the stall of each.
 * Modes `mptcp-remove` and `shim6-remove`: the same address removed at once
 * (`ip addr del`, no deprecation first).
 * Needs root.
 */
import os from 'node:os';
import { labFor, LAB_ADDR } from '../lab/topology.ts';
import { labDown, labUp, mptcpUp } from '../lab/lab.ts';
import { runStream, type RunResult } from '../lab/run.ts';
import { labDaemonFiles, readLog, shim6Unavailable, startLabShim6, type LabShim6 } from '../lab/daemons.ts';
import { spawn, spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';

import { LAB_B_NAME } from '../lab/dns.ts';
import { LAB_BASE_TOOLS, LAB_TOOL_PACKAGES, missingTools } from '../lab/tools.ts';

type Mode = 'tcp' | 'mptcp' | 'shim6' | 'shim6-kernel' | 'shim6-600' | 'shim6-discovery' | 'shim6-restart' | 'mptcp-renumber' | 'shim6-renumber' | 'mptcp-remove' | 'shim6-remove';

/** Timer overrides per shim6 mode: `shim6` is the fast profile as the engine defines it. */
const SHIM6_TIMERS: Record<string, Record<string, number>> = {
  shim6: {},
  'shim6-renumber': {},
  'shim6-remove': {},
  'shim6-kernel': {},
  'shim6-discovery': {},
  'shim6-restart': {},
  // The fast profile's timers before the disjoint-first probe order landed (same engine otherwise).
  'shim6-600': { sendTimeout: 600, defaultKeepaliveTimeout: 600, keepaliveTimeoutMax: 600, initialProbeTimeout: 100 },
};

function opt(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? def) : def;
}

const runs = Number(opt('runs', '5'));
const durationMs = Number(opt('duration', '5000'));
const failAtMs = Number(opt('fail-at', '1500'));
const rate = (Number(opt('rate', '100')) * 1e6) / 8;
const modes = opt('modes', 'tcp,mptcp,shim6,shim6-kernel,shim6-discovery,shim6-restart,shim6-600,mptcp-renumber,shim6-renumber,mptcp-remove,shim6-remove').split(',') as Mode[];
const loaded = process.argv.includes('--load');

/** One spinning process per CPU (killed at exit): the "busy machine" of the issue. */
function startLoad(): () => void {
  const n = os.availableParallelism();
  const procs = Array.from({ length: n }, () => spawn(process.execPath, ['-e', 'for(;;){}'], { stdio: 'ignore' }));
  const stop = () => { for (const p of procs) p.kill('SIGKILL'); };
  process.on('exit', stop);
  return stop;
}
const discoverySamples = Number(opt('discovery-samples', '20'));
/** The lab's namespace prefix: one of its own per run (another run of a bench on the machine must not share it). */
const LAB_PREFIX = opt('prefix', `labb${process.pid.toString(36).slice(-5)}`);
/** shim6-restart: when A's daemon restarts, and how much later than the others its failure comes. */
const RESTART_AT_MS = 500;
const RESTART_SHIFT_MS = 5000;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

interface ModeResult { mode: Mode; runs: RunResult[]; rehome: number[]; protectedAfterReady: number[]; note?: string }

/** One run on a fresh lab (so every run starts on link P with no context yet). */
async function measureOnce(mode: Mode, i: number, out: ModeResult): Promise<void> {
  const lab = labFor(LAB_PREFIX);
  await labUp(lab, { capability: mode !== 'shim6-discovery' });
  let shim6: LabShim6 | undefined;
  try {
    if (mode.startsWith('mptcp')) mptcpUp(lab);
    const timers = SHIM6_TIMERS[mode];
    if (timers) shim6 = await startLabShim6(lab, () => undefined, { timers, ...(mode === 'shim6-kernel' ? { extra: { dataPath: 'kernel', encapsulation: 'kernel' } } : mode === 'shim6' ? { extra: { dataPath: 'tun' } } : {}) });
    // SHIM6_BENCH_PCAP=DIR: each shim6-kernel run captured on both hosts' links (tshark), for reading a stall.
    const pcapDir = mode === 'shim6-kernel' ? process.env.SHIM6_BENCH_PCAP : undefined;
    const captures = pcapDir === undefined ? [] : (['a', 'b'] as const).map((h) =>
      spawn('ip', ['netns', 'exec', h === 'a' ? lab.a : lab.b, 'tshark', '-q', '-i', 'any', '-s', '160', '-w', `${pcapDir}/run${i + 1}-${h}.pcap`], { stdio: 'ignore' }));
    if (captures.length) await new Promise((res) => setTimeout(res, 1500));
    const restart = mode === 'shim6-restart';
    const s6 = shim6;
    const r = await runStream(lab, {
      ...(mode === 'shim6-discovery' ? { to: LAB_ADDR.bP } : { to: LAB_B_NAME, resolver: shim6?.resolverA ?? LAB_ADDR.dnsA }),
      durationMs: durationMs + (restart ? RESTART_SHIFT_MS + 3000 : 0), failAtMs: failAtMs + (restart ? RESTART_SHIFT_MS : 0),
      failure: mode.endsWith('-renumber') ? 'withdraw' : mode.endsWith('-remove') ? 'remove' : 'blackhole', rate, graceMs: 2000, ...(mode.startsWith('mptcp') ? { wrap: ['mptcpize', 'run'] } : {}),
      ...(restart && s6 ? {
        actions: [{ atMs: RESTART_AT_MS, run: () => s6.restart('a') }],
        // The failure comes after the new daemon's context with B, whatever the restart took on a loaded machine.
        failGate: async () => {
          for (let k = 0; k < 600; k++) {
            const recs = readLog(labDaemonFiles(lab, 'a').log);
            const stop = recs.findIndex((x) => x.msg === 'stopping');
            if (stop >= 0 && recs.some((x, i) => i > stop && x.msg === 'context-established' && x.peerUlid === LAB_ADDR.bP)) return;
            await new Promise((res) => setTimeout(res, 50));
          }
        },
      } : {}),
    });
    if (restart) {
      // From the new daemon's "daemon ready" to its context with B (the open connection protected again; negative: before ready).
      const recs = readLog(labDaemonFiles(lab, 'a').log);
      const stop = recs.findIndex((x) => x.msg === 'stopping');
      const ready = recs.find((x, i) => i > stop && x.msg === 'daemon ready');
      const est = recs.find((x, i) => i > stop && x.msg === 'context-established' && x.peerUlid === LAB_ADDR.bP);
      if (stop >= 0 && ready && est) out.protectedAfterReady.push(Date.parse(est.ts) - Date.parse(ready.ts));
      const rel = (ts: string | undefined): string => (ts === undefined || r.failAt === undefined ? '—' : `${Date.parse(ts) - r.failAt} ms`);
      process.stderr.write(`    restart: new daemon ready ${rel(ready?.ts)}, context with B ${rel(est?.ts)} from the failure\n`);
    }
    if (mode.startsWith('shim6')) process.stderr.write(`    context source: ${shim6?.contextSource(LAB_ADDR.bP) ?? '—'}, failure's stall ${String(r.stall_after_fail_ms)} ms\n`);
    if (mode === 'shim6-kernel' && r.failAt !== undefined) {
      // The kernel path's steps after the failure (A's log): on the TUN while exploring, the kernel encapsulation, the TCP prompt.
      const steps = readLog(labDaemonFiles(lab, 'a').log).filter((x) => Date.parse(x.ts) >= r.failAt! && /^(context on the|tcp prompted|locator-pair-changed)/.test(x.msg));
      process.stderr.write(`    kernel path: ${steps.map((x) => `${x.msg} +${Date.parse(x.ts) - r.failAt!} ms`).join(', ') || 'no step logged'}\n`);
      if (process.env.SHIM6_BENCH_DUMP) process.stderr.write(spawnSync('ip', ['netns', 'exec', lab.a, 'nstat', '-az', 'Icmp6InPktTooBigs', 'Icmp6InErrors', 'Icmp6InCsumErrors', 'TcpExtOutOfWindowIcmps', 'TcpExtTCPLossProbes', 'TcpRetransSegs', 'TcpExtTCPTimeouts', 'Ip6InNoRoutes', 'Ip6InAddrErrors', 'TcpExtTCPLostRetransmit', 'TcpExtTCPRetransFail', 'Ip6OutNoRoutes', 'Ip6OutDiscards'], { encoding: 'utf8' }).stdout);
      if (process.env.SHIM6_BENCH_DUMP === 'maps') process.stderr.write(spawnSync('sh', ['-c', 'for i in $(bpftool map show | grep -E "shim6_(stats|egr|ing)" | cut -d: -f1); do bpftool map show id $i | head -1; bpftool -j map dump id $i | head -c 600; echo; done'], { encoding: 'utf8' }).stdout);
      if (process.env.SHIM6_BENCH_DUMP) for (const h of ['a', 'b'] as const) {
        const all = readLog(labDaemonFiles(lab, h).log).filter((x) => Date.parse(x.ts) >= r.failAt! - 50 && Date.parse(x.ts) <= r.failAt! + 2500);
        for (const x of all) process.stderr.write(`      ${h} +${Date.parse(x.ts) - r.failAt!} ${JSON.stringify(x).slice(0, 260)}\n`);
      }
    }
    const rh = shim6?.rehomeAt(r.failAt);
    if (rh != null && r.failAt !== undefined) out.rehome.push(rh - r.failAt);
    out.runs.push(r);
    for (const c of captures) c.kill('SIGINT');
    process.stderr.write(`  ${mode} run ${i + 1}/${runs}: stall ${r.stall_ms} ms${r.recovered ? '' : ' (not recovered)'}${rh != null && r.failAt !== undefined ? `, re-homed after ${rh - r.failAt} ms` : ''}, verified ${r.bytes_verified}/${r.bytes_sent}${r.complete ? '' : ' (stream not finished within the grace time)'}, corrupt ${r.corrupt}\n`);
  } finally {
    await shim6?.stop();
    labDown(lab);
  }
}

async function measure(mode: Mode): Promise<ModeResult> {
  const out: ModeResult = { mode, runs: [], rehome: [], protectedAfterReady: [] };
  for (let i = 0; i < runs; i++) await measureOnce(mode, i, out);
  return out;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) {
    console.log('failover: needs root (network namespaces); nothing measured');
    return;
  }
  const loadavg = () => os.loadavg().map((x) => x.toFixed(2)).join(' ');
  console.log(`failover: silent black hole (renumber modes: withdrawal of A's address; remove modes: its removal at once) of link P at +${failAtMs} ms of a ${durationMs} ms stream at ${(rate * 8) / 1e6} Mbit/s; ${runs} runs per mode${loaded ? `; every CPU kept busy by a load generator (${os.availableParallelism()} spinning processes)` : ''}; load ${loadavg()}`);
  const stopLoad = loaded ? startLoad() : undefined;
  const results: ModeResult[] = [];
  const base = missingTools(LAB_BASE_TOOLS);
  if (base.length) {
    console.log(`failover: the lab needs ${base.map((c) => `${c} (Debian package ${LAB_TOOL_PACKAGES[c] ?? c})`).join(', ')}: not installed; nothing measured`);
    return;
  }
  for (const mode of modes) {
    const peerTool = mode === 'mptcp' ? missingTools(['mptcpize']) : [];
    const why = mode.startsWith('shim6') ? await shim6Unavailable() : peerTool.length ? `${peerTool.join(', ')} not installed (Debian package ${peerTool.map((c) => LAB_TOOL_PACKAGES[c] ?? c).join(', ')})` : undefined;
    if (why !== undefined) {
      results.push({ mode, runs: [], rehome: [], protectedAfterReady: [], note: mode.startsWith('shim6') ? `daemon not available in this build: ${why}` : `not measured: ${why}` });
      continue;
    }
    try {
      results.push(await measure(mode));
    } catch (err) {
      results.push({ mode, runs: [], rehome: [], protectedAfterReady: [], note: `failed: ${(err as Error).message}` });
    }
  }
  stopLoad?.();
  console.log(`(load after: ${loadavg()})`);
  // Each failure against MPTCP with the same failure; each shim6 row against the DNS-primed one.
  const refOf = (m: Mode): number | undefined => {
    const ref = results.find((r) => r.mode === (m.endsWith('-renumber') ? 'mptcp-renumber' : m.endsWith('-remove') ? 'mptcp-remove' : 'mptcp') && r.runs.length);
    return ref ? median(ref.runs.map((r) => r.stall_after_fail_ms ?? r.stall_ms)) : undefined;
  };
  const primed = results.find((r) => r.mode === 'shim6' && r.runs.length);
  const primedMedian = primed ? median(primed.runs.map((r) => r.stall_after_fail_ms ?? r.stall_ms)) : undefined;
  console.log('\n| mode | median stall (ms) | min | max | recovered | corrupt | median re-homing (ms) | stall / MPTCP | stall / shim6 (DNS) | longest gap of the run (median, ms) |');
  console.log('|---|---|---|---|---|---|---|---|---|---|');
  for (const r of results) {
    if (!r.runs.length) { console.log(`| ${r.mode} | — | — | — | — | — | — | ${r.note ?? ''} | | |`); continue; }
    // The failure's own stall (silences that ended after it): the restart's gap is not the failure's.
    const stalls = r.runs.map((x) => x.stall_after_fail_ms ?? x.stall_ms);
    const rec = r.runs.filter((x) => x.recovered).length;
    const med = median(stalls);
    const all = rec === r.runs.length;
    const medianText = all ? String(med) : `≥ ${med} (window end)`;
    const ratio = (base: number | undefined): string => (base && all ? (med / base).toFixed(2) : all ? '—' : '∞');
    console.log(`| ${r.mode} | ${medianText} | ${Math.min(...stalls)} | ${Math.max(...stalls)} | ${rec}/${r.runs.length} | ${r.runs.reduce((a, x) => a + x.corrupt, 0)} | ${r.rehome.length ? median(r.rehome) : '—'} | ${ratio(refOf(r.mode))} | ${r.mode.startsWith('shim6') ? ratio(primedMedian) : '—'} | ${median(r.runs.map((x) => x.stall_ms))} |`);
    if (r.protectedAfterReady.length) console.log(`|  ↳ ${r.mode}: context with B after the new daemon's "daemon ready" (median of ${r.protectedAfterReady.length}, ms) | ${median(r.protectedAfterReady)} | ${Math.min(...r.protectedAfterReady)} | ${Math.max(...r.protectedAfterReady)} | | | | | | |`);
  }
  if (discoverySamples > 0 && modes.some((m) => m.startsWith('shim6')) && (await shim6Unavailable()) === undefined) {
    try {
      await discoveryTime();
    } catch (err) {
      console.log(`\ndiscovery time: failed: ${(err as Error).message}`);
    }
  }
}

/**
 * Time from a new connection's first packet to A's context by discovery: B
 * publishes no record, A connects to B's address. t0 is taken just before
 * connect() in A; the context is A's `context-established` log record (ms).
 * Between connections A's daemon is stopped, its cache file removed, and
 * started again, so every connection is to an unknown peer.
 */
async function discoveryTime(): Promise<void> {
  const lab = labFor(LAB_PREFIX);
  await labUp(lab, { capability: false });
  const shim6 = await startLabShim6(lab, () => undefined);
  const server = spawn('ip', ['netns', 'exec', lab.b, process.execPath, '-e', "require('net').createServer((s) => { s.resume(); s.on('error', () => {}); }).listen(7001)"], { stdio: 'ignore' });
  const toContext: number[] = [];
  const toStart: number[] = [];
  const connectMs: number[] = [];
  try {
    await new Promise((r) => setTimeout(r, 500));
    // One warm client process in A (its connect path compiled by a first connect to the loopback, which
    // starts no discovery): per line on stdin it takes t0 and connects, then prints t0 and when it connected.
    const script = `const net = require('net'); const rl = require('readline').createInterface({ input: process.stdin });
      const go = (host, cb) => { const t = Date.now(); const s = net.connect({ host, port: 7001 }, () => { cb(t, Date.now()); setTimeout(() => s.destroy(), 100); }); s.on('error', () => cb(t, -1)); };
      go('::1', () => console.log('{"ready":true}'));
      rl.on('line', () => go('${LAB_ADDR.bP}', (t0, connected) => console.log(JSON.stringify({ t0, connected }))));`;
    const client = spawn('ip', ['netns', 'exec', lab.a, process.execPath, '-e', script], { stdio: ['pipe', 'pipe', 'ignore'] });
    const replies: string[] = [];
    client.stdout.on('data', (d: Buffer) => replies.push(...d.toString().split('\n').filter(Boolean)));
    const next = async (): Promise<{ t0: number; connected: number; ready?: boolean }> => {
      for (let k = 0; k < 200 && replies.length === 0; k++) await new Promise((res) => setTimeout(res, 25));
      const l = replies.shift();
      if (l === undefined) throw new Error('the client in A did not answer');
      return JSON.parse(l) as { t0: number; connected: number };
    };
    await next();
    for (let i = 0; i < discoverySamples; i++) {
      client.stdin.write('go\n');
      const { t0, connected } = await next();
      if (connected < 0) throw new Error('connect to B failed');
      connectMs.push(connected - t0);
      let est: number | undefined;
      let started: number | undefined;
      for (let k = 0; k < 100 && est === undefined; k++) {
        const recs = readLog(labDaemonFiles(lab, 'a').log);
        started = recs.filter((x) => x.msg === 'discovery started' && x.peer === LAB_ADDR.bP && Date.parse(x.ts) >= t0).map((x) => Date.parse(x.ts))[0];
        est = recs.filter((x) => x.msg === 'context-established' && x.peerUlid === LAB_ADDR.bP && Date.parse(x.ts) >= t0).map((x) => Date.parse(x.ts))[0];
        if (est === undefined) await new Promise((res) => setTimeout(res, 100));
      }
      if (est === undefined) throw new Error(`connection ${i + 1}: no context by discovery`);
      toContext.push(est - t0);
      if (started !== undefined) toStart.push(started - t0);
      process.stderr.write(`  discovery ${i + 1}/${discoverySamples}: connected after ${connected - t0} ms; first packet → discovery started ${started !== undefined ? started - t0 : '?'} ms → context ${est - t0} ms\n`);
      await shim6.stopHost('a');
      rmSync(labDaemonFiles(lab, 'a').cache, { force: true });
      await shim6.start('a');
    }
    client.kill('SIGKILL');
  } finally {
    server.kill('SIGKILL');
    await shim6.stop();
    labDown(lab);
  }
  console.log(`\ndiscovery time (no record, by address; median of ${toContext.length}): first packet → context established ${median(toContext)} ms (min ${Math.min(...toContext)}, max ${Math.max(...toContext)}); first packet → discovery started (the daemon learnt of the flow) ${toStart.length ? median(toStart) : '—'} ms; connect() completed after ${median(connectMs)} ms (not held)`);
}

await main();
