// RFC 2136 §2.4 prerequisites on the capability RRset, against real Knot and
// BIND: the reordering that left a stale set in DNS (a paused server took two
// queued updates in the wrong order, the older one last) made deterministic by
// sending the two updates ourselves, newer first. Without a prerequisite the
// stale update lands over the newer one (the bug); with the prerequisite it is
// refused (NXRRSET, signed), and DNS keeps the newer set. "RRset does not
// exist" (§2.4.3) is refused with YXRRSET once the record is there. readRrset
// reads what a prerequisite names.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { needs } from '../helpers/prereq.ts';
import { randomTsigSecret, startAuthDns, type AuthDnsKind } from '../helpers/authdns.ts';
import { zoneHeader } from './zonefile.ts';
import { buildHostRecord } from '../../zone-tools/record-input.ts';
import { hostZoneLines } from '../../zone-tools/zone-lines.ts';
import { readRrset, sendUpdate, UpdateRefused } from '../../zone-tools/update.ts';
import { parseTsigKeyFile } from '../../zone-tools/tsig-key.ts';
import { encodeCapabilityRecord } from '../../shim/wire/capability-record.ts';

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
