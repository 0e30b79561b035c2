// Seeded fuzz of the text parsers reached from outside that no other fuzz test
// covers: TTLs, TSIG key files, HBA parameter files, JSON inventories,
// resolv.conf, the daemon's and the resolver's config files, the answer the
// dnsUpdate publisher reads a prerequisite from, `zone update --if-record`. (Zone check and CSV
// inventories: dns-codec.test.ts; the record's text forms: test/record/fuzz.test.ts.)
// The property of each: a value, or the module's typed error with one of its
// codes; never anything else.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { ProtocolError, UsageError } from '../../shim/errors.ts';
import { rrsetFromAnswer } from '../../zone-tools/update.ts';
import { updatePrerequisite } from '../../zone-tools/commands-dns.ts';
import { DnsFormatError, encodeMessage, FLAG_AA, FLAG_QR, RrClass, type ResourceRecord } from '../../zone-tools/dns-message.ts';
import { parseTtl } from '../../zone-tools/master-file.ts';
import { parseTsigKeyFile } from '../../zone-tools/tsig-key.ts';
import { parseHbaParams } from '../../shim/wire/hba-params.ts';
import { parseInventory } from '../../zone-tools/inventory.ts';
import { systemServer } from '../../zone-tools/commands-dns.ts';
import { parseConfigText } from '../../shim/daemon/config.ts';
import { loadConfigFile, upstreamsFromResolvConf } from '../../resolver/config.ts';
import { tempDir } from './zonefile.ts';
import { fuzzParams } from '../helpers/rng.ts';

/** Run `f`; it may return anything or throw UsageError with one of `codes`. */
function usageOnly(f: () => unknown, codes: readonly string[]): void {
  try { f(); } catch (e) {
    assert.ok(e instanceof UsageError, `${(e as Error)?.name}: ${(e as Error)?.message}`);
    assert.ok(codes.includes(e.code), `code ${e.code}: ${e.message}`);
  }
}

/** Strings made of `pieces` (the tokens a format is made of, so inputs get past the first check). */
const textOf = (pieces: readonly string[], maxLength = 40): fc.Arbitrary<string> =>
  fc.array(fc.constantFrom(...pieces), { maxLength }).map((p) => p.join(''));

/** `base` with a few characters replaced, inserted or removed. */
const mutated = (base: string, alphabet: string): fc.Arbitrary<string> =>
  fc.array(fc.tuple(fc.nat(base.length), fc.nat(3), fc.constantFrom(...alphabet)), { minLength: 1, maxLength: 4 }).map((edits) => {
    let s = base;
    for (const [at, op, c] of edits) {
      const i = at % (s.length + 1);
      s = op === 0 ? s.slice(0, i) + c + s.slice(i + 1) : op === 1 ? s.slice(0, i) + c + s.slice(i) : s.slice(0, i) + s.slice(i + 1 + (at % 8));
    }
    return s;
  });

/**
 * The TTL regex parseTtl replaced: its language is the reference (short inputs
 * only: it is exponential), within RFC 2181 §8's range 0..2^31-1.
 */
function ttlReference(text: string): number | undefined {
  if (!/^(\d+[wdhmsWDHMS]?)+$/.test(text)) return undefined;
  const unit: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };
  let total = 0;
  for (const m of text.toLowerCase().matchAll(/(\d+)([wdhms]?)/g)) total += Number(m[1]) * (unit[m[2] || 's'] ?? 1);
  return total > 0x7fff_ffff ? undefined : total;
}

test('fuzz: parseTtl reads exactly the language of /^(\\d+[wdhmsWDHMS]?)+$/ (seeded)', (t) => {
  const chars = fc.constantFrom('0', '1', '7', '9', 'w', 'd', 'h', 'm', 's', 'W', 'D', 'H', 'M', 'S', 'x', ' ', '-', '.', '٣');
  fc.assert(fc.property(fc.string({ unit: chars, maxLength: 14 }), (s) => {
    assert.equal(parseTtl(s), ttlReference(s));
  }), fuzzParams(t, { seed: 15_001, numRuns: 20_000 }));
});

test('fuzz: TSIG key files give a key or ETSIG_KEY (seeded)', (t) => {
  const secret = Buffer.alloc(32, 0xfb).toString('base64'); // holds "+" and "/"
  const bind = `key "upd" {\n  algorithm hmac-sha256;\n  secret "${secret}";\n};\n`;
  const pieces = ['key', ' ', '"', 'upd', '{', '}', ';', '/*', '*/', '//', '#', '\n', 'algorithm ', 'hmac-sha256', 'secret ', `"${secret}"`, secret, ':', 'id: ', '- ', '\t', '[', ']', '='];
  fc.assert(fc.property(fc.oneof(textOf(pieces), mutated(bind, '"{};/*#\n :=ak')), fc.option(fc.constantFrom('upd', 'x')), (text, name) => {
    usageOnly(() => parseTsigKeyFile(text, 'fuzz', name ?? undefined), ['ETSIG_KEY']);
  }), fuzzParams(t, { seed: 15_002, numRuns: 5000 }));
});

