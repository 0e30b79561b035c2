/**
 * `npm run bench -- newflows [--conns N] [--rounds R]`
 *
 * What learning of new outgoing flows costs (shim/dataplane/new-flows.ts:
 * the daemon's nftables table, conntrack, a log group read through the
 * addon's NFLOG socket). Two namespaces of our own joined by a veth pair; a
 * client in one opens N TCP connections one after another (connect, then
 * close) to a server in the other, in rounds alternating between:
 *   - `bare`: no nftables table in the client's namespace;
 *   - `table`: the new-flows table and a reader (the real NewFlows class in a
 *     process of its own, its callback counting) — every connection logged.
 * Prints the connections per second of each, the extra time per connection
 * (from the two rates), and the reader's CPU time per flow it received.
 * The kernel's `limit rate` is raised above the connection rate so every
 * flow is logged (the daemon's default limit is 200/s). Needs root.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { nodeArgs, packageRoot } from '../shim/runtime-paths.ts';

function opt(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? def) : def;
}

const conns = Number(opt('conns', '2000'));
const rounds = Number(opt('rounds', '7'));
const NS_C = `nfbc${process.pid.toString(36).slice(-4)}`;
const NS_S = `nfbs${process.pid.toString(36).slice(-4)}`;
const C_ADDR = '2001:db8:77::1';
const S_ADDR = '2001:db8:77::2';

function sh(argv: string[]): void {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr}`);
}

function up(): void {
  sh(['ip', 'netns', 'add', NS_C]);
  sh(['ip', 'netns', 'add', NS_S]);
  sh(['ip', '-n', NS_C, 'link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1', 'netns', NS_S]);
  for (const [ns, dev, addr] of [[NS_C, 'v0', C_ADDR], [NS_S, 'v1', S_ADDR]] as const) {
    sh(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
    sh(['ip', '-n', ns, 'link', 'set', dev, 'up']);
    sh(['ip', '-n', ns, 'addr', 'add', `${addr}/64`, 'dev', dev, 'nodad']);
  }
  // Many short connections from one address: reuse TIME_WAIT ports.
  sh(['ip', 'netns', 'exec', NS_C, 'sysctl', '-q', '-w', 'net.ipv4.tcp_tw_reuse=1']);
}

function down(): void {
  spawnSync('ip', ['netns', 'del', NS_C]);
  spawnSync('ip', ['netns', 'del', NS_S]);
}

const SERVER = `require('net').createServer((s) => { s.on('error', () => {}); s.end(); }).listen(7100, '${S_ADDR}', () => console.log('ready'));`;
const CLIENT = `const net = require('net'); const n = Number(process.argv[1]); let i = 0; const t0 = process.hrtime.bigint();
const one = () => { if (i++ >= n) { console.log(JSON.stringify({ ms: Number(process.hrtime.bigint() - t0) / 1e6 })); return; }
  const s = net.connect({ host: '${S_ADDR}', port: 7100 }, () => s.destroy()); s.on('close', one); s.on('error', () => {}); };
one();`;

function reader(): ChildProcess {
  return spawn('ip', ['netns', 'exec', NS_C, process.execPath, ...nodeArgs('bench/_newflows-reader.ts')], { stdio: ['ignore', 'pipe', 'inherit'], cwd: packageRoot });
}

function firstLine(p: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    p.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const i = buf.indexOf('\n');
      if (i >= 0) { const l = buf.slice(0, i); buf = buf.slice(i + 1); p.stdout!.removeAllListeners('data'); resolve(l); }
    });
    p.once('exit', (c) => reject(new Error(`exited ${String(c)}`)));
  });
}

async function clientRun(): Promise<number> {
  const r = spawnSync('ip', ['netns', 'exec', NS_C, process.execPath, '-e', CLIENT, String(conns)], { encoding: 'utf8' });
  const { ms } = JSON.parse(r.stdout.trim()) as { ms: number };
  return ms;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) { console.log('newflows: needs root; nothing measured'); return; }
  down();
  up();
  const server = spawn('ip', ['netns', 'exec', NS_S, process.execPath, '-e', SERVER], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    await firstLine(server);
    await clientRun(); // warm-up
    const bare: number[] = [];
    const table: number[] = [];
    const cpuPerFlow: number[] = [];
    const ratios: number[] = [];
    let logged = 0;
    let lost = 0;
    for (let r = 0; r < rounds; r++) {
      bare.push(await clientRun());
      const rd = reader();
      await firstLine(rd);
      table.push(await clientRun());
      const done = firstLine(rd);
      rd.kill('SIGTERM');
      const st = JSON.parse(await done) as { flows: number; lost: number; cpuUs: number };
      logged += st.flows;
      lost += st.lost;
      cpuPerFlow.push(st.cpuUs / Math.max(1, st.flows));
      ratios.push(table.at(-1)! / bare.at(-1)!);
      process.stderr.write(`  round ${r + 1}/${rounds}: bare ${(conns / bare.at(-1)! * 1000).toFixed(0)} conn/s, table ${(conns / table.at(-1)! * 1000).toFixed(0)} conn/s, reader saw ${st.flows} flows (lost ${st.lost}), ${(st.cpuUs / Math.max(1, st.flows)).toFixed(1)} µs reader CPU per flow\n`);
    }
    const med = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s[s.length >> 1]!; };
    const bMs = med(bare);
    const tMs = med(table);
    console.log(`newflows: ${conns} TCP connections (connect + close) per round, ${rounds} rounds, median round`);
    console.log('| | connections/s | µs per connection |');
    console.log('|---|---|---|');
    console.log(`| no table | ${(conns / bMs * 1000).toFixed(0)} | ${(bMs * 1000 / conns).toFixed(1)} |`);
    console.log(`| new-flows table + NFLOG reader | ${(conns / tMs * 1000).toFixed(0)} | ${(tMs * 1000 / conns).toFixed(1)} |`);
    console.log(`time per connection with / without the table: ${med(ratios).toFixed(2)} (median of the ${rounds} paired rounds; ${ratios.map((r) => r.toFixed(2)).join(' ')}); from the median rounds: ${((tMs - bMs) * 1000 / conns).toFixed(1)} µs extra per connection; reader CPU per flow: ${med(cpuPerFlow).toFixed(1)} µs; flows logged ${logged} of ${rounds * conns}, lost ${lost}`);
  } finally {
    server.kill('SIGKILL');
    down();
  }
}

await main();
