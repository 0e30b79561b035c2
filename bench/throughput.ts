/**
 * `npm run bench -- throughput [--engine engine|static] [--seconds N] [--runs N] [--repair-ms N] [--no-stall] [--json]`
 *
 * Data-plane throughput in real namespaces (root): iperf3 TCP from A to B
 * through an established context on the kernel path (the ULID pair: the
 * kernel's own route, nftables counting), the same after re-homing to link
 * Q (the kernel encapsulation: tc programs add and remove UDP 5533 + the payload
 * header; TUN → driver → UDP where they cannot be loaded), the same context on the TUN path
 * (config dataPath: tun), and the direct veth link, in one run, as ratios;
 * and both nodes' CPU (% of one core, user + system, from /proc) during the
 * context runs. A second peer, `segmented_gbps`: the same direct link with A's
 * TCP segmentation offload off and B's GRO on (ethtool), so that every packet on
 * the wire is at most the path MTU, as after any encapsulation that cannot hand
 * the kernel a GSO packet it knows how to cut (docs/dataplane.md): the ceiling
 * of such a design here. `--json` prints one object (direct_gbps, segmented_gbps,
 * context_gbps, rehomed_gbps, tun_context_gbps, daemon_cpu_pct, tun_daemon_cpu_pct, …) and
 * measures no stall. The context comes from the real Engine (set up by prime,
 * re-homed by REAP after a silent black hole of P) or, with `--engine static`,
 * from a StaticContextEngine (fixed tags; re-homing commanded).
 *
 * Then the TCP stall after a silent black hole of P, with and without the TCP
 * prompt: (1) re-homed by the real engine's REAP, (2) re-homed by command after
 * `--repair-ms` (3500 by default: the "repaired after 3.5 s" case of issue 6).
 * Prints figures; asserts nothing.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { twoHosts, stallRun, ADDR, type TwoHosts } from '../test/dataplane/two-hosts.ts';
import { isRoot, haveCommand } from '../test/helpers/prereq.ts';

interface Args { seconds: number; runs: number; repairMs: number; stall: boolean; engine: 'engine' | 'static'; json: boolean }

function parseArgs(argv: string[]): Args {
  const a: Args = { seconds: 5, runs: 3, repairMs: 3500, stall: true, engine: 'engine', json: false };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = Number(argv[i + 1]);
    if (k === '--seconds') { a.seconds = v; i++; } else if (k === '--runs') { a.runs = v; i++; } else if (k === '--repair-ms') { a.repairMs = v; i++; } else if (k === '--no-stall') a.stall = false;
    else if (k === '--json') { a.json = true; a.stall = false; }
    else if (k === '--engine' && (argv[i + 1] === 'engine' || argv[i + 1] === 'static')) { a.engine = argv[i + 1] as Args['engine']; i++; }
    else { console.error(`throughput: unknown argument ${String(k)}`); process.exit(2); }
  }
  return a;
}

/** One iperf3 TCP run from A to `dst`; Gbit/s received. */
function iperf(h: TwoHosts, dst: string, seconds: number): number {
  const r = h.net.run(h.a, ['iperf3', '-6', '-c', dst, '-t', String(seconds), '-J', '-O', '1'], { timeoutMs: (seconds + 20) * 1000 });
  const j = JSON.parse(r.stdout) as { end: { sum_received: { bits_per_second: number } } };
  return j.end.sum_received.bits_per_second / 1e9;
}

/** CPU seconds (user + system) of a process so far, from /proc (clock ticks of 1/100 s). */
function cpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return 0;
  }
}

/** iperf3 runs to `dst`; Gbit/s of each, and both nodes' CPU during them (% of one core). */
function measured(h: TwoHosts, dst: string, seconds: number): { gbps: number; cpuPct: number } {
  const pids = [h.nodeA.child.pid, h.nodeB.child.pid];
  const c0 = pids.map(cpuSeconds), t0 = performance.now();
  const gbps = iperf(h, dst, seconds);
  const wall = (performance.now() - t0) / 1000;
  const cpu = pids.map(cpuSeconds).reduce((x, c, i) => x + c - c0[i]!, 0);
  return { gbps, cpuPct: (100 * cpu) / wall };
}