test('fuzz: HBA parameter files give parameters or EHBA_PARAMS (seeded)', (t) => {
  const good = JSON.stringify({
    format: 'shim6-hba-params/1', sec: 1, publicKeyIncluded: false, publicKey: 'aabb',
    members: [{ prefix: '2001:db8:1::/64', address: '2001:db8:1::1', params: 'a0b1' }],
  });
  assert.equal(parseHbaParams(good, 'good').members.length, 1);
  fc.assert(fc.property(fc.oneof(mutated(good, '{}[]",:0aA x'), fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v) ?? '')), (text) => {
    usageOnly(() => parseHbaParams(text, 'fuzz'), ['EHBA_PARAMS']);
  }), fuzzParams(t, { seed: 15_003, numRuns: 5000 }));
});

test('fuzz: JSON inventories give rows or EINVENTORY (seeded)', (t) => {
  const key = fc.constantFrom('name', 'ulid', 'locators', 'ttl', 'txt', 'port', 'hba', 'x');
  const host = fc.dictionary(key, fc.oneof(fc.jsonValue({ maxDepth: 3 }), fc.constantFrom('2001:db8::1', 'a.example.', '2001:db8::1/1/2/broken')));
  const doc = fc.oneof(fc.array(host, { maxLength: 4 }), fc.record({ hosts: fc.array(host, { maxLength: 4 }) }), fc.jsonValue({ maxDepth: 4 }));
  fc.assert(fc.property(doc, (v) => {
    usageOnly(() => {
      const rows = parseInventory(JSON.stringify(v) ?? '', 'fuzz');
      for (const r of rows) assert.ok(typeof r.name === 'string' && r.locators.every((l) => typeof l === 'string'));
    }, ['EINVENTORY']);
  }), fuzzParams(t, { seed: 15_004, numRuns: 5000 }));
});

test('fuzz: resolv.conf gives addresses or the default, never an error (seeded)', (t: TestContext) => {
  const dir = tempDir(t, 'fuzz');
  const file = path.join(dir, 'resolv.conf');
  const pieces = ['nameserver', ' ', '\t', '\n', '\r', '#', ';', 'search example', '192.0.2.1', '2001:db8::53', 'fe80::1%eth0', '%', ':', 'x'];
  fc.assert(fc.property(textOf(pieces), (text) => {
    for (const a of upstreamsFromResolvConf(text, [])) assert.ok(a.port === 53 && a.host.length > 0);
    writeFileSync(file, text);
    assert.equal(typeof systemServer(file), 'string');
  }), fuzzParams(t, { seed: 15_005, numRuns: 1000 }));
});

const CONFIG_PIECES = [
  ': ', '\n', '  ', '- ', '[', ']', '{', '}', ', ', '"', "'", '#', '~', 'null', 'true', '-1', '0', '53', '1400', '99999', '1e3',
  '127.0.0.1', '127.0.0.1:5353', '[::1]:53', '::1', '2001:db8::1', '1.2.3', 'eth0', 'fast', 'rfc', 'debug', 'native', 'dgram',
];

test('fuzz: the daemon config gives a config or ECONFIG (seeded)', (t) => {
  const keys = ['listen', 'upstreams', 'recordType', 'txtFallback', 'peers', 'ulid', 'locators', 'address', 'priority', 'timers', 'profile',
    'sendTimeout', 'tun', 'name', 'mtu', 'port', 'udp', 'interfaces', 'log', 'level', 'format', 'hba'];
  fc.assert(fc.property(textOf([...CONFIG_PIECES, ...keys], 50), (text) => {
    usageOnly(() => parseConfigText(text, 'fuzz'), ['ECONFIG']);
  }), fuzzParams(t, { seed: 15_006, numRuns: 5000 }));
});

test('fuzz: the resolver config file gives a config or ECONFIG (seeded)', (t: TestContext) => {
  const dir = tempDir(t, 'fuzz');
  const file = path.join(dir, 'resolver.yaml');
  const keys = ['listen', 'upstreams', 'queryTimeoutMs', 'udp', 'workers', 'upstream', 'attemptTimeoutMs', 'cache', 'maxEntries',
    'capability', 'enabled', 'rrType', 'waitFraction', 'tcp', 'idleMs', 'control', 'socket', 'log', 'level'];
  fc.assert(fc.property(textOf([...CONFIG_PIECES, ...keys], 50), (text) => {
    writeFileSync(file, text);
    usageOnly(() => loadConfigFile(file), ['ECONFIG']);
  }), fuzzParams(t, { seed: 15_007, numRuns: 1000 }));
});

