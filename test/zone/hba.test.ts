// `zone hba`: HBA and CGA-compatible HBA sets through the CLI, the parameters
// file, `zone hba verify`, and records built from a set (hba flag, cga flag,
// hba-digest of the ULID's own parameter structure).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { BIN } from '../helpers/cli.ts';
import { needs } from '../helpers/prereq.ts';
import path from 'node:path';
import { shim6Async, tempDir } from './zonefile.ts';
import { HBA_PARAMS_FORMAT, memberParams, parseHbaParams } from '../../shim/wire/hba-params.ts';
import { buildHostRecord } from '../../zone-tools/record-input.ts';
import { verifyCga } from '../../shim/wire/cga.ts';
import { checkHbaDigest } from '../../shim/wire/capability-record.ts';
import { UsageError } from '../../shim/errors.ts';
import { checkHbaMembers } from '../../shim/daemon/start-checks.ts';
import { loadCgaKey } from '../../shim/daemon/cga-identity.ts';

test('zone hba with an RSA key: CGA-compatible set, verify accepts members and refuses others; the record carries cga + hba-digest', async (t) => {
  const dir = tempDir(t);
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 1024 });
  const pem = path.join(dir, 'rsa.pem');
  writeFileSync(pem, privateKey.export({ type: 'pkcs8', format: 'pem' }));
  const out = path.join(dir, 'set.json');
  const other = path.join(dir, 'other.json');
  const [gen, gen2] = await Promise.all([
    shim6Async(['zone', 'hba', '--prefix', '2001:db8:a::/64', '--prefix', '2001:db8:b::', '--sec', '1', '--key', pem, '--out', out]),
    shim6Async(['zone', 'hba', '--prefix', '2001:db8:a::/64', '--sec', '0', '--out', other]),
  ]);
  assert.equal(gen.status, 0, gen.stderr);
  assert.equal(gen2.status, 0, gen2.stderr);
  const addrs = gen.stdout.trim().split('\n');
  assert.equal(addrs.length, 2);
  assert.match(addrs[0]!, /^2001:db8:a:0:/);
  assert.match(addrs[1]!, /^2001:db8:b:0:/);

  const p = parseHbaParams(readFileSync(out, 'utf8'), out);
  assert.equal(p.format, HBA_PARAMS_FORMAT);
  assert.equal(p.publicKeyIncluded, true);
  assert.equal(p.keyFile, pem);
  assert.deepEqual(p.members.map((m) => m.address), addrs);
  // Each member is also a plain CGA of its own parameters (RFC 5535 §5: CGA-compatible).
  for (const m of p.members) assert.ok(verifyCga(m.address, memberParams(m)), m.address);

  const otherAddr = parseHbaParams(readFileSync(other, 'utf8'), other).members[0]!.address;
  const [v1, v2, v3, v4] = await Promise.all([
    shim6Async(['zone', 'hba', 'verify', addrs[1]!, out]),
    shim6Async(['zone', 'hba', 'verify', otherAddr, out]),
    shim6Async(['zone', 'hba', 'verify', '2001:db8:c::1', out]),
    shim6Async(['zone', 'hba', 'verify', 'nonsense', out]),
  ]);
  assert.equal(v1.status, 0, v1.stdout + v1.stderr);
  assert.equal(v2.status, 1, 'same prefix, other set');
  assert.match(v2.stdout, /NOT in the HBA set .*\(hash1-mismatch\)/);
  assert.equal(v3.status, 1);
  assert.match(v3.stdout, /prefix-not-in-set/);
  assert.equal(v4.status, 2);
  assert.match(v4.stderr, /ADDR: invalid value "nonsense"/);

  const host = buildHostRecord({ name: 'm.example.', hba: p, ulid: addrs[1]!, locators: [`${addrs[0]}/3/4`] });
  assert.equal(host.record.hbaSet, true);
  assert.equal(host.record.cgaUlid, true);
  assert.equal(host.record.ulid, addrs[1]);
  assert.deepEqual(host.record.locators.map((l) => [l.address, l.priority, l.weight]), [[addrs[0], 3, 4], [addrs[1], 0, 0]]);
  // Any member's parameters check against the digest (the engine gets whichever the peer sends).
  for (const m of p.members) assert.equal(checkHbaDigest(host.record, memberParams(m)), 'match');
  assert.throws(() => buildHostRecord({ name: 'm.example.', hba: p, ulid: '2001:db8:a::1' }), (e: unknown) => e instanceof UsageError && e.field === '--ulid');
  assert.throws(() => buildHostRecord({ name: 'm.example.', hba: p, locators: ['2001:db8:a::1'] }), (e: unknown) => e instanceof UsageError && e.field === '--locator');
});

test('zone hba verify with zone hba\'s own flags (--sec, --key, --out, --prefix): EINVALID naming them, exit 2 (they were ignored)', async (t) => {
  const dir = tempDir(t);
  const out = path.join(dir, 'p.json');
  const made = await shim6Async(['zone', 'hba', '--prefix', '2001:db8:1::/64', '--sec', '0', '--out', out]);
  assert.equal(made.status, 0, made.stderr);
  const member = (JSON.parse(readFileSync(out, 'utf8')) as { members: Array<{ address: string }> }).members[0]!.address;
  const plain = await shim6Async(['zone', 'hba', 'verify', member, out]);
  assert.equal(plain.status, 0, plain.stderr);
  const r = await shim6Async(['zone', 'hba', 'verify', member, out, '--out', path.join(dir, 'q.json'), '--sec', '1']);
  assert.equal(r.status, 2, r.stdout + r.stderr);
  assert.match(r.stderr, /^shim6: error EINVALID: zone hba verify: --sec, --out are options of zone hba/);
});