const median = (xs: number[]) => { const s = [...xs].sort((x, y) => x - y); return s[Math.floor(s.length / 2)]!; };
const fmt = (x: number) => x.toFixed(3);

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (!isRoot() || !haveCommand('iperf3') || !haveCommand('nft')) {
    console.log('throughput: needs root, iperf3 and nft (namespaces, TUN); skipped');
    return;
  }
  const hooks: Array<() => unknown> = [];
  const cleanup = async () => { for (const f of hooks.reverse()) await f(); };
  process.on('SIGINT', () => void cleanup().then(() => process.exit(130)));
  try {
    const hook = { after: (f: () => unknown) => { hooks.push(f); } };
    const cpu = spawnSync('nproc', { encoding: 'utf8' }).stdout.trim();
    const load = () => spawnSync('cat', ['/proc/loadavg'], { encoding: 'utf8' }).stdout.split(' ').slice(0, 3).join(' ');
    const say = (x: string) => { if (!args.json) console.log(x); };
    const loadBefore = load();
    say(`Data plane throughput: iperf3 TCP A→B, ${args.seconds} s × ${args.runs} runs, veth MTU 1500, TUN MTU 1444, context: ${args.engine === 'engine' ? 'real Engine (fast profile)' : 'static'}, ${cpu} CPUs, load ${loadBefore}\n`);
    const ctxDgram: number[] = [];
    if (!args.json) {
      // Node's dgram transport as a peer in the same run (one sendto per datagram, one JS event per datagram).
      const hd = await twoHosts(hook, { tcpPrompt: true, engine: args.engine, udp: 'dgram', dataPath: 'tun' });
      hd.net.spawn(hd.b, ['iperf3', '-s', '-B', '::']);
      await new Promise((r) => setTimeout(r, 500));
      for (let i = 0; i < args.runs; i++) ctxDgram.push(iperf(hd, hd.ulidB, args.seconds));
      await hooks.pop()!();
    }
    // The same context on the TUN path (the fallback, config dataPath: tun).
    const ht = await twoHosts(hook, { tcpPrompt: true, engine: args.engine, dataPath: 'tun' });
    ht.net.spawn(ht.b, ['iperf3', '-s', '-B', '::']);
    await new Promise((r) => setTimeout(r, 500));
    const ctxTun: number[] = [], cpuTun: number[] = [];
    for (let i = 0; i < args.runs; i++) {
      const m = measured(ht, ht.ulidB, args.seconds);
      ctxTun.push(m.gbps);
      cpuTun.push(m.cpuPct);
    }
    await hooks.pop()!();
    // The kernel path (static mode has no kernel path: its context is fixed on the TUN).
    const kernelPath = args.engine === 'engine';
    const h = await twoHosts(hook, { tcpPrompt: true, engine: args.engine, dataPath: kernelPath ? 'kernel' : 'tun' });
    h.net.spawn(h.b, ['iperf3', '-s', '-B', '::']);
    await new Promise((r) => setTimeout(r, 500));
    const direct: number[] = [], segmented: number[] = [], ctxP: number[] = [], ctxQ: number[] = [], cpuP: number[] = [];
    // The direct link carrying path-MTU packets only: A cuts each TCP segment before the veth, B's GRO joins them.
    const segmenting = haveCommand('ethtool');
    const offloads = (on: boolean) => {
      h.net.run(h.a, ['ethtool', '-K', 'dpQ', 'tso', on ? 'on' : 'off']);
      h.net.run(h.b, ['ethtool', '-K', 'dpQ', 'gro', on ? 'off' : 'on']);
    };
    for (let i = 0; i < args.runs; i++) {
      // Direct: B's Q address is not a ULID, so it is routed by main over the veth.
      direct.push(iperf(h, ADDR.qb, args.seconds));
      if (segmenting) {
        offloads(false);
        segmented.push(iperf(h, ADDR.qb, args.seconds));
        offloads(true);
      }
      const m = measured(h, h.ulidB, args.seconds);
      ctxP.push(m.gbps);
      cpuP.push(m.cpuPct);
    }
    if (!segmenting) say('(no ethtool: the segmented direct link is not measured)\n');
    if (args.engine === 'static') await h.rehomeToQ();
    else {
      // Re-homing by the engine: black-hole P, wait for REAP to move the context to Q.
      h.net.blackhole(h.a, 'dpP');
      const end = Date.now() + 15_000;
      while (!h.events.a.some((e) => e.kind === 'locator-pair-changed') && Date.now() < end) {
        h.net.tryRun(h.a, [process.execPath, '-e', `require('net').connect(9,${JSON.stringify(h.ulidB)}).on('error',()=>{})`]);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    for (let i = 0; i < args.runs; i++) ctxQ.push(iperf(h, h.ulidB, args.seconds));
    await hooks.pop()!();
    const d = median(direct);
    if (args.json) {
      const r3 = (x: number) => Math.round(x * 1000) / 1000;
      console.log(JSON.stringify({
        direct_gbps: r3(d), ...(segmenting ? { segmented_gbps: r3(median(segmented)), rehomed_segmented_ratio: r3(median(ctxQ) / median(segmented)) } : {}), context_gbps: r3(median(ctxP)), rehomed_gbps: r3(median(ctxQ)), tun_context_gbps: r3(median(ctxTun)),
        daemon_cpu_pct: r3(median(cpuP)), tun_daemon_cpu_pct: r3(median(cpuTun)),
        context_ratio: r3(median(ctxP) / d), rehomed_ratio: r3(median(ctxQ) / d), tun_context_ratio: r3(median(ctxTun) / d),
        context_path: kernelPath ? 'kernel' : 'tun', runs: args.runs, seconds: args.seconds, cpus: Number(cpu), load_before: loadBefore, load_after: load(),
      }));
      return;
    }
    const row = (name: string, xs: number[], cpus?: number[]) => console.log(`| ${name} | ${fmt(median(xs))} | ${xs.map(fmt).join(', ')} | ${fmt(median(xs) / d)} | ${cpus ? median(cpus).toFixed(1) : '—'} |`);
    console.log('| path | median Gbit/s | runs | ratio to direct veth | both nodes\' CPU, % of a core |');
    console.log('|---|---|---|---|---|');
    row('direct veth (no shim6)', direct);
    if (segmenting) row('direct veth, path-MTU packets only (A: tso off, B: gro on)', segmented);
    row(kernelPath ? 'context on P, kernel path (no TUN; nftables counters)' : 'context on P: TUN (offloads) + native UDP (sendmmsg/recvmmsg)', ctxP, cpuP);
    row(kernelPath ? 'context after re-homing to Q: kernel encapsulation (tc programs)' : 'context after re-homing to Q: TUN + native UDP', ctxQ);
    row('context on P, TUN path (dataPath: tun): TUN (offloads) + native UDP', ctxTun, cpuTun);
    row('context on P, TUN path + Node dgram', ctxDgram);
    console.log(`\n(load after: ${load()})`);
    if (args.stall) {
      console.log(`\nTCP stall after a silent black hole of P (receiver's longest gap between data), median of ${args.runs}:\n`);
      console.log('| re-homing | TCP prompt | stall ms (runs) | re-homed after ms | resumed after re-homing ms | segments replayed |');
      console.log('|---|---|---|---|---|---|');
      for (const mode of ['engine', 'static'] as const) {
        for (const prompt of [false, true]) {
          const rs = [];
          for (let i = 0; i < args.runs; i++) {
            const h2 = await twoHosts(hook, { tcpPrompt: prompt, engine: mode });
            rs.push(await stallRun(h2, mode === 'engine' ? 10_000 : args.repairMs, mode === 'engine' ? 3000 : 5000));
            await hooks.pop()!();
          }
          const gaps = rs.map((r) => r.report.maxGapMs);
          const m = median(gaps);
          const at = median(rs.map((r) => r.rehomedMs));
          console.log(`| ${mode === 'engine' ? 'REAP (fast profile)' : `by command at ${args.repairMs} ms`} | ${prompt ? 'on' : 'off'} | ${m.toFixed(0)} (${gaps.map((g) => g.toFixed(0)).join(', ')}) | ${at.toFixed(0)} | ${(m - at).toFixed(0)} | ${rs.map((r) => String(r.stats.prompts)).join(', ')} |`);
        }
      }
    }
  } finally {
    await cleanup();
  }
}

await main();
