// Seeded fuzzing of the two byte paths that face the network: the query parser
// (clients) and the upstream-answer path (scan, chain, TTL, own OPT, cache render). Only
// WireError may come out; everything that parses must keep its invariants.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as dnsPacket from 'dns-packet';
import { WireError } from '../../shim/wire/errors.ts';
import { ms } from '../../shim/time.ts';
import { parseQuery, questionKey } from '../../resolver/message.ts';
import { cacheTtl, chainEnd, followCnames, questionNameIs, readNameKey, rrsetAt, scanResponse } from '../../resolver/answer-scan.ts';
import { AnswerCache, DEFAULT_CACHE_OPTIONS } from '../../resolver/answer-cache.ts';
import { aaaaAddresses, capabilityOutcome, type CapResult } from '../../resolver/capability-fetch.ts';
import { decodeCapabilityRecord, type RecordOctets } from '../../shim/wire/capability-record.ts';
import { formatIpv6Octets } from '../../shim/wire/ipv6.ts';
import { errorResponse, finishForClient, ownAnswer } from '../../resolver/answer-build.ts';
import { SimRng, fuzzRuns, fuzzSeed } from '../helpers/rng.ts';

/** Seeded uniform u32s (test/helpers/rng.ts). */
function rng(seed: number): () => number {
  const r = new SimRng(seed);
  return () => r.u32();
}

function mutate(base: Uint8Array, r: () => number): Uint8Array {
  const kind = r() % 6;
  if (kind === 0) return Uint8Array.from({ length: r() % 80 }, () => r() & 0xff); // pure noise
  let b = Uint8Array.from(base);
  const n = 1 + (r() % 4);
  for (let i = 0; i < n; i++) {
    const op = r() % 5;
    const at = b.length ? r() % b.length : 0;
    if (op === 0 && b.length) b[at] = r() & 0xff;
    else if (op === 1 && b.length) b[at] = b[at]! ^ (1 << (r() % 8));
    else if (op === 2) b = b.subarray(0, at);
    else if (op === 3) { const ins = Uint8Array.from({ length: 1 + (r() % 6) }, () => r() & 0xff); b = Uint8Array.from([...b.subarray(0, at), ...ins, ...b.subarray(at)]); }
    else if (b.length > 2) b[at] = [0xc0, 0x3f, 0x40, 0x00, 0xff][r() % 5]!; // pointer and label-type edges
  }
  return b;
}

const onlyWireErrors = (fn: () => void, input: Uint8Array): void => {
  try {
    fn();
  } catch (err) {
    if (!(err instanceof WireError)) assert.fail(`non-WireError ${String(err)} for ${Buffer.from(input).toString('hex')}`);
    assert.equal(typeof err.code, 'string');
  }
};

test('query parser: 100,000 seeded inputs, only WireError, invariants hold', (t) => {
  const seeds = [
    dnsPacket.encode({ id: 7, type: 'query', flags: dnsPacket.RECURSION_DESIRED, questions: [{ name: 'www.Example.org', type: 'AAAA' }] }),
    dnsPacket.encode({ id: 9, type: 'query', questions: [{ name: 'a.b', type: 'A' }], additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 4096, flags: dnsPacket.DNSSEC_OK, options: [{ code: 10, data: Buffer.alloc(8) }] } as unknown as dnsPacket.Answer] }),
  ];
  const r = rng(fuzzSeed(t, 0x5eed));
  let parsed = 0;
  for (let i = 0; i < fuzzRuns(100_000); i++) {
    const input = mutate(seeds[i % seeds.length]!, r);
    onlyWireErrors(() => {
      const q = parseQuery(input);
      parsed++;
      assert.ok(q.questionEnd <= input.length && q.questionEnd >= 17);
      assert.ok(q.nameKey.length <= 255 && q.nameKey.endsWith('\x00'));
      assert.ok(q.udpSize >= 512);
      // The key parseQuery builds from raw bytes is the one internal lookups build from fields.
      assert.equal(q.key, questionKey(q.nameKey, q.qtype, q.qclass, q.dnssecOk, q.checkingDisabled));
      // The error answer for any parsed query is well-formed.
      scanResponse(errorResponse(input, q, 1));
    }, input);
  }
  assert.ok(parsed > 1000, `some mutants still parse (${parsed})`);
});

