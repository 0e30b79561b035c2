// Local clients cannot exhaust the stub over TCP: the real `shim6 resolver` process in front of a real
// Knot, real dig as the well-behaved client, raw sockets as the abusive ones. No wall-clock bounds:
// every wait is for a condition, with a generous deadline (CI machines are loaded).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import * as dnsPacket from 'dns-packet';
import { needs } from '../helpers/prereq.ts';
import { startAuthDns } from '../helpers/authdns.ts';
import { dig, digStatus, sleep } from './harness.ts';
import { zoneText, ZONE } from './zone.ts';
import { resolverStatus, rssMiB, startCli, waitFor, type RunningCli } from './process.ts';

interface TcpStatus { counters: Record<string, number>; tcp: { connections: number; maxConnections: number } }

/** `dig` over UDP and over TCP, from `source` (a loopback address), must get NOERROR for peer.example. */
async function servedBoth(cli: RunningCli, source = '127.0.0.1'): Promise<void> {
  for (const transport of ['+notcp', '+tcp']) {
    const r = await dig({ host: '127.0.0.1', port: cli.port }, '-b', source, 'peer.example.', 'AAAA', transport);
    assert.equal(digStatus(r.stdout), 'NOERROR', `${transport} from ${source}: ${r.stdout}${r.stderr}`);
  }
}

/** 2-octet framed queries for peer.example AAAA (a cache hit once warmed), `n` of them in one buffer. */
function pipelined(n: number): Buffer {
  const q = dnsPacket.encode({ id: 1, type: 'query', flags: dnsPacket.RECURSION_DESIRED, questions: [{ name: 'peer.example', type: 'AAAA' }] });
  const frame = Buffer.concat([Buffer.from([q.length >> 8, q.length & 0xff]), q]);
  return Buffer.concat(Array.from({ length: n }, () => frame));
}

// Before the bound the stub read on and queued every answer: 116 MB → 2.63 GB in 25 s (issue 16).
// What the client can cost now: 32 KiB of unsent answers plus the kernel's socket buffers (outside
// the process): measured 100 → 114 MiB, the client stalling after ~5 MiB of queries. The same client
// against the tree before the bound wrote all 64 MiB and took the stub from 100 to 844 MiB. The bound
// below is generous (node's heap breathing, the first TCP answers' own allocations) and far under that.
const RSS_GROWTH_BOUND_MIB = 96;

test('a TCP client that pipelines queries and never reads: the stub stops reading it, its memory stays bounded, others are served, the client is dropped once idle', { timeout: 300_000 }, async (t) => {
  if (!needs(t, { commands: ['knotd', 'dig'] })) return;
  const auth = await startAuthDns({ server: 'knot', zones: [{ name: ZONE, text: zoneText() }] });
  t.after(() => auth.stop());
  const cli = await startCli(t, ['--upstream', `127.0.0.1:${auth.port}`]);
  await servedBoth(cli); // warms the cache: every query below is a hit, answered at once
  await sleep(500);
  const before = rssMiB(cli.pid);

  const c = net.connect(cli.port, '127.0.0.1');
  t.after(() => c.destroy());
  await new Promise<void>((r) => c.once('connect', () => r()));
  c.pause(); // never read
  let closed = false;
  c.on('error', () => undefined);
  c.on('close', () => { closed = true; });
  const chunk = pipelined(2048);
  const offered = 64 * 1024 * 1024;
  let written = 0;
  // Write until the stub stops taking queries — it says it paused the connection and no 'drain'
  // comes for 3 s: the kernel buffers are full because it stopped reading — or the whole offer is
  // written (what the stub did before the bound).
  const paused = async (): Promise<boolean> => (await resolverStatus<TcpStatus>(cli)).counters.tcpWritePauses! >= 1;
  let stalled = false;
  let peak = 0;
  while (written < offered && !closed && !stalled) {
    written += chunk.length;
    if (c.write(chunk)) continue;
    for (;;) {
      peak = Math.max(peak, rssMiB(cli.pid));
      const drained = await Promise.race([new Promise<boolean>((r) => c.once('drain', () => r(true))), sleep(3000).then(() => false)]);
      if (drained || closed) break;
      if (await paused()) { stalled = true; break; }
    }
  }
  assert.ok(stalled && await paused(), 'the stub paused reading the connection for its unread answers');
  for (let i = 0; i < 10; i++) { peak = Math.max(peak, rssMiB(cli.pid)); await sleep(100); }
  const st = await resolverStatus<TcpStatus>(cli);
  t.diagnostic(`client wrote ${(written / 1048576).toFixed(1)} MiB of queries; stub answered ${st.counters.tcpQueries} over TCP; RSS ${before.toFixed(0)} → peak ${peak.toFixed(0)} MiB`);
  assert.ok(written < offered, `the client could write all ${offered} octets: the stub kept reading`);
  assert.ok(peak - before < RSS_GROWTH_BOUND_MIB, `RSS grew ${(peak - before).toFixed(0)} MiB (bound ${RSS_GROWTH_BOUND_MIB})`);

  // Everyone else is still served, over UDP and TCP, while that client sits there.
  await servedBoth(cli);
  // With nothing in flight and nothing moving, the idle timeout (10 s) ends the connection.
  assert.ok(await waitFor(async () => (await resolverStatus<TcpStatus>(cli)).tcp.connections === 0), 'the non-reading connection was closed');
  assert.equal(await cli.stop(), 0, cli.stderr());
});