test('parameters file: a damaged file is a usage error naming it', () => {
  for (const text of ['', '{}', '{"format":"shim6-hba-params/1","sec":9}', '[1]', `{"format":"${HBA_PARAMS_FORMAT}","sec":0,"publicKeyIncluded":false,"publicKey":"00","members":[{"prefix":"x","address":"nope","params":"00"}]}`]) {
    assert.throws(() => parseHbaParams(text, 'p.json'), (e: unknown) => e instanceof UsageError && e.code === 'EHBA_PARAMS' && e.message.startsWith('p.json: '), text);
  }
});

test('an --out that cannot be written (zone hba, zone bulk): one EOUTPUT line naming --out and the file, the errno once (exit 1)', async (t) => {
  const dir = tempDir(t);
  const missing = path.join(dir, 'no', 'x.json');
  const inv = path.join(dir, 'hosts.csv');
  writeFileSync(inv, 'name,locators,ulid\nh.example.,2001:db8::1,2001:db8::1\n');
  const [hba, bulk] = await Promise.all([
    shim6Async(['zone', 'hba', '--prefix', '2001:db8:1::/64', '--sec', '0', '--out', missing]),
    shim6Async(['zone', 'bulk', inv, '--out', missing]),
  ]);
  for (const r of [hba, bulk]) {
    assert.equal(r.status, 1, r.stderr);
    assert.equal(r.stderr, `shim6: error EOUTPUT: --out: cannot write ${JSON.stringify(missing)}: its directory does not exist (ENOENT); nothing written\n`);
  }
});

test('zone hba with a 4096-bit key and more prefixes than the daemon accepts: refused up front naming the bound (EPREFIX, exit 2, nothing written); the bound itself is what the daemon starts with', async (t) => {
  const dir = tempDir(t);
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 4096 });
  const pem = path.join(dir, 'rsa4096.pem');
  writeFileSync(pem, privateKey.export({ type: 'pkcs8', format: 'pem' }));
  const prefixFlags = (n: number): string[] => Array.from({ length: n }, (_, i) => ['--prefix', `2001:db8:${(0xa000 + i).toString(16)}::/64`]).flat();
  const over = path.join(dir, 'over.json');
  const at = path.join(dir, 'at.json');
  const [r96, r95] = await Promise.all([
    shim6Async(['zone', 'hba', ...prefixFlags(96), '--sec', '0', '--key', pem, '--out', over]),
    shim6Async(['zone', 'hba', ...prefixFlags(95), '--sec', '0', '--key', pem, '--out', at]),
  ]);
  // Before, 96 were written, and the daemon's start then refused them (EHBA_PARAMS).
  assert.equal(r96.status, 2, r96.stdout + r96.stderr);
  assert.match(r96.stderr, /^shim6: error EPREFIX: --prefix: an HBA set of 96 prefixes .*at most 95 prefixes with a 4096-bit key; nothing written/);
  assert.equal(existsSync(over), false, 'nothing written');
  assert.equal(r95.status, 0, r95.stderr);
  const set = parseHbaParams(readFileSync(at, 'utf8'), at);
  assert.equal(set.members.length, 95);
  // The daemon's own check (its start, --check-config) accepts what zone hba wrote.
  assert.doesNotThrow(() => checkHbaMembers(set, at, loadCgaKey(pem)));
});

// `zone hba --out` over an existing parameters file truncated it before writing: on a full disk the
// set that was there (its modifier: the only proof of the host's HBA addresses) was lost, and the
// error said "nothing written". Now the new file replaces the old one whole, or not at all.
test('zone hba --out over an existing set on a full file system: EOUTPUT, exit 1, and the set that was there is intact (no truncated file, no temp file left)', { timeout: 60_000 }, (t) => {
  if (!needs(t, { root: true, commands: ['unshare', 'mount', 'sh'] })) return;
  const dir = path.join(tempDir(t), 'full');
  mkdirSync(dir);
  const prefixes = Array.from({ length: 40 }, (_, i) => `--prefix 2001:db8:${(i + 1).toString(16)}::/64`).join(' ');
  // In a mount namespace of its own: a 12 KiB tmpfs, a first set written, the rest filled, a larger set over the first.
  const script = `mount -t tmpfs -o size=12k,mode=0755 tmpfs "$1"; cd "$1"
"$2" "$3" zone hba --prefix 2001:db8:1::/64 --sec 0 --out hba.json >/dev/null
cp hba.json before.json
dd if=/dev/zero of=fill bs=1k count=64 2>/dev/null || true
set +e; "$2" "$3" zone hba ${prefixes} --sec 0 --out hba.json >/dev/null; echo "status=$?"; set -e
cmp -s hba.json before.json && echo same; ls`;
  const r = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-ec', script, 'sh', dir, process.execPath, BIN], { encoding: 'utf8', timeout: 50_000 });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /^status=1$/m, r.stdout);
  assert.match(r.stderr, /^shim6: error EOUTPUT: --out: cannot write "hba\.json": .*\(ENOSPC\); nothing written$/m, r.stderr);
  assert.match(r.stdout, /^same$/m, `the set that was there is intact: ${r.stdout}`);
  assert.doesNotMatch(r.stdout, /\.tmp/, 'no temp file left');
});
