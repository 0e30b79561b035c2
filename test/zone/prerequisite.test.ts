// RFC 2136 §2.4 prerequisites on the capability RRset, against real Knot and
// BIND: the reordering that left a stale set in DNS (a paused server took two
// queued updates in the wrong order, the older one last) made deterministic by
// sending the two updates ourselves, newer first. Without a prerequisite the
// stale update lands over the newer one (the bug); with the prerequisite it is
// refused (NXRRSET, signed), and DNS keeps the newer set. "RRset does not
// exist" (§2.4.3) is refused with YXRRSET once the record is there. readRrset
// reads what a prerequisite names. `zone update --if-record/--if-no-record`
// send them from the command line. The message form and the reading of answers
// are checked without a server too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { needs } from '../helpers/prereq.ts';
import { randomTsigSecret, startAuthDns, type AuthDnsKind } from '../helpers/authdns.ts';
import { shim6Async, tempDir, writeZone, zoneHeader } from './zonefile.ts';
import { buildHostRecord } from '../../zone-tools/record-input.ts';
import { hostZoneLines } from '../../zone-tools/zone-lines.ts';
import { buildUpdate, readRrset, rrsetFromAnswer, sendUpdate, UpdateRefused } from '../../zone-tools/update.ts';
import { parseTsigKeyFile } from '../../zone-tools/tsig-key.ts';
import { encodeCapabilityRecord, formatCapabilityRecord, toGenericRdata } from '../../shim/wire/capability-record.ts';
import { decodeMessage, encodeMessage, FLAG_AA, FLAG_QR, RrClass, RrType, type DnsMessage } from '../../zone-tools/dns-message.ts';
import { updatePrerequisite } from '../../zone-tools/commands-dns.ts';
import { ProtocolError, UsageError } from '../../shim/errors.ts';

const Z = 'pre.test.';
const NAME = 'h.pre.test.';
const P = '2001:db8:1::a';
const Q = '2001:db8:2::a';
const T1 = '2001:db8:2::71';
const T2 = '2001:db8:2::72';
const host = (name: string, locators: string[]) => buildHostRecord({ name, ulid: P, locators, ttl: 60 });
const V0 = host(NAME, [P, Q]);
const V1 = host(NAME, [P, Q, T1]);
const V2 = host(NAME, [P, Q, T1, T2]);
const rdata = (h: ReturnType<typeof host>): Uint8Array => encodeCapabilityRecord(h.record);

function kdig(port: number, args: string[]): string[] {
  const r = spawnSync('kdig', ['@127.0.0.1', '-p', String(port), ...args, '+short', '+timeout=10', '+retry=1'], { encoding: 'utf8', timeout: 60_000 });
  return String(r.stdout).trim().split('\n').filter((l) => l !== '').sort();
}

