// A zone written by `zone record`, served by real Knot and BIND on loopback:
// kdig returns the capability RDATA byte for byte as written, and `zone show`
// decodes it (RR and TXT fallback), matches --expect, and fails on a mismatch.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { needs } from '../helpers/prereq.ts';
import { startAuthDns, type AuthDnsKind } from '../helpers/authdns.ts';
import { startUnbound } from '../helpers/unbound.ts';
import { shim6Async, zoneHeader } from './zonefile.ts';
import { buildHostRecord } from '../../zone-tools/record-input.ts';
import { hostZoneLines } from '../../zone-tools/zone-lines.ts';
import { encodeCapabilityRecord, formatCapabilityRecord } from '../../shim/wire/capability-record.ts';
import { fetchCapability } from '../../zone-tools/show.ts';

const Z = 'served.test.';

const A = buildHostRecord({ name: 'a.served.test.', ulid: '2001:db8:1::a', locators: ['2001:db8:1::a/0/10', '2001:db8:2::a/1/5/transient'], txt: true, port: 6000 });
// 32 locators: the answers exceed 512 octets, so the UDP answer is truncated and show retries over TCP.
const BIG = buildHostRecord({ name: 'big.served.test.', ulid: '2001:db8:1::1', locators: Array.from({ length: 32 }, (_, i) => `2001:db8:${i + 1}::1/${i}/${i}`), txt: true });
const T = buildHostRecord({ name: 't.served.test.', ulid: '2001:db8:1::7', locators: ['2001:db8:1::7', '2001:db8:3::7/2'], txt: true });
const U = buildHostRecord({ name: 'u.served.test.', ulid: '2001:db8:1::8', locators: ['2001:db8:1::8'] });

function zoneText(): string {
  // t publishes the TXT fallback only, as on a DNS host that refuses unknown types.
  const tLines = hostZoneLines(T).filter((l) => !l.includes('TYPE65300'));
  // u's record names a ULID that is not in its AAAA RRset: readers ignore it.
  const uLines = hostZoneLines(U).filter((l) => !l.includes(' AAAA ')).concat('u IN AAAA 2001:db8:9::9');
  // Aliases of a and t: a peer's stub follows the CNAME chain and reads the record at its end.
  return zoneHeader(Z) + [...hostZoneLines(A), ...hostZoneLines(BIG), ...tLines, ...uLines, 'www IN CNAME a', 'w2 IN CNAME www', 'tx IN CNAME t'].join('\n') + '\n';
}

function kdig(port: number, server: string, args: string[]): string {
  const r = spawnSync('kdig', [`@${server}`, '-p', String(port), ...args, '+timeout=10', '+retry=1'], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, String(r.stderr));
  return String(r.stdout).trim();
}

for (const kind of ['knot', 'bind'] as AuthDnsKind[]) {
  test(`served by ${kind}: kdig returns the RDATA byte-identical, zone show decodes it`, async (t) => {
    if (!needs(t, { root: true, commands: [kind === 'knot' ? 'knotd' : 'named', 'kdig'] })) return;
    const dns = await startAuthDns({ server: kind, zones: [{ name: Z, text: zoneText() }] });
    t.after(() => dns.stop());

    const written = Buffer.from(encodeCapabilityRecord(A.record)).toString('hex');
    for (const addr of dns.addresses) {
      const got = kdig(dns.port, addr, ['a.served.test.', 'TYPE65300', '+short']);
      const m = /^\\# (\d+) ([0-9A-Fa-f ]+)$/.exec(got);
      assert.ok(m, `kdig printed ${got}`);
      assert.equal(m[2]!.replace(/ /g, '').toLowerCase(), written, `${kind} over ${addr}`);
      assert.equal(Number(m[1]), written.length / 2);
    }

    // In process first (the same code the CLI runs), then the real CLI.
    const shown = await fetchCapability({ host: '127.0.0.1', port: dns.port }, 'a.served.test.', 65300, true);
    assert.equal(Buffer.from(shown.records[0]!.rdata).toString('hex'), written);
    assert.deepEqual(shown.aaaa.sort(), ['2001:db8:1::a', '2001:db8:2::a']);

    const big = await fetchCapability({ host: '::1', port: dns.port }, 'big.served.test.', 65300, true);
    assert.equal(Buffer.from(big.records[0]!.rdata).toString('hex'), Buffer.from(encodeCapabilityRecord(BIG.record)).toString('hex'));
    assert.equal(big.aaaa.length, 32);
    assert.equal(big.records[0]!.ulidInAaaa, true);

    const text = formatCapabilityRecord(A.record);
    const [ok, v6, txt, wrong, wrongUlid, none, ignored] = await Promise.all([
      shim6Async(['zone', 'show', 'a.served.test.', '--server', `127.0.0.1:${dns.port}`, '--expect', text]),
      shim6Async(['zone', 'show', 'a.served.test', '--server', `[::1]:${dns.port}`, '--expect-ulid', '2001:db8:1:0::a', '--expect-locator', '2001:db8:2::a', '--expect-locator', '2001:db8:1::a']),
      shim6Async(['zone', 'show', 't.served.test.', '--server', `127.0.0.1:${dns.port}`, '--expect', formatCapabilityRecord(T.record)]),
      shim6Async(['zone', 'show', 'a.served.test.', '--server', `127.0.0.1:${dns.port}`, '--expect', text.replace('prio=1', 'prio=2')]),
      shim6Async(['zone', 'show', 'a.served.test.', '--server', `127.0.0.1:${dns.port}`, '--expect-ulid', '2001:db8:1::b']),
      shim6Async(['zone', 'show', 'nobody.served.test.', '--server', `127.0.0.1:${dns.port}`]),
      shim6Async(['zone', 'show', 'u.served.test.', '--server', `127.0.0.1:${dns.port}`]),
    ]);
    assert.equal(ok.status, 0, ok.stderr);
    assert.equal(ok.stdout, `a.served.test. 3600 TYPE65300 ${text}\n`);
    assert.equal(v6.status, 0, v6.stderr);
    assert.equal(txt.status, 0, txt.stderr);
    assert.equal(txt.stdout, `_shim6.t.served.test. 3600 TXT ${formatCapabilityRecord(T.record)}\n`);
    assert.equal(wrong.status, 1);
    assert.match(wrong.stderr, /mismatch: record differs/);
    assert.equal(wrongUlid.status, 1);
    assert.match(wrongUlid.stderr, /ULID differs: expected 2001:db8:1::b, found 2001:db8:1::a/);
    assert.equal(none.status, 1);
    assert.match(none.stdout, /no capability record/);
    // A record every reader ignores is no usable record: exit 1 (it was 0, with the warning).
    assert.equal(ignored.status, 1, ignored.stderr);
    assert.match(ignored.stderr, /^warning: ULID 2001:db8:1::8 is not in the AAAA RRset of u\.served\.test\. \(readers ignore the record\)\n$/);
    await showsAliases(t, `127.0.0.1:${dns.port}`);
  });
}