/** A response with name compression and a CNAME chain, SOA, OPT, as a real server writes it. */
function compressedResponse(): Uint8Array {
  const name = (labels: string[]): number[] => [...labels.flatMap((l) => [l.length, ...Buffer.from(l)]), 0];
  const hdr = [0x12, 0x34, 0x81, 0x80, 0, 1, 0, 3, 0, 1, 0, 1];
  const q = [...name(['www', 'example', 'org']), 0, 28, 0, 1];
  // www.example.org CNAME host.(ptr to example.org at 16)
  const rr1 = [0xc0, 12, 0, 5, 0, 1, 0, 0, 1, 0x2c, 0, 7, 4, ...Buffer.from('host'), 0xc0, 16];
  const hostOff = 12 + q.length + 12;
  const rr2 = [0xc0, hostOff, 0, 28, 0, 1, 0, 0, 0, 60, 0, 16, 0x20, 1, 0x0d, 0xb8, ...new Array(11).fill(0), 1];
  const rr3 = [0xc0, hostOff, 0xff, 0x14, 0, 1, 0, 0, 0, 60, 0, 4, 1, 0, 1, 0];
  const soa = [0xc0, 16, 0, 6, 0, 1, 0, 0, 0x0e, 0x10, 0, 24, 0xc0, hostOff, 0xc0, hostOff, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 60];
  const opt = [0, 0, 41, 4, 0xd0, 0, 0, 0x80, 0, 0, 0];
  return Uint8Array.from([...hdr, ...q, ...rr1, ...rr2, ...rr3, ...soa, ...opt]);
}

test('upstream-answer path: 100,000 seeded inputs through scan, chain, TTL, own OPT, cache and client fix-ups', (t) => {
  const seedAnswer = compressedResponse();
  const s0 = scanResponse(seedAnswer);
  assert.equal(followCnames(seedAnswer, s0, s0.qnameKey), '\x04host\x07example\x03org\x00');
  assert.deepEqual(aaaaAddresses(seedAnswer, s0, s0.qnameKey).map(formatIpv6Octets), ['2001:db8::1']);
  const query = dnsPacket.encode({ id: 1, type: 'query', questions: [{ name: 'www.example.org', type: 'AAAA' }] });
  const q = parseQuery(query);
  const cache = new AnswerCache({ ...DEFAULT_CACHE_OPTIONS, maxEntries: 64 });
  const r = rng(fuzzSeed(t, 0xfeed));
  let scanned = 0;
  for (let i = 0; i < fuzzRuns(100_000); i++) {
    const input = mutate(seedAnswer, r);
    onlyWireErrors(() => {
      const s = scanResponse(input);
      scanned++;
      // The pool's match on bytes agrees with the key string, and scanning without the key changes nothing else.
      if (s.questionEnd > 12) {
        assert.equal(questionNameIs(input, s, s.qnameKey), true);
        assert.equal(questionNameIs(input, s, s.qnameKey.slice(0, -1) + 'x'), false);
      }
      assert.deepEqual({ ...scanResponse(input, false), qnameKey: s.qnameKey }, s);
      for (const rr of s.records) {
        assert.ok(rr.rdOff + rr.rdLen <= input.length);
        readNameKey(input, rr.ownerOff);
      }
      const final = followCnames(input, s, s.qnameKey);
      if (final !== undefined) rrsetAt(input, s, final, 28);
      chainEnd(input, s, s.qnameKey, 28);
      aaaaAddresses(input, s, s.qnameKey);
      cacheTtl(input, s);
      // The forward stage's copy with the stub's own OPT: it scans again, to the same records.
      const own = ownAnswer(input, s, (i & 1) === 1);
      const again = scanResponse(own.bytes);
      assert.deepEqual(again.records.map((x) => x.ownerOff), s.records.map((x) => x.ownerOff));
      assert.equal(again.optIndex, again.records.length - 1);
      assert.equal(s.records[s.optIndex]!.ownerOff, own.optOff);
      const e = cache.store(`k${i % 64}`, own.bytes, s, own.optOff, ms(0));
      if (e) {
        const out = cache.render(e, ms(5000));
        assert.equal(out.length, own.bytes.length);
        finishForClient(out, own.optOff, query, q);
      }
    }, input);
  }
  assert.ok(scanned > 1000, `some mutants still scan (${scanned})`);
});

/** Answers to a TYPE65300 question for www.example.org, as a server writes them (compressed owners, OPT last). */
function capabilityAnswers(): Uint8Array[] {
  const name = (labels: string[]): number[] => [...labels.flatMap((l) => [l.length, ...Buffer.from(l)]), 0];
  const u16 = (v: number): number[] => [v >> 8, v & 0xff];
  const rr = (owner: number[], type: number, ttl: number, rdata: number[]): number[] => [...owner, ...u16(type), 0, 1, 0, 0, ...u16(ttl), ...u16(rdata.length), ...rdata];
  const addr = (last: number): number[] => [0x20, 1, 0x0d, 0xb8, ...new Array<number>(11).fill(0), last];
  const locator = (last: number): number[] => [0, 1, 2, 0, ...addr(last)];
  // Two locators and a port; one with an hba-digest and an unknown parameter; one of version 2 (ignored).
  const rdataA = [1, 0x80, 2, 0, ...addr(1), ...locator(1), ...locator(2), ...u16(2), ...u16(2), ...u16(5534)];
  const rdataB = [1, 0x40, 1, 0, ...addr(1), ...locator(3), ...u16(1), ...u16(33), 1, ...new Array<number>(32).fill(7), ...u16(9), ...u16(3), 1, 2, 3];
  const rdataV2 = [2, 0, 1, 0, ...addr(1)];
  const soa = [...name(['ns']), 0xc0, 16, ...name(['admin']), 0xc0, 16, 0, 0, 0, 1, 0, 0, 0x0e, 0x10, 0, 0, 2, 0x58, 0, 1, 0x51, 0x80, 0, 0, 0x0e, 0x10];
  const opt = [0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0];
  const question = [...name(['www', 'example', 'org']), ...u16(65300), 0, 1];
  const header = (rcode: number, an: number, ns: number): number[] => [0x12, 0x34, 0x81, 0x80 | rcode, 0, 1, ...u16(an), ...u16(ns), 0, 1];
  const ptr = (o: number): number[] => [0xc0, o];
  const hostOff = 12 + question.length + 12; // the CNAME's RDATA: host + pointer to example.org
  return [
    Uint8Array.from([...header(0, 3, 0), ...question, ...rr(ptr(12), 65300, 300, rdataA), ...rr(ptr(12), 65300, 200, rdataB), ...rr(ptr(12), 65300, 100, rdataV2), ...opt]),
    Uint8Array.from([...header(0, 2, 1), ...question, ...rr(ptr(12), 5, 600, [4, ...Buffer.from('host'), 0xc0, 16]), ...rr(ptr(hostOff), 65300, 60, rdataB),
      ...rr(ptr(16), 6, 900, soa), ...opt]),
    Uint8Array.from([...header(0, 0, 1), ...question, ...rr(ptr(16), 6, 900, soa), ...opt]),
  ];
}