/** A slow-loris connection from `source`: one octet of a never-finished message every 4 s; reconnects when closed. */
class Loris {
  private sock: net.Socket | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  closes = 0;
  constructor(private readonly port: number, private readonly source: string) { this.open(); }

  private open(): void {
    if (this.stopped) return;
    const s = net.connect({ port: this.port, host: '127.0.0.1', localAddress: this.source });
    this.sock = s;
    s.on('error', () => undefined);
    s.on('connect', () => {
      s.write(Buffer.from([0]));
      this.timer = setInterval(() => s.write(Buffer.from([0x20])), 4000);
    });
    s.on('close', () => {
      clearInterval(this.timer);
      this.closes++;
      // Come back, as an attacker would; a pause keeps the test from spinning the shared CPUs.
      if (!this.stopped) setTimeout(() => this.open(), 500);
    });
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    this.sock?.destroy();
  }
}

test('300 slow-loris connections (one octet every 4 s) do not lock new TCP clients out: per-address limit, oldest idle closed at the global limit, message deadline', { timeout: 300_000 }, async (t) => {
  if (!needs(t, { commands: ['knotd', 'dig'] })) return;
  const auth = await startAuthDns({ server: 'knot', zones: [{ name: ZONE, text: zoneText() }] });
  t.after(() => auth.stop());
  const cli = await startCli(t, ['--upstream', `127.0.0.1:${auth.port}`]);
  // 40 from 127.0.0.1 (over the 32 per address), 260 from 127.0.0.2 … 127.0.0.14 (over the 256 in all).
  const sources = [...Array.from({ length: 40 }, () => '127.0.0.1'), ...Array.from({ length: 260 }, (_, i) => `127.0.0.${2 + (i % 13)}`)];
  const lorises: Loris[] = [];
  t.after(() => lorises.forEach((l) => l.stop()));
  for (const src of sources) { lorises.push(new Loris(cli.port, src)); if (lorises.length % 50 === 0) await sleep(50); }

  // The stub never holds more than its bounds, and made room by closing idle connections
  // (every loris is idle: it is owed nothing) rather than refusing newcomers.
  let st = await resolverStatus<TcpStatus>(cli);
  assert.ok(await waitFor(async () => {
    st = await resolverStatus<TcpStatus>(cli);
    assert.ok(st.tcp.connections <= 256, `${st.tcp.connections} connections open`);
    return st.counters.tcpEvicted! >= 300 - 256 && st.tcp.connections >= 200;
  }), `evictions ${st.counters.tcpEvicted}, open ${st.tcp.connections}`);
  // A new client, from a fresh address and from the attackers' own address, is served over TCP (and UDP).
  await servedBoth(cli, '127.0.0.200');
  await servedBoth(cli, '127.0.0.1');
  // None of the loris messages ever completes: each connection is closed by the message deadline (3 s).
  assert.ok(await waitFor(async () => (await resolverStatus<TcpStatus>(cli)).counters.tcpMessageTimeouts! >= 1), 'message deadline closed a slow-loris connection');
  st = await resolverStatus<TcpStatus>(cli);
  t.diagnostic(`open ${st.tcp.connections}, closed idle for room ${st.counters.tcpEvicted}, message timeouts ${st.counters.tcpMessageTimeouts}, refused ${st.counters.tcpRefused}`);
  await servedBoth(cli, '127.0.0.201');
  lorises.forEach((l) => l.stop());
  assert.equal(await cli.stop(), 0, cli.stderr());
});
