/**
 * `npm run bench -- failover [--runs N] [--modes tcp,mptcp,shim6,…] [--duration MS] [--fail-at MS] [--rate Mbit/s] [--load]`
 *
 * Application stall after a silent black hole of link P (nftables drop in A,
 * the link stays up), in the same two-host lab, side by side in one run:
 * plain TCP, Linux MPTCP with two subflows (`mptcpize run`), shim6 with the
 * fast timer profile (Send Timeout 150 ms, probes 50 ms apart), and shim6 with
 * the earlier fast timers (Send Timeout 600 ms, probes 100 ms apart,
 * `shim6-600`) for comparison. `shim6` runs the default data path (`dataPath:
 * tun`: every packet through the TUN and the daemon), `shim6-kernel` the same
 * with `dataPath: kernel` (docs/dataplane.md "Kernel path"). `--load` keeps
 * every CPU busy with a load generator (one spinning process per CPU) during
 * every mode's runs. The stream goes to B by name through A's stub, so
 * shim6 is primed by DNS. The stall is the
 * longest gap between two arrivals of data at the receiver; the figure is the
 * median of N runs (default 5). Prints figures and ratios; asserts nothing.
 *
 * Renumbering (issue 18), modes `mptcp-renumber` and `shim6-renumber`: instead
 * of the black hole, A's address on P — the one the stream runs on — is
 * withdrawn: deprecated (preferred lifetime 0), removed 500 ms later. MPTCP
 * has A's Q address as a subflow endpoint (`ip mptcp endpoint`), shim6 has
 * A's daemon (CGA identity, watching its addresses); the stall of each.
 * Needs root.
 */
import { spawn } from 'node:child_process';
import os from 'node:os';
import { labFor, LAB_ADDR } from '../lab/topology.ts';
import { labDown, labUp, mptcpUp } from '../lab/lab.ts';
import { runStream, type RunResult } from '../lab/run.ts';
import { shim6Unavailable, startLabShim6, type LabShim6 } from '../lab/daemons.ts';

import { LAB_B_NAME } from '../lab/dns.ts';
import { LAB_BASE_TOOLS, LAB_TOOL_PACKAGES, missingTools } from '../lab/tools.ts';

type Mode = 'tcp' | 'mptcp' | 'shim6' | 'shim6-kernel' | 'shim6-600' | 'mptcp-renumber' | 'shim6-renumber';