/** `zone show`'s line for a record, with any TTL (a recursive resolver's cache counts it down). */
function line(owner: string, type: string, text: string): RegExp {
  return new RegExp(`^${owner.replace(/\./g, '\\.')} \\d+ ${type} ${text.replace(/[.+]/g, '\\$&')}\n$`);
}

/** `zone show` of an alias shows the record at the end of its CNAME chain, as a peer's stub reads it (it said "no capability record"). */
async function showsAliases(t: TestContext, server: string): Promise<void> {
  const [www, w2, tx] = await Promise.all([
    shim6Async(['zone', 'show', 'www.served.test.', '--server', server, '--expect', formatCapabilityRecord(A.record)]),
    shim6Async(['zone', 'show', 'w2.served.test.', '--server', server, '--json']),
    shim6Async(['zone', 'show', 'tx.served.test.', '--server', server, '--expect', formatCapabilityRecord(T.record)]),
  ]);
  assert.equal(www.status, 0, www.stdout + www.stderr);
  assert.match(www.stdout, line('a.served.test.', 'TYPE65300', formatCapabilityRecord(A.record)));
  assert.match(www.stderr, /^www\.served\.test\. is an alias \(CNAME\) of a\.served\.test\./);
  assert.equal(w2.status, 0, w2.stderr);
  const json = JSON.parse(w2.stdout) as { name: string; owner: string; aaaa: string[]; records: { text: string }[] };
  assert.equal(json.name, 'w2.served.test.');
  assert.equal(json.owner, 'a.served.test.');
  assert.deepEqual(json.aaaa.sort(), ['2001:db8:1::a', '2001:db8:2::a']);
  assert.equal(json.records[0]!.text, formatCapabilityRecord(A.record));
  // The TXT fallback is looked for at the end of the chain too (_shim6.t, not _shim6.tx).
  assert.equal(tx.status, 0, tx.stdout + tx.stderr);
  assert.match(tx.stdout, line('_shim6.t.served.test.', 'TXT', formatCapabilityRecord(T.record)));
  t.diagnostic('aliases shown at the end of their chains');
}

test('zone show asks a recursive resolver (the default: the nameserver of /etc/resolv.conf) for recursion', async (t) => {
  if (!needs(t, { root: true, commands: ['knotd', 'unbound', 'kdig'] })) return;
  const dns = await startAuthDns({ server: 'knot', zones: [{ name: Z, text: zoneText() }] });
  t.after(() => dns.stop());
  const rec = await startUnbound(dns.port, {
    // As the recursive resolver of /etc/resolv.conf would be: recursion for loopback clients, questions without RD refused.
    server: ['  local-zone: "test." nodefault'], // unbound answers test. itself (RFC 6761) unless told not to
    probe: Z,
  });
  t.after(() => rec.stop());
  // Nothing is in the resolver's cache: a question without RD is refused (systemd-resolved refuses it
  // too); before the fix zone show sent none, and said REFUSED.
  const [rr, txt] = await Promise.all([
    shim6Async(['zone', 'show', 'a.served.test.', '--server', `127.0.0.1:${rec.port}`, '--expect', formatCapabilityRecord(A.record)]),
    shim6Async(['zone', 'show', 't.served.test.', '--server', `127.0.0.1:${rec.port}`, '--expect', formatCapabilityRecord(T.record)]),
  ]);
  assert.equal(rr.status, 0, rr.stderr);
  assert.match(rr.stdout, line('a.served.test.', 'TYPE65300', formatCapabilityRecord(A.record)));
  assert.equal(txt.status, 0, txt.stderr);
  assert.match(txt.stdout, line('_shim6.t.served.test.', 'TXT', formatCapabilityRecord(T.record)));
  await showsAliases(t, `127.0.0.1:${rec.port}`);
});