for (const kind of ['knot', 'bind'] as AuthDnsKind[]) {
  test(`prerequisites against ${kind}: a stale update sent after a newer one is refused (NXRRSET), where without one it lands over it`, async (t) => {
    if (!needs(t, { root: true, commands: [kind === 'knot' ? 'knotd' : 'named', 'kdig'] })) return;
    const secret = randomTsigSecret();
    const other = 'o.pre.test.';
    const dns = await startAuthDns({
      server: kind, tsig: { name: 'pre-key.', secret }, allowUpdate: true,
      zones: [{ name: Z, text: zoneHeader(Z) + hostZoneLines(V0).join('\n') + '\n' + hostZoneLines(host(other, [P, Q])).join('\n') + '\n' }],
    });
    t.after(() => dns.stop());
    const server = { host: '127.0.0.1', port: dns.port };
    const key = parseTsigKeyFile(`pre-key:${secret}`, 'inline');
    assert.deepEqual(await readRrset(server, NAME, V0.rrType), [rdata(V0)], 'readRrset gives the record the zone file has');
    assert.deepEqual(await readRrset(server, 'nothing.pre.test.', V0.rrType), [], 'NXDOMAIN: no RRset');
    assert.deepEqual(await readRrset(server, 'ns.pre.test.', V0.rrType), [], 'NODATA: no RRset');

    // The bug, as it was: two updates built on the same state, the older applied last, wins.
    const o0 = host(other, [P, Q]);
    const o1 = host(other, [P, Q, T1]);
    const o2 = host(other, [P, Q, T1, T2]);
    assert.deepEqual(await sendUpdate(server, Z, o2, key), { rcode: 0, rcodeName: 'NOERROR', verified: true });
    assert.deepEqual(await sendUpdate(server, Z, o1, key), { rcode: 0, rcodeName: 'NOERROR', verified: true });
    assert.deepEqual(kdig(dns.port, [other, 'AAAA']), [P, Q, T1].sort(), 'without a prerequisite the stale update lands over the newer one');
    assert.deepEqual(await readRrset(server, other, o0.rrType), [rdata(o1)]);

    // The fix: both carry "the RRset is V0" (what the sender believed then); the newer goes first.
    const res = await sendUpdate(server, Z, V2, key, { prerequisite: [rdata(V0)] });
    assert.equal(res.rcodeName, 'NOERROR');
    await assert.rejects(sendUpdate(server, Z, V1, key, { prerequisite: [rdata(V0)] }), (e: unknown) => {
      assert.ok(e instanceof UpdateRefused, `a signed refusal: ${String(e)}`);
      assert.equal(e.code, 'EDNS_NXRRSET');
      assert.equal(e.rcode, 'NXRRSET');
      assert.match(e.message, /prerequisite failed: the TYPE65300 RRset of h\.pre\.test\. is not the one the update expected/);
      return true;
    });
    assert.deepEqual(kdig(dns.port, [NAME, 'AAAA']), [P, Q, T1, T2].sort(), 'the AAAA RRset keeps the newer set');
    assert.deepEqual(await readRrset(server, NAME, V0.rrType), [rdata(V2)], 'and so does the capability record');
    // A prerequisite naming what the server holds applies.
    await sendUpdate(server, Z, V1, key, { prerequisite: [rdata(V2)], tcp: true });
    assert.deepEqual(kdig(dns.port, [NAME, 'AAAA']), [P, Q, T1].sort());

    // §2.4.3 "RRset does not exist": the first of two creations applies, the second is refused.
    const fresh = 'new.pre.test.';
    await sendUpdate(server, Z, host(fresh, [P, T2]), key, { prerequisite: [] });
    await assert.rejects(sendUpdate(server, Z, host(fresh, [P, T1]), key, { prerequisite: [] }), (e: unknown) => {
      assert.ok(e instanceof UpdateRefused, String(e));
      assert.equal(e.code, 'EDNS_YXRRSET');
      assert.match(e.message, /prerequisite failed: new\.pre\.test\. already has a TYPE65300 RRset; the update expected none/);
      return true;
    });
    assert.deepEqual(kdig(dns.port, [fresh, 'AAAA']), [P, T2].sort());
    // "The RRset is X" where there is none: NXRRSET.
    await assert.rejects(sendUpdate(server, Z, host('none.pre.test.', [P]), key, { prerequisite: [rdata(V0)] }), (e: unknown) => e instanceof UpdateRefused && e.code === 'EDNS_NXRRSET');
    // A prerequisite RRset of two records (someone else added one) must match both.
    const two = [rdata(V1), rdata(V0)];
    await sendUpdate(server, Z, V0, key, { prerequisite: [rdata(V1)] });
    await assert.rejects(sendUpdate(server, Z, V2, key, { prerequisite: two }), (e: unknown) => e instanceof UpdateRefused && e.code === 'EDNS_NXRRSET', 'a superset is not the RRset');
    assert.deepEqual(await readRrset(server, NAME, V0.rrType), [rdata(V0)]);
  });
}

test('the prerequisite section: §2.4.2 every RR of the set, zone class, TTL 0; §2.4.3 one RR, class NONE, TTL 0, no RDATA; none by default', () => {
  const m = (pre?: Uint8Array[]) => decodeMessage(encodeMessage(buildUpdate(Z, V1, 7, true, pre)));
  assert.deepEqual(m().answers, []);
  assert.deepEqual(m([]).answers.map((r) => [r.name, r.type, r.class, r.ttl, r.rdata.length]), [[NAME, 65300, RrClass.NONE, 0, 0]]);
  const two = m([rdata(V2), rdata(V0), rdata(V2)]).answers;
  assert.deepEqual(two.map((r) => [r.name, r.type, r.class, r.ttl]), [[NAME, 65300, RrClass.IN, 0], [NAME, 65300, RrClass.IN, 0]], 'a set: the duplicate goes');
  assert.deepEqual(new Set(two.map((r) => Buffer.from(r.rdata).toString('hex'))), new Set([rdata(V0), rdata(V2)].map((r) => Buffer.from(r).toString('hex'))));
  assert.deepEqual(m([rdata(V0)]).authorities, m().authorities, 'the updates themselves do not change');
});