/**
 * What the capability lookup's RRset comes to by the existing parts, one by one: the RRset
 * (rrsetAt), then each RDATA copied out of the message and decoded alone; the outcome keeps the
 * octets of those that decode. Undefined when the answer holds no such RRset at the end of its chain.
 */
function rrsetOracle(bytes: Uint8Array, nameKey: string): CapResult | undefined {
  const scan = scanResponse(bytes, false);
  if (scan.rcode !== 0) return undefined;
  let rrs;
  try {
    const final = chainEnd(bytes, scan, nameKey, 65300);
    if (final === undefined) return undefined;
    rrs = rrsetAt(bytes, scan, final, 65300);
  } catch (err) {
    if (!(err instanceof WireError)) throw err;
    return undefined; // a broken name in the chain: the lookup's outcome is an error
  }
  if (rrs.length === 0) return undefined;
  const records: RecordOctets[] = [];
  const invalid: string[] = [];
  for (const rr of rrs) {
    try {
      const rdata = Uint8Array.prototype.slice.call(bytes, rr.rdOff, rr.rdOff + rr.rdLen);
      decodeCapabilityRecord(rdata);
      records.push(Buffer.from(rdata).toString('latin1') as RecordOctets);
    } catch (err) {
      if (!(err instanceof WireError)) throw err;
      invalid.push(err.code);
    }
  }
  const ttl = Math.min(...rrs.map((rr) => rr.ttl));
  return records.length > 0 ? { kind: 'found', records, invalid, ttl, source: 'dns' } : { kind: 'invalid', invalid, ttl, source: 'dns' };
}

test('capability answers: the outcome decoded in place equals the RRset decoded record by record, on 60,000 seeded mutants', (t) => {
  const seeds = capabilityAnswers();
  const kinds = seeds.map((b) => {
    const s = scanResponse(b);
    return capabilityOutcome(undefined, { bytes: b, scan: s, upstream: { host: '::1', port: 53 }, tcp: false }, s.qnameKey, { rrType: 65300, txtFallback: false, defaultNegativeTtl: 60 }).kind;
  });
  assert.deepEqual(kinds, ['found', 'found', 'absent']);
  const r = rng(fuzzSeed(t, 0xcab));
  const tally: Record<string, number> = {};
  for (let i = 0; i < fuzzRuns(60_000); i++) {
    // Whole answers mutated, and answers whose records' RDATA alone was mutated (the header still parses).
    const input = mutate(seeds[i % seeds.length]!, r);
    let scan;
    try {
      scan = scanResponse(input, i % 2 === 0); // the pool scans without the name's key; ownerIs then compares in place
    } catch (err) {
      assert.ok(err instanceof WireError);
      continue;
    }
    if (scan.questionEnd <= 12) continue;
    const nameKey = readNameKey(input, 12);
    const opts = { rrType: 65300, txtFallback: i % 3 === 0, defaultNegativeTtl: 60 };
    const out = capabilityOutcome(undefined, { bytes: input, scan, upstream: { host: '::1', port: 53 }, tcp: false }, nameKey, opts);
    tally[out.kind] = (tally[out.kind] ?? 0) + 1;
    const expected = rrsetOracle(input, nameKey);
    if (expected) assert.deepEqual(out, expected, Buffer.from(input).toString('hex'));
    else assert.ok(out.kind !== 'found' && out.kind !== 'invalid', `${out.kind} without an RRset: ${Buffer.from(input).toString('hex')}`);
  }
  t.diagnostic(JSON.stringify(tally));
  assert.ok((tally.found ?? 0) > 1000 && (tally.invalid ?? 0) > 100, JSON.stringify(tally));
});
