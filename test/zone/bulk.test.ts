// `zone bulk`: 10,000 hosts in a few seconds, output accepted by named-checkzone,
// kzonecheck and zone check; bad rows are summarised with their line and do not
// stop the others; JSON inventories; the progress bar; --update against Knot.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { needs } from '../helpers/prereq.ts';
import { randomTsigSecret, startAuthDns } from '../helpers/authdns.ts';
import { kzonecheck, namedCheckzone, shim6Async, tempDir, writeZone, zoneHeader } from './zonefile.ts';
import { buildAll, bulkZoneText } from '../../zone-tools/bulk.ts';
import { parseInventory } from '../../zone-tools/inventory.ts';
import { checkZoneText } from '../../zone-tools/zone-check.ts';

const Z = 'bulk.test.';

function inventoryCsv(n: number): string {
  const rows = ['name,ulid,locators,ttl,txt'];
  for (let i = 0; i < n; i++) {
    const a = (i >> 8).toString(16);
    const b = (i & 0xff).toString(16);
    rows.push(`h${i}.${Z},2001:db8:1:${a}::${b},2001:db8:1:${a}::${b}/0/10;2001:db8:2:${a}::${b}/1/5,300,${i % 2 === 0 ? 'yes' : 'no'}`);
  }
  return rows.join('\n') + '\n';
}

test('bulk over 10,000 hosts: the output passes named-checkzone, kzonecheck and zone check', async (t) => {
  if (!needs(t, { commands: ['named-checkzone', 'kzonecheck'] })) return;
  const dir = tempDir(t);
  const inv = writeZone(dir, 'hosts.csv', inventoryCsv(10_000));

  // The work itself, timed in process (the CLI adds its start-up on top), after a small
  // warm-up so the figure is the work and not the JIT. Printed, not asserted: the rate is
  // `npm run bench -- zone`'s business (docs/benchmarks.md "Zone tools").
  buildAll(parseInventory(inventoryCsv(500), 'warm-up'), { baseDir: dir });
  const t0 = performance.now();
  const built = buildAll(parseInventory(readFileSync(inv, 'utf8'), inv), { baseDir: dir });
  const text = bulkZoneText(built.hosts);
  const ms = performance.now() - t0;
  assert.equal(built.failures.length, 0);
  assert.equal(built.hosts.length, 10_000);
  t.diagnostic(`bulk: 10,000 hosts built and written in ${ms.toFixed(0)} ms`);

  const r = await shim6Async(['zone', 'bulk', inv, '--out', path.join(dir, 'out.zone')]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr, '10000 hosts, no failures\n', 'no progress bar when stderr is not a terminal');
  const out = readFileSync(path.join(dir, 'out.zone'), 'utf8');
  assert.equal(out, text, 'the CLI writes what the library builds');
  const zone = writeZone(dir, 'bulk.zone', zoneHeader(Z) + out);
  assert.equal(namedCheckzone(Z, zone).status, 0, namedCheckzone(Z, zone).output);
  assert.equal(kzonecheck(Z, zone).status, 0, kzonecheck(Z, zone).output);
  const c = checkZoneText(readFileSync(zone, 'utf8'), zone);
  assert.deepEqual(c.problems, []);
  assert.equal(c.records, 10_000);
  assert.equal(c.txts, 5_000);
});