test('reading the RRset from an answer: only the answer to our question, authoritative, NOERROR or NXDOMAIN; CNAME refused', () => {
  const q = { name: NAME, type: 65300, class: RrClass.IN };
  const rr = (rd: Uint8Array, over: Partial<{ name: string; type: number; class: number }> = {}) => ({ name: NAME, type: 65300, class: RrClass.IN, ttl: 60, rdata: rd, ...over });
  const answer = (over: Partial<DnsMessage> = {}) => encodeMessage({ id: 9, flags: FLAG_QR | FLAG_AA, questions: [q], answers: [], authorities: [], additionals: [], ...over });
  assert.deepEqual(rrsetFromAnswer(answer(), 9, NAME, 65300), []);
  assert.deepEqual(rrsetFromAnswer(answer({ flags: FLAG_QR | FLAG_AA | 3 }), 9, NAME, 65300), [], 'NXDOMAIN');
  assert.deepEqual(rrsetFromAnswer(answer({ answers: [rr(rdata(V0)), rr(rdata(V0)), rr(rdata(V1), { name: 'H.PRE.TEST.' }), rr(Uint8Array.of(1), { type: 28 }), rr(Uint8Array.of(2), { name: 'x.pre.test.' })] }), 9, NAME, 65300),
    [rdata(V0), rdata(V1)].sort((a, b) => Buffer.compare(a, b)), 'our name (any case) and type only, as a set');
  const refused = (bytes: Uint8Array, code: string) => assert.throws(() => rrsetFromAnswer(bytes, 9, NAME, 65300), (e: unknown) => e instanceof ProtocolError && e.code === code, code);
  refused(answer({ id: 10 }), 'EDNS_ANSWER');
  refused(answer({ flags: FLAG_AA }), 'EDNS_ANSWER');
  refused(answer({ flags: FLAG_QR | FLAG_AA | (5 << 11) }), 'EDNS_ANSWER');
  refused(answer({ questions: [{ ...q, type: 28 }] }), 'EDNS_ANSWER');
  refused(answer({ questions: [] }), 'EDNS_ANSWER');
  refused(answer({ flags: FLAG_QR }), 'EDNS_NOTAUTH');
  refused(answer({ flags: FLAG_QR | FLAG_AA | 2 }), 'EDNS_SERVFAIL');
  refused(answer({ flags: FLAG_QR | FLAG_AA | 5 }), 'EDNS_REFUSED');
  refused(answer({ answers: [rr(encodeMessage({ id: 0, flags: 0, questions: [], answers: [], authorities: [], additionals: [] }), { type: RrType.CNAME })] }), 'EDNS_CNAME');
});

test('zone update --if-record/--if-no-record: what they take; none by default', () => {
  assert.equal(updatePrerequisite({}), undefined);
  assert.deepEqual(updatePrerequisite({ ifNoRecord: true }), []);
  assert.deepEqual(updatePrerequisite({ ifRecord: [formatCapabilityRecord(V0.record), toGenericRdata(rdata(V1))] }), [rdata(V0), rdata(V1)]);
  for (const f of [{ ifRecord: ['v1 ulid=nonsense'] }, { ifRecord: ['\\# 3 00'] }, { ifRecord: [formatCapabilityRecord(V0.record)], ifNoRecord: true }]) {
    assert.throws(() => updatePrerequisite(f), (e: unknown) => e instanceof UsageError && e.code === 'EINVALID', JSON.stringify(f));
  }
});

for (const kind of ['knot', 'bind'] as AuthDnsKind[]) {
  test(`zone update --if-record/--if-no-record against ${kind}: applied while the record is the one named, else NXRRSET/YXRRSET and nothing changes`, async (t) => {
    if (!needs(t, { root: true, commands: [kind === 'knot' ? 'knotd' : 'named', 'kdig'] })) return;
    const secret = randomTsigSecret();
    const dns = await startAuthDns({ server: kind, tsig: { name: 'pre-key.', secret }, allowUpdate: true, zones: [{ name: Z, text: zoneHeader(Z) + hostZoneLines(V0).join('\n') + '\n' }] });
    t.after(() => dns.stop());
    const key = writeZone(tempDir(t), 'k.key', `pre-key:${secret}\n`);
    const base = ['zone', 'update', '--server', `127.0.0.1:${dns.port}`, '--zone', Z, '--key', key, '--name', NAME, '--ulid', P, '--ttl', '60'];
    const locs = (h: string[]) => h.flatMap((l) => ['--locator', l]);
    const noRecord = await shim6Async([...base, ...locs([P]), '--if-no-record']);
    assert.equal(noRecord.status, 1, noRecord.stderr);
    assert.match(noRecord.stderr, /^shim6: error EDNS_YXRRSET: update of h\.pre\.test\. refused by 127\.0\.0\.1:\d+: YXRRSET \(prerequisite failed: h\.pre\.test\. already has a TYPE65300 RRset; the update expected none\)/);
    const stale = await shim6Async([...base, ...locs([P]), '--if-record', formatCapabilityRecord(V1.record)]);
    assert.equal(stale.status, 1, stale.stderr);
    assert.match(stale.stderr, /^shim6: error EDNS_NXRRSET: .*NXRRSET \(prerequisite failed: the TYPE65300 RRset of h\.pre\.test\. is not the one the update expected\)/);
    assert.deepEqual(kdig(dns.port, [NAME, 'AAAA']), [P, Q].sort(), 'nothing changed');
    const ok = await shim6Async([...base, ...locs([P, T1]), '--if-record', formatCapabilityRecord(V0.record)]);
    assert.equal(ok.status, 0, ok.stderr);
    assert.deepEqual(kdig(dns.port, [NAME, 'AAAA']), [P, T1].sort());
    const generic = await shim6Async([...base, ...locs([P, Q]), '--if-record', toGenericRdata(rdata(host(NAME, [P, T1])))]);
    assert.equal(generic.status, 0, generic.stderr);
    const plain = await shim6Async([...base, ...locs([P])]);
    assert.equal(plain.status, 0, `no option: no prerequisite, as before: ${plain.stderr}`);
    assert.deepEqual(kdig(dns.port, [NAME, 'AAAA']), [P]);
  });
}
