// `npm run bench -- zone [hosts] [updates]`: the zone tools at scale, with peers
// in the same run. (1) building the zone lines of N hosts; (2) checking that zone:
// `zone check` in process vs named-checkzone and kzonecheck (spawned, so their
// start-up is included; ours is measured without the CLI's); (3) N signed RFC 2136
// updates to a real Knot: our sendUpdate one at a time vs `nsupdate` sending the same
// number of updates from one script. Prints figures and ratios; asserts nothing.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildAll, bulkZoneText } from '../zone-tools/bulk.ts';
import { parseInventory } from '../zone-tools/inventory.ts';
import { checkZoneText } from '../zone-tools/zone-check.ts';
import { sendUpdate } from '../zone-tools/update.ts';
import { buildHostRecord } from '../zone-tools/record-input.ts';
import { randomTsigSecret, startAuthDns } from '../test/helpers/authdns.ts';

const hosts = Number(process.argv[2] ?? 10_000);
const updates = Number(process.argv[3] ?? 200);
const Z = 'bench.test.';
const header = `$ORIGIN ${Z}\n$TTL 300\n@ IN SOA ns hm 1 3600 600 86400 300\n@ IN NS ns\nns IN AAAA 2001:db8::53\n`;

function inventory(n: number): string {
  const rows = ['name,ulid,locators,txt'];
  for (let i = 0; i < n; i++) {
    const a = (i >> 8).toString(16);
    const b = (i & 0xff).toString(16);
    rows.push(`h${i}.${Z},2001:db8:1:${a}::${b},2001:db8:1:${a}::${b}/0/10;2001:db8:2:${a}::${b}/1/5,yes`);
  }
  return rows.join('\n');
}

function timed<T>(f: () => T): [T, number] {
  const t0 = performance.now();
  const v = f();
  return [v, performance.now() - t0];
}

function spawnMs(cmd: string, args: string[]): number {
  const t0 = performance.now();
  const r = spawnSync(cmd, args, { stdio: 'ignore' });
  if (r.status !== 0) throw new Error(`${cmd} failed (${r.status})`);
  return performance.now() - t0;
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-zone-'));
try {
  console.log(`zone tools, ${hosts} hosts (2 locators, TXT fallback each); ${updates} updates; load ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  const [text, buildMs] = timed(() => {
    const built = buildAll(parseInventory(inventory(hosts), 'bench'), { baseDir: dir });
    return bulkZoneText(built.hosts);
  });
  const file = path.join(dir, 'bench.zone');
  writeFileSync(file, header + text);
  console.log(`build:  ${buildMs.toFixed(0)} ms  (${(hosts / buildMs * 1000).toFixed(0)} hosts/s, ${(Buffer.byteLength(text) / 1e6).toFixed(1)} MB)`);

  const best = (f: () => number): number => Math.min(f(), f(), f());
  const ours = best(() => timed(() => checkZoneText(readFileSync(file, 'utf8'), file))[1]);
  const named = best(() => spawnMs('named-checkzone', ['-q', Z, file]));
  const knot = best(() => spawnMs('kzonecheck', ['-o', Z, file]));
  console.log('check (best of 3)      ms    × named-checkzone');
  for (const [name, ms] of [['zone check (in process)', ours], ['named-checkzone', named], ['kzonecheck', knot]] as const) {
    console.log(`  ${name.padEnd(24)} ${ms.toFixed(0).padStart(6)}   ${(ms / named).toFixed(2)}`);
  }

  const secret = randomTsigSecret();
  const dns = await startAuthDns({ server: 'knot', zones: [{ name: Z, text: header }], tsig: { name: 'b.', secret }, allowUpdate: true });
  try {
    const key = { name: 'b.', algorithm: 'hmac-sha256' as const, secret: new Uint8Array(Buffer.from(secret, 'base64')) };
    const t0 = performance.now();
    for (let i = 0; i < updates; i++) {
      const h = buildHostRecord({ name: `u${i}.${Z}`, ulid: `2001:db8:1::${i.toString(16)}`, locators: [`2001:db8:1::${i.toString(16)}`, `2001:db8:2::${i.toString(16)}/1`] });
      await sendUpdate({ host: '127.0.0.1', port: dns.port }, Z, h, key);
    }
    const oursUpd = performance.now() - t0;
    const script = [`server 127.0.0.1 ${dns.port}`, `zone ${Z}`];
    for (let i = 0; i < updates; i++) {
      const n = `n${i}.${Z}`;
      script.push(`update delete ${n} AAAA`, `update add ${n} 3600 AAAA 2001:db8:1::${i.toString(16)}`, `update add ${n} 3600 AAAA 2001:db8:2::${i.toString(16)}`, 'send');
    }
    const s0 = performance.now();
    const r = spawnSync('nsupdate', ['-y', `hmac-sha256:b.:${secret}`], { input: script.join('\n') + '\n', stdio: ['pipe', 'ignore', 'ignore'] });
    const nsMs = performance.now() - s0;
    if (r.status !== 0) throw new Error('nsupdate failed');
    console.log('updates to Knot         ms    updates/s  × nsupdate');
    console.log(`  ${'shim6 sendUpdate'.padEnd(20)} ${oursUpd.toFixed(0).padStart(6)} ${(updates / oursUpd * 1000).toFixed(0).padStart(10)}  ${(oursUpd / nsMs).toFixed(2)}`);
    console.log(`  ${'nsupdate (one script)'.padEnd(20)} ${nsMs.toFixed(0).padStart(6)} ${(updates / nsMs * 1000).toFixed(0).padStart(10)}  1.00`);
  } finally {
    await dns.stop();
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
