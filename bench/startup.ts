// `npm run bench -- startup [runs]`: how long the `shim6` command takes to
// answer, as a ratio to `node -e 0` measured in the same rounds: the built
// command (bin/shim6.js on dist/) for --version, status against a running
// `shim6 resolver`, and zone record; and, for comparison, the same from the
// TypeScript sources through tsx (how the command ran before it was built).
// The commands take turns within each round, so load on the shared machine
// falls on all of them alike. Prints figures; asserts nothing.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BUILT = path.join(ROOT, 'bin/shim6.js');
const SOURCES = path.join(ROOT, 'test/helpers/shim6-sources.mjs');
const runs = Number(process.argv[2] ?? 30);

const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-startup-'));
const sock = path.join(dir, 'control.sock');
const zoneRecord = ['zone', 'record', '--name', 'host.example.org.', '--ulid', '2001:db8:1::10', '--locator', '2001:db8:1::10/0/10'];

const cases: Array<{ name: string; args: string[] }> = [
  { name: 'node -e 0', args: ['-e', '0'] },
  { name: 'shim6 --version', args: [BUILT, '--version'] },
  { name: 'shim6 status', args: [BUILT, 'status', '--socket', sock] },
  { name: 'shim6 zone record', args: [BUILT, ...zoneRecord] },
  { name: 'shim6 --version (sources, tsx)', args: [SOURCES, '--version'] },
  { name: 'shim6 status (sources, tsx)', args: [SOURCES, 'status', '--socket', sock] },
];

function once(args: string[]): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`node ${args.join(' ')} failed (exit ${r.status}): ${String(r.stderr)}`);
  return ms;
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

const resolver = spawn(process.execPath, [BUILT, 'resolver', '--listen', '127.0.0.1:0', '--upstream', '127.0.0.1:9', '--no-engine', '--socket', sock], { stdio: ['ignore', 'ignore', 'pipe'] });
try {
  await new Promise<void>((resolve, reject) => {
    let err = '';
    resolver.stderr.on('data', (d: Buffer) => { err += d.toString(); if (err.includes('resolver ready')) resolve(); });
    resolver.once('exit', (code) => reject(new Error(`shim6 resolver exited (${code}): ${err}`)));
  });
  console.log(`CLI start-up, ${runs} rounds (each command once per round, in turn); node ${process.version}; load ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  for (const c of cases) once(c.args); // warm the page cache
  const times = cases.map(() => [] as number[]);
  for (let i = 0; i < runs; i++) {
    for (let k = 0; k < cases.length; k++) {
      const j = (i + k) % cases.length;
      times[j]!.push(once(cases[j]!.args));
    }
  }
  const sorted = times.map((t) => [...t].sort((a, b) => a - b));
  const base = quantile(sorted[0]!, 0.5);
  console.log('| command | median ms | p10 | p90 | median / node -e 0 |');
  console.log('|---|---|---|---|---|');
  cases.forEach((c, i) => {
    const s = sorted[i]!;
    console.log(`| \`${c.name}\` | ${quantile(s, 0.5).toFixed(0)} | ${quantile(s, 0.1).toFixed(0)} | ${quantile(s, 0.9).toFixed(0)} | ${(quantile(s, 0.5) / base).toFixed(2)} |`);
  });
  console.log(`load ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`);
} finally {
  resolver.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
}