test('fuzz: the answer a prerequisite is read from gives the RRset of our name and type, as a set, or a typed error (seeded)', (t) => {
  const NAME = 'h.example.';
  const TYPE = 65300;
  const rr = fc.record({
    name: fc.constantFrom(NAME, 'H.EXAMPLE.', 'x.h.example.', 'example.'),
    type: fc.constantFrom(TYPE, 28, 5, 16),
    class: fc.constantFrom(RrClass.IN, RrClass.IN, 3, RrClass.ANY),
    ttl: fc.nat(),
    rdata: fc.uint8Array({ maxLength: 24 }),
  });
  const message = fc.record({
    id: fc.constantFrom(7, 8),
    flags: fc.oneof(fc.constantFrom(FLAG_QR | FLAG_AA, FLAG_QR | FLAG_AA | 3, FLAG_QR, FLAG_QR | FLAG_AA | 2, FLAG_AA), fc.integer({ min: 0, max: 0xffff })),
    qname: fc.constantFrom(NAME, 'h.EXAMPLE.', 'other.'),
    qtype: fc.constantFrom(TYPE, 28),
    answers: fc.array(rr, { maxLength: 6 }),
    authorities: fc.array(rr, { maxLength: 2 }),
  });
  /** What the answer must give, written here from the rules (QR, QUERY, ID, question, rcode, AA, CNAME; a set), not from update.ts. */
  const model = (m: { id: number; flags: number; qname: string; qtype: number; answers: ResourceRecord[] }): string[] | string => {
    const rcode = m.flags & 0xf;
    if ((m.flags & FLAG_QR) === 0 || ((m.flags >> 11) & 0xf) !== 0 || m.id !== 7 || m.qname.toLowerCase() !== NAME || m.qtype !== TYPE) return 'EDNS_ANSWER';
    if (rcode !== 0 && rcode !== 3) return 'rcode';
    if ((m.flags & FLAG_AA) === 0) return 'EDNS_NOTAUTH';
    const here = m.answers.filter((r) => r.name.toLowerCase() === NAME);
    if (here.some((r) => r.type === 5)) return 'EDNS_CNAME';
    return [...new Set(here.filter((r) => r.type === TYPE && r.class === RrClass.IN).map((r) => Buffer.from(r.rdata).toString('hex')))].sort();
  };
  fc.assert(fc.property(message, fc.array(fc.tuple(fc.nat(), fc.nat(255)), { maxLength: 3 }), fc.nat(), (m, flips, cut) => {
    const bytes = encodeMessage({ id: m.id, flags: m.flags, questions: [{ name: m.qname, type: m.qtype, class: RrClass.IN }], answers: m.answers, authorities: m.authorities, additionals: [] });
    const damaged = flips.length > 0 || cut % 4 === 0;
    const b = cut % 4 === 0 ? bytes.slice(0, cut % (bytes.length + 1)) : bytes.slice();
    for (const [at, v] of flips) if (b.length > 0) b[at % b.length] = v;
    let got: string[] | string;
    try {
      got = rrsetFromAnswer(b, 7, NAME, TYPE).map((r) => Buffer.from(r).toString('hex'));
    } catch (e) {
      if (e instanceof DnsFormatError) { assert.ok(damaged, `a whole message is never malformed: ${e.message}`); return; }
      assert.ok(e instanceof ProtocolError, `${(e as Error)?.name}: ${(e as Error)?.message}`);
      assert.match(e.code, /^EDNS_[A-Z0-9_]+$/);
      got = e.rcode !== undefined && e.code === `EDNS_${e.rcode}` ? 'rcode' : e.code;
    }
    if (!damaged) assert.deepEqual(got, model(m));
    else if (Array.isArray(got)) assert.deepEqual(got, [...new Set(got)].sort(), 'always a set, in octet order');
  }), fuzzParams(t, { seed: 15_008, numRuns: 5000 }));
});

test('fuzz: zone update --if-record gives RDATA or EINVALID (seeded)', (t) => {
  const good = 'v1 hba ulid=2001:db8:1::1 loc=2001:db8:1::1/prio=10/weight=1 loc=2001:db8:2::1/prio=20/weight=1/flags=transient port=5533';
  const generic = '\\# 4 01000000';
  fc.assert(fc.property(fc.array(fc.oneof(mutated(good, ' =/:.v1loc'), mutated(generic, ' #\\0f9'), textOf(['\\#', ' ', '4', 'ab', 'v1', 'ulid=', '::1', 'loc='])), { maxLength: 3 }), fc.boolean(), (records, none) => {
    usageOnly(() => {
      const pre = updatePrerequisite({ ifRecord: records, ifNoRecord: none });
      if (pre !== undefined) assert.equal(pre.length, none ? 0 : records.length);
    }, ['EINVALID']);
  }), fuzzParams(t, { seed: 15_009, numRuns: 5000 }));
});