test('bulk: bad rows are summarised with their line, the others still come out; progress bar on request', async (t) => {
  const dir = tempDir(t);
  const inv = writeZone(dir, 'hosts.csv', [
    '# inventory with mistakes',
    'name,locators,ulid',
    'ok1.bulk.test.,2001:db8::1,2001:db8::1',
    'bad1.bulk.test.,2001:db8::zz,2001:db8::2',
    '"ok2.bulk.test.","2001:db8::3/1/1 2001:db8:1::3",2001:db8::3',
    'bad2.bulk.test.,,2001:db8::4',
  ].join('\n'));
  const r = await shim6Async(['zone', 'bulk', inv, '--progress']);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /building \[#{30}\] 4\/4\n/);
  assert.match(r.stderr, /4 hosts, 2 failed:\n  line 4 bad1\.bulk\.test\.: locators: invalid value "2001:db8::zz"[^\n]*\n  line 6 bad2\.bulk\.test\.: locators: [^\n]*at least one locator/);
  assert.equal(r.stdout.match(/IN TYPE65300/g)?.length, 2);
  assert.match(r.stdout, /ok2\.bulk\.test\. 3600 IN AAAA 2001:db8:1::3/);
});

test('bulk: JSON inventory, HBA parameters per host', async (t) => {
  const dir = tempDir(t);
  const params = path.join(dir, 'h.json');
  const h = await shim6Async(['zone', 'hba', '--prefix', '2001:db8:5::/64', '--prefix', '2001:db8:6::/64', '--sec', '0', '--out', params]);
  assert.equal(h.status, 0, h.stderr);
  const inv = writeZone(dir, 'hosts.json', JSON.stringify([
    { name: 'j1.bulk.test', ulid: '2001:db8::1', locators: ['2001:db8::1/0/1', '2001:db8:1::1'], ttl: 60, txt: true },
    { name: 'j2.bulk.test', hba: 'h.json', locators: [] },
  ]));
  const r = await shim6Async(['zone', 'bulk', inv]);
  assert.equal(r.status, 0, r.stderr);
  const c = checkZoneText(zoneHeader(Z) + r.stdout, 'out');
  assert.deepEqual(c.problems, []);
  assert.equal(c.records, 2);
  assert.match(r.stdout, /j2\.bulk\.test\. shim6 capability: v1 hba ulid=2001:db8:5:0:/);
});

test('bulk --update: one signed update per host against Knot', async (t) => {
  if (!needs(t, { root: true, commands: ['knotd', 'kdig'] })) return;
  const dir = tempDir(t);
  const secret = randomTsigSecret();
  const dns = await startAuthDns({ server: 'knot', zones: [{ name: Z, text: zoneHeader(Z) }], tsig: { name: 'bk.', secret }, allowUpdate: true });
  t.after(() => dns.stop());
  const key = writeZone(dir, 'bk.key', `key "bk." { algorithm hmac-sha256; secret "${secret}"; };\n`);
  const inv = writeZone(dir, 'hosts.csv', inventoryCsv(20) + 'outside.example.,2001:db8::9,2001:db8::9\n');
  const r = await shim6Async(['zone', 'bulk', inv, '--update', '--server', `127.0.0.1:${dns.port}`, '--zone', Z, '--key', key, '--concurrency', '4']);
  assert.equal(r.status, 1, 'the host outside the zone fails');
  assert.match(r.stderr, /21 hosts, 1 failed:\n  line 22 outside\.example\.: --name: invalid value "outside\.example\.": not inside zone bulk\.test\./);
  for (const i of [0, 7, 19]) {
    const out = spawnSync('kdig', ['@127.0.0.1', '-p', String(dns.port), `h${i}.${Z}`, 'AAAA', '+short', '+timeout=2'], { encoding: 'utf8' });
    assert.equal(String(out.stdout).trim().split('\n').length, 2, `h${i}: ${out.stdout}`);
  }
});

test('bulk: a host listed twice is refused (exit 2) naming both rows, CSV and JSON', async (t) => {
  const dir = tempDir(t);
  const csv = writeZone(dir, 'dup.csv', `name,ulid,locators\n# web hosts\nweb1.${Z},2001:db8::1,2001:db8::1\nweb2.${Z},2001:db8::2,2001:db8::2\nWEB1.${Z.slice(0, -1)},2001:db8::3,2001:db8::3\n`);
  const json = writeZone(dir, 'dup.json', JSON.stringify([{ name: 'a.bulk.test', ulid: '2001:db8::1', locators: ['2001:db8::1'] }, { name: 'a.bulk.test.', ulid: '2001:db8::2', locators: ['2001:db8::2'] }]));
  const [c, j] = await Promise.all([shim6Async(['zone', 'bulk', csv]), shim6Async(['zone', 'bulk', json])]);
  assert.equal(c.status, 2, c.stderr);
  assert.match(c.stderr, /^shim6: error EINVENTORY: .*dup\.csv: line 5: host "WEB1\.bulk\.test" is listed twice \(first at line 3\); one row per host\n$/);
  assert.equal(c.stdout, '', 'nothing printed');
  assert.equal(j.status, 2, j.stderr);
  assert.match(j.stderr, /entry 1: host "a\.bulk\.test\." is listed twice \(first at entry 0\)/);
});

test('bulk: the flags of --update without it, and --out with it, are refused (exit 2, naming them), nothing written: they were ignored', async (t) => {
  const dir = tempDir(t);
  const csv = writeZone(dir, 'hosts.csv', `name,ulid,locators\nweb1.${Z},2001:db8::1,2001:db8::1\n`);
  const key = writeZone(dir, 'tsig.key', `bulk-key:${randomTsigSecret()}\n`);
  const out = path.join(dir, 'out.zone');
  const [noUpdate, concurrency, withOut] = await Promise.all([
    // Meant to publish, but --update forgotten: zone lines on stdout, exit 0, nothing published.
    shim6Async(['zone', 'bulk', csv, '--server', '127.0.0.1:9', '--zone', Z, '--key', key]),
    shim6Async(['zone', 'bulk', csv, '--concurrency', '8']),
    // An update writes no zone lines: --out would be left unwritten.
    shim6Async(['zone', 'bulk', csv, '--update', '--out', out, '--server', '127.0.0.1:9', '--zone', Z, '--key', key, '--timeout', '1']),
  ]);
  assert.equal(noUpdate.status, 2, noUpdate.stderr);
  assert.equal(noUpdate.stdout, '', 'no zone lines');
  assert.match(noUpdate.stderr, /^shim6: error EINVALID: zone bulk: --server, --zone, --key go with --update, which is missing/);
  assert.equal(concurrency.status, 2, concurrency.stderr);
  assert.match(concurrency.stderr, /^shim6: error EINVALID: zone bulk: --concurrency goes with --update, which is missing/);
  assert.equal(withOut.status, 2, withOut.stderr);
  assert.match(withOut.stderr, /^shim6: error EINVALID: zone bulk --update: --out goes without --update only/);
  assert.throws(() => readFileSync(out), /ENOENT/);
});

test('bulk: a bad row names its column (ulid, locators, ttl, port), not a flag bulk does not take (--ulid … or --from-host)', async (t) => {
  const dir = tempDir(t);
  const csv = writeZone(dir, 'rows.csv', [
    'name,ulid,locators,ttl,port',
    `a.${Z},,,,`,
    `b.${Z},2001:db8::1,,,`,
    `c.${Z},2001:db8::1,2001:db8::1/300,,`,
    `d.${Z},fe80::1,2001:db8::1,,`,
    `e.${Z},2001:db8::1,2001:db8::1,1h,`,
    `f.${Z},2001:db8::1,2001:db8::1,,0`,
  ].join('\n') + '\n');
  const r = await shim6Async(['zone', 'bulk', csv]);
  assert.equal(r.status, 1, r.stderr);
  const lines = r.stderr.split('\n');
  const line = (n: number): string => lines.find((l) => l.includes(`line ${n} `)) ?? '';
  assert.match(line(2), /a\.bulk\.test\.: ulid: a ULID is required \(or an hba column\)$/);
  assert.match(line(3), /b\.bulk\.test\.: locators: at least one locator is required$/);
  assert.match(line(4), /locators: invalid value "2001:db8::1\/300": priority must be 0\.\.255$/);
  assert.match(line(5), /ulid: invalid value "fe80::1": fe80::1 is link-local .*; a ULID must be a global address$/);
  assert.match(line(6), /ttl: invalid value "1h": TTL must be 0\.\.2147483647 seconds$/);
  assert.match(line(7), /port: invalid value "0": port must be 1\.\.65535$/);
  assert.doesNotMatch(r.stderr, /--(ulid|locator|ttl|port|from-host)/);
});
