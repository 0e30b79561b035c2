/**
 * `npm run bench -- throughput [--seconds N] [--runs N] [--repair-ms N] [--no-stall]`
 *
 * Data-plane throughput in real namespaces (root): iperf3 TCP from A to B
 * through an established context (TUN → driver → UDP on link P → driver →
 * TUN), the same after re-homing to link Q, and the direct veth link, in one
 * run, as ratios. Then the TCP stall after a silent black hole of P repaired
 * (re-homed) after `--repair-ms`, with and without the TCP prompt.
 *
 * The context is a StaticContextEngine (fixed tags and locators, real RFC 5533
 * payload headers): this measures the data plane, not the protocol engine.
 * Prints figures; asserts nothing.
 */
import { spawnSync } from 'node:child_process';
import { twoHosts, stallRun, ADDR, type TwoHosts } from '../test/dataplane/two-hosts.ts';
import { isRoot, haveCommand } from '../test/helpers/prereq.ts';

interface Args { seconds: number; runs: number; repairMs: number; stall: boolean }

function parseArgs(argv: string[]): Args {
  const a: Args = { seconds: 5, runs: 3, repairMs: 3500, stall: true };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = Number(argv[i + 1]);
    if (k === '--seconds') { a.seconds = v; i++; } else if (k === '--runs') { a.runs = v; i++; } else if (k === '--repair-ms') { a.repairMs = v; i++; } else if (k === '--no-stall') a.stall = false;
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
    const h = await twoHosts({ after: (f) => hooks.push(f) }, { tcpPrompt: true });
    h.net.spawn(h.b, ['iperf3', '-s', '-B', '::']);
    await new Promise((r) => setTimeout(r, 500));
    const cpu = spawnSync('nproc', { encoding: 'utf8' }).stdout.trim();
    console.log(`Data plane throughput: iperf3 TCP A→B, ${args.seconds} s × ${args.runs} runs, veth MTU 1500, TUN MTU 1444, ${cpu} CPUs\n`);
    const direct: number[] = [], ctxP: number[] = [], ctxQ: number[] = [];
    for (let i = 0; i < args.runs; i++) {
      // Direct: B's Q address is not a ULID, so it is routed by main over the veth.
      direct.push(iperf(h, ADDR.qb, args.seconds));
      ctxP.push(iperf(h, h.ulidB, args.seconds));
    }
    await h.rehomeToQ();
    for (let i = 0; i < args.runs; i++) ctxQ.push(iperf(h, h.ulidB, args.seconds));
    const d = median(direct);
    console.log('| path | median Gbit/s | runs | ratio to direct veth |');
    console.log('|---|---|---|---|');
    console.log(`| direct veth (no shim6) | ${fmt(d)} | ${direct.map(fmt).join(', ')} | 1 |`);
    console.log(`| context on P (TUN + UDP) | ${fmt(median(ctxP))} | ${ctxP.map(fmt).join(', ')} | ${fmt(median(ctxP) / d)} |`);
    console.log(`| context after re-homing to Q | ${fmt(median(ctxQ))} | ${ctxQ.map(fmt).join(', ')} | ${fmt(median(ctxQ) / d)} |`);
    if (args.stall) {
      console.log(`\nTCP stall after a silent black hole of P, re-homed to Q after ${args.repairMs} ms (receiver's longest gap):\n`);
      const off = await stallRun(await twoHosts({ after: (f) => hooks.push(f) }, { tcpPrompt: false }), args.repairMs, 5000);
      const on = await stallRun(await twoHosts({ after: (f) => hooks.push(f) }, { tcpPrompt: true }), args.repairMs, 5000);
      console.log('| TCP prompt | stall ms | stall after re-homing ms | segments replayed |');
      console.log('|---|---|---|---|');
      for (const [name, r] of [['off', off], ['on', on]] as const) {
        console.log(`| ${name} | ${r.report.maxGapMs.toFixed(0)} | ${(r.report.maxGapMs - r.rehomedMs).toFixed(0)} | ${String(r.stats.prompts)} |`);
      }
    }
  } finally {
    await cleanup();
  }
}

await main();
