/**
 * `shim6 lab up | demo | down`: the two-host lab on this machine (root:
 * network namespaces, veth links, Knot). Owned by the lab feature; the work is
 * in lab/. This file only parses flags and prints.
 */
import type { Command } from 'commander';
import { badValue } from '../errors.ts';
import { EnvironmentError } from '../../shim/errors.ts';

interface CommonOpts { prefix: string }

function requireRoot(): void {
  if (process.getuid?.() !== 0) throw new EnvironmentError('ENOTROOT', 'the lab needs root (network namespaces, veth links, TUN); run it as root');
}

function positiveMs(field: string, v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0 || n > 600_000) badValue(field, v, 'expected milliseconds in 1..600000');
  return n;
}

export function register(program: Command): void {
  const lab = program.command('lab').description('a two-host lab on this machine: hosts A and B joined by links P and Q, a DNS server with B\'s capability record (needs root)');

  lab.command('up')
    .description('create the namespaces, links, the DNS server, the shim6 daemons and a web server on B (refuses to replace a running lab unless --replace)')
    .option('--prefix <name>', 'name prefix of the namespaces: 1 to 8 lowercase letters or digits', 'lab')
    .option('--replace', 'replace a lab of the same prefix that is running (default: refuse, leaving it untouched)')
    .option('--no-record', 'publish no capability record for B (a peer without shim6)')
    .option('--no-shim6', 'do not start the shim6 daemons on A and B')
    .action(async (o: CommonOpts & { record: boolean; shim6: boolean; replace?: boolean }) => {
      requireRoot();
      const { labFor } = await import('../../lab/topology.ts');
      const { labUp, startLabHttp } = await import('../../lab/lab.ts');
      const { LAB_BASE_TOOLS, requireTools } = await import('../../lab/tools.ts');
      requireTools(LAB_BASE_TOOLS, 'lab up');
      const daemons = await import('../../lab/daemons.ts');
      const l = labFor(o.prefix);
      const say = (s: string): void => { process.stdout.write(`lab: ${s}\n`); };
      await labUp(l, { capability: o.record, say, replace: o.replace ?? false });
      const why = o.shim6 ? await daemons.shim6Unavailable() : 'not asked for (--no-shim6)';
      if (why === undefined) {
        for (const h of ['b', 'a'] as const) {
          daemons.writeLabDaemonConfig(l, h);
          await daemons.startLabDaemon(l, h, { detached: true });
          const f = daemons.labDaemonFiles(l, h);
          say(`shim6 daemon on ${h.toUpperCase()}: stub ${daemons.LAB_STUB}, log ${f.log}, status: shim6 status --socket ${f.control}`);
        }
      } else {
        say(`no shim6 daemons: ${why}`);
      }
      await startLabHttp(l);
      say(`web server on B, port 80; A and B resolve through their stub (/etc/netns/${l.a}/resolv.conf): try \`ip netns exec ${l.a} curl http://b.lab.example/\``);
      process.stdout.write(`lab: up; run commands in a host with \`ip netns exec ${l.a} …\` (docs/operations.md "The lab": curl, ssh, iperf3); remove with \`shim6 lab down${o.prefix === 'lab' ? '' : ` --prefix ${o.prefix}`}\`\n`);
    });

  lab.command('down')
    .description('remove the lab: processes, namespaces, links, /etc/netns/<namespace>/resolv.conf, state (idempotent)')
    .option('--prefix <name>', 'name prefix of the namespaces', 'lab')
    .action(async (o: CommonOpts) => {
      requireRoot();
      const { labFor } = await import('../../lab/topology.ts');
      const { labDown } = await import('../../lab/lab.ts');
      const had = labDown(labFor(o.prefix));
      process.stdout.write(had ? 'lab: removed\n' : 'lab: nothing to remove\n');
    });

  lab.command('demo')
    .description('stream checksummed data A→B by name, black-hole link P mid-stream, show the timeline and the stall')
    .option('--prefix <name>', 'name prefix of the namespaces', 'lab')
    .option('--mode <mode>', 'shim6 | tcp | mptcp (default: shim6 when the daemon is available, else tcp)')
    .option('--failure <kind>', 'blackhole (silent drop) | down (link down)', 'blackhole')
    .option('--duration <ms>', 'length of the stream', '6000')
    .option('--fail-at <ms>', 'when link P fails, after the stream starts', '2000')
    .option('--rate <Mbit/s>', 'paced sending rate', '100')
    .option('--json', 'print the figures as one JSON object (stall_ms, bytes_sent, bytes_verified, corrupt, rehome_ms, context_source, restarts)')
    .option('--plot <file.svg>', 'draw throughput over time as SVG')
    .option('--keep', 'leave the lab up afterwards')
    .option('--replace', 'replace a lab of the same prefix that is running (default: refuse, leaving it untouched)')
    .option('--no-record', 'publish no capability record for B and stream to B\'s address: the context comes from host-based discovery')
    .option('--restart-at <ms>', 'shim6 mode: restart A\'s daemon (SIGTERM, start) at this time after the stream starts; --fail-at must be later')
    .option('--send-timeout <ms>', 'shim6 mode: REAP Send Timeout of the daemons (default: the fast profile\'s)')
    .option('--renumber', 'shim6 mode: instead of failing link P, give A a new prefix on a third link at --fail-at, then remove the address it started with (--json adds record_updated_ms, peer_locators)')
    .action(async (o: CommonOpts & { mode?: string; failure: string; duration: string; failAt: string; rate: string; json?: boolean; plot?: string; keep?: boolean; replace?: boolean; sendTimeout?: string; renumber?: boolean; record: boolean; restartAt?: string }) => {
      if (o.renumber && o.mode !== undefined && o.mode !== 'shim6') badValue('--mode', o.mode, '--renumber needs shim6 mode');
      if (o.mode !== undefined && !['shim6', 'tcp', 'mptcp'].includes(o.mode)) badValue('--mode', o.mode, 'expected shim6, tcp or mptcp');
      if (!['blackhole', 'down'].includes(o.failure)) badValue('--failure', o.failure, 'expected blackhole or down');
      const durationMs = positiveMs('--duration', o.duration);
      const failAtMs = positiveMs('--fail-at', o.failAt);
      if (failAtMs >= durationMs) badValue('--fail-at', o.failAt, 'must be before the end of --duration');
      const restartAtMs = o.restartAt === undefined ? undefined : positiveMs('--restart-at', o.restartAt);
      if (restartAtMs !== undefined && restartAtMs >= failAtMs) badValue('--restart-at', o.restartAt, 'must be before --fail-at (the failure comes after the restart)');
      if (restartAtMs !== undefined && o.mode !== undefined && o.mode !== 'shim6') badValue('--restart-at', o.restartAt, 'only with --mode shim6 (it restarts A\'s shim6 daemon)');
      const sendTimeout = o.sendTimeout === undefined ? undefined : positiveMs('--send-timeout', o.sendTimeout);
      if (sendTimeout !== undefined && o.mode !== undefined && o.mode !== 'shim6') badValue('--send-timeout', o.sendTimeout, 'only with --mode shim6 (it sets the shim6 daemons\' timers)');
      const rate = Number(o.rate);
      if (!(rate > 0 && rate <= 10_000)) badValue('--rate', o.rate, 'expected Mbit/s in (0, 10000]');
      requireRoot();
      const { labFor } = await import('../../lab/topology.ts');
      const { runDemo } = await import('../../lab/demo.ts');
      const daemons = await import('../../lab/daemons.ts');
      const out = (s: string): void => { process.stdout.write(s + '\n'); };
      let mode = o.mode as 'shim6' | 'tcp' | 'mptcp' | undefined;
      if (mode === undefined) {
        mode = (await daemons.shim6Available()) ? 'shim6' : 'tcp';
        if (mode === 'tcp' && !o.json) out('demo: the shim6 daemon is not available in this build; showing plain TCP (the baseline that does not survive)');
      }
      await runDemo(labFor(o.prefix), {
        mode, durationMs, failAtMs, failure: o.failure as 'blackhole' | 'down', rate: (rate * 1e6) / 8,
        json: o.json ?? false, keep: o.keep ?? false, replace: o.replace ?? false, out, renumber: o.renumber ?? false, noRecord: !o.record,
        ...(restartAtMs !== undefined ? { restartAtMs } : {}),
        // A lower Send Timeout also gets a proportionally earlier first probe.
        startShim6: (l, say, extraA) => daemons.startLabShim6(l, say, {
          ...(sendTimeout === undefined ? {} : { timers: { sendTimeout, initialProbeTimeout: Math.max(10, Math.min(100, Math.round(sendTimeout / 3))) } }),
          ...(extraA ? { extraA } : {}),
        }),
        ...(o.plot ? { plot: o.plot } : {}),
      });
    });
}