/** Timer overrides per shim6 mode: `shim6` is the fast profile as the engine defines it. */
const SHIM6_TIMERS: Record<string, Record<string, number>> = {
  shim6: {},
  'shim6-renumber': {},
  'shim6-kernel': {},
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
const modes = opt('modes', 'tcp,mptcp,shim6,shim6-kernel,shim6-600,mptcp-renumber,shim6-renumber').split(',') as Mode[];
const loaded = process.argv.includes('--load');

/** One spinning process per CPU (killed at exit): the "busy machine" of the issue. */
function startLoad(): () => void {
  const n = os.availableParallelism();
  const procs = Array.from({ length: n }, () => spawn(process.execPath, ['-e', 'for(;;){}'], { stdio: 'ignore' }));
  const stop = () => { for (const p of procs) p.kill('SIGKILL'); };
  process.on('exit', stop);
  return stop;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

interface ModeResult { mode: Mode; runs: RunResult[]; rehome: number[]; note?: string }

/** One run on a fresh lab (so every run starts on link P with no context yet). */
async function measureOnce(mode: Mode, i: number, out: ModeResult): Promise<void> {
  // A prefix of this process's own: two benchmarks on one machine must not share (and tear down) one lab.
  const lab = labFor(`labb${process.pid.toString(36)}`);
  await labUp(lab);
  let shim6: LabShim6 | undefined;
  try {
    if (mode.startsWith('mptcp')) mptcpUp(lab);
    const timers = SHIM6_TIMERS[mode];
    if (timers) shim6 = await startLabShim6(lab, () => undefined, { timers, ...(mode === 'shim6-kernel' ? { extra: { dataPath: 'kernel' } } : {}) });
    const r = await runStream(lab, {
      to: LAB_B_NAME, resolver: shim6?.resolverA ?? LAB_ADDR.dnsA, durationMs, failAtMs,
      failure: mode.endsWith('-renumber') ? 'withdraw' : 'blackhole', rate, graceMs: 2000, ...(mode.startsWith('mptcp') ? { wrap: ['mptcpize', 'run'] } : {}),
    });
    const rh = shim6?.rehomeAt(r.failAt);
    if (rh != null && r.failAt !== undefined) out.rehome.push(rh - r.failAt);
    out.runs.push(r);
    process.stderr.write(`  ${mode} run ${i + 1}/${runs}: stall ${r.stall_ms} ms${r.recovered ? '' : ' (not recovered)'}${rh != null && r.failAt !== undefined ? `, re-homed after ${rh - r.failAt} ms` : ''}, verified ${r.bytes_verified}/${r.bytes_sent}${r.complete ? '' : ' (stream not finished within the grace time)'}, corrupt ${r.corrupt}\n`);
  } finally {
    await shim6?.stop();
    labDown(lab);
  }
}

async function measure(mode: Mode): Promise<ModeResult> {
  const out: ModeResult = { mode, runs: [], rehome: [] };
  for (let i = 0; i < runs; i++) await measureOnce(mode, i, out);
  return out;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) {
    console.log('failover: needs root (network namespaces); nothing measured');
    return;
  }
  const loadavg = () => os.loadavg().map((x) => x.toFixed(2)).join(' ');
  console.log(`failover: silent black hole (renumber modes: withdrawal of A's address) of link P at +${failAtMs} ms of a ${durationMs} ms stream at ${(rate * 8) / 1e6} Mbit/s; ${runs} runs per mode${loaded ? `; every CPU kept busy by a load generator (${os.availableParallelism()} spinning processes)` : ''}; load ${loadavg()}`);
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
      results.push({ mode, runs: [], rehome: [], note: mode.startsWith('shim6') ? `daemon not available in this build: ${why}` : `not measured: ${why}` });
      continue;
    }
    try {
      results.push(await measure(mode));
    } catch (err) {
      results.push({ mode, runs: [], rehome: [], note: `failed: ${(err as Error).message}` });
    }
  }
  stopLoad?.();
  console.log(`(load after: ${loadavg()})`);
  // Each failure against MPTCP with the same failure.
  const refOf = (m: Mode): number | undefined => {
    const ref = results.find((r) => r.mode === (m.endsWith('-renumber') ? 'mptcp-renumber' : 'mptcp') && r.runs.length);
    return ref ? median(ref.runs.map((r) => r.stall_ms)) : undefined;
  };
  console.log('\n| mode | median stall (ms) | min | max | recovered | corrupt | median re-homing (ms) | stall / MPTCP |');
  console.log('|---|---|---|---|---|---|---|---|');
  for (const r of results) {
    if (!r.runs.length) { console.log(`| ${r.mode} | — | — | — | — | — | — | ${r.note ?? ''} |`); continue; }
    const stalls = r.runs.map((x) => x.stall_ms);
    const rec = r.runs.filter((x) => x.recovered).length;
    const med = median(stalls);
    const medianText = rec === r.runs.length ? String(med) : `≥ ${med} (window end)`;
    const refMedian = refOf(r.mode);
    const ratio = refMedian && rec === r.runs.length ? (med / refMedian).toFixed(2) : rec === r.runs.length ? '—' : '∞';
    console.log(`| ${r.mode} | ${medianText} | ${Math.min(...stalls)} | ${Math.max(...stalls)} | ${rec}/${r.runs.length} | ${r.runs.reduce((a, x) => a + x.corrupt, 0)} | ${r.rehome.length ? median(r.rehome) : '—'} | ${ratio} |`);
  }
}

await main();
