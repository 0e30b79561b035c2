// The capability stage on its own (resolver/stages/capability.ts): no sockets, its lookups and the
// rest of the chain injected. Entries made in a turn are admitted to the LRU after it (admitFresh);
// until then lookups, status and flush must still see them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as turn } from 'node:timers/promises';
import { CapabilityStage, DEFAULT_CAPABILITY_OPTIONS, type CapEntry } from '../../resolver/stages/capability.ts';
import type { Answer, Request } from '../../resolver/chain.ts';
import type { CapabilitySink } from '../../resolver/capability-sink.ts';
import { UpstreamError, type QueryListener } from '../../resolver/upstream.ts';
import { buildQuery } from '../../resolver/answer-build.ts';
import { scanResponse } from '../../resolver/answer-scan.ts';
import { CLASS_IN, Flag, parseQuery, Rcode, RrType, textToNameKey } from '../../resolver/message.ts';
import { newCounters } from '../../resolver/counters.ts';
import { Logger } from '../../shim/log.ts';
import * as dnsPacket from 'dns-packet';
import { capRdataHex } from './harness.ts';
import { fetchTxt } from '../../resolver/capability-fetch.ts';
import type { Millis } from '../../shim/time.ts';

function setup() {
  const lookups: Array<{ nameKey: string; qtype: number; listener: QueryListener }> = [];
  const sink: CapabilitySink = { prime: () => {}, absent: () => {} };
  const never = (): Promise<Answer> => new Promise<Answer>(() => {}); // the address answers are not needed here
  const stage = new CapabilityStage(never, never, (nameKey, qtype, listener) => lookups.push({ nameKey, qtype, listener }), sink,
    newCounters(), new Logger({ level: 'error', sink: { write: () => {} } }), DEFAULT_CAPABILITY_OPTIONS, () => 1_000 as Millis, () => 1_000);
  const ask = (name: string, qtype: number = RrType.AAAA): void => {
    const query = buildQuery(1, textToNameKey(name), qtype, CLASS_IN, {});
    const q = parseQuery(query);
    const req: Request = { query, q, key: q.key, now: 1_000 as Millis, transport: 'udp' };
    void stage.serve(req, never);
  };
  return { stage, lookups, ask };
}

/** An NXDOMAIN answer to a lookup's TYPE65300 question (no SOA: the default negative TTL). */
function nxdomain(nameKey: string): { bytes: Uint8Array; scan: ReturnType<typeof scanResponse> } {
  const bytes = buildQuery(1, nameKey, 65300, CLASS_IN, {});
  bytes[2] = (Flag.QR | Flag.RD) >> 8;
  bytes[3] = Rcode.NXDOMAIN;
  return { bytes, scan: scanResponse(bytes) };
}

test('a name asked twice in one turn, and again after it, is looked up once', async () => {
  const { lookups, ask } = setup();
  ask('peer.example.');
  ask('peer.example.', RrType.A);
  assert.equal(lookups.length, 1, 'one TYPE65300 question for both questions of the turn');
  assert.equal(lookups[0]!.qtype, 65300);
  await turn(); // the turn's entries are admitted to the LRU
  ask('peer.example.');
  ask('other.example.');
  assert.deepEqual(lookups.map((l) => l.nameKey), [textToNameKey('peer.example.'), textToNameKey('other.example.')]);
});

test('status shows an outcome that arrived before its entry was admitted; flush forgets entries of the turn too', async () => {
  const { stage, lookups, ask } = setup();
  ask('gone.example.');
  const r = nxdomain(lookups[0]!.nameKey);
  (lookups[0]!.listener as CapEntry).upstreamDone(undefined, { ...r, upstream: { host: '127.0.0.1', port: 53 }, tcp: false });
  assert.deepEqual(stage.status(1_000 as Millis).negative.map((e) => (e as { name: string }).name), ['gone.example.']);
  await turn();
  assert.equal(stage.status(1_000 as Millis).negative.length, 1, 'the same entry once admitted');

  ask('new.example.');
  assert.equal(stage.flush(), 2, 'the admitted entry and the one of this turn');
  await turn();
  assert.equal(stage.status(1_000 as Millis).negative.length, 0);
  ask('new.example.');
  assert.equal(lookups.length, 3, 'looked up again after the flush');
});

/** A record for `ulid` with 30,000 octets of parameters (an unknown key, 7). */
const BIG_RDATA = Buffer.from(capRdataHex('2001:db8:a::1', ['2001:db8:a::1'], { params: Uint8Array.from([0, 7, 0x75, 0x30, ...new Array<number>(30_000).fill(0xab)]) }), 'hex');

/** An answer to (`name`, `type`): `answers` as dns-packet writes them, NOERROR unless `rcode`. */
function answer(name: string, type: number, answers: dnsPacket.Answer[], rcode = 0): { bytes: Uint8Array; scan: ReturnType<typeof scanResponse> } {
  const bytes = dnsPacket.encode({ id: 1, type: 'response', flags: 0x8180 | rcode, questions: [{ name, type: (type === RrType.AAAA ? 'AAAA' : `UNKNOWN_${type}`) as 'AAAA' }], answers });
  return { bytes, scan: scanResponse(bytes) };
}
const cname = (name: string, data: string): dnsPacket.Answer => ({ name, type: 'CNAME', ttl: 300, data });
const aaaa = (name: string): dnsPacket.Answer => ({ name, type: 'AAAA', ttl: 300, data: '2001:db8:a::1' });
const cap = (name: string): dnsPacket.Answer => ({ name, type: 'UNKNOWN_65300', ttl: 300, data: BIG_RDATA } as unknown as dnsPacket.Answer);

/** Octets of records the stage's entries hold (their outcome's records and what status shows). */
function heldOctets(stage: CapabilityStage): number[] {
  const s = stage as unknown as { fresh: Map<string, CapEntry>; entries: { entries(): Iterable<[string, CapEntry]> } };
  return [...s.fresh.values(), ...[...s.entries.entries()].map(([, e]) => e)].map((e) =>
    (e.result?.kind === 'found' ? e.result.records.reduce((n, r) => n + r.length, 0) : 0) + (e.shown?.length ?? 0));
}

test('a record with 30 KB of parameters is kept by no entry once its lookups are through: not for a CNAME alias, nor when the address lookup failed', async () => {
  const lookups: Array<{ nameKey: string; listener: QueryListener }> = [];
  const primes: string[] = [];
  const sink: CapabilitySink = { prime: (_n, _r, _t, nameKey) => { primes.push(nameKey); }, absent: () => {} };
  const stage = new CapabilityStage(() => new Promise<Answer>(() => {}), () => new Promise<Answer>(() => {}), (nameKey, _qtype, listener) => lookups.push({ nameKey, listener }), sink,
    newCounters(), new Logger({ level: 'error', sink: { write: () => {} } }), DEFAULT_CAPABILITY_OPTIONS, () => 1_000 as Millis, () => 1_000);
  const up = { upstream: { host: '127.0.0.1', port: 53 }, tcp: false };
  const ask = (name: string, address: { bytes: Uint8Array; scan: ReturnType<typeof scanResponse> }, rcode = 0): Promise<Answer> => {
    const query = buildQuery(1, textToNameKey(name), RrType.AAAA, CLASS_IN, {});
    const q = parseQuery(query);
    const ans: Answer = { bytes: address.bytes, optOff: -1, source: 'upstream', owned: false, rcode, scan: address.scan, ...(rcode ? { failed: true } : {}) };
    return Promise.resolve(stage.serve({ query, q, key: q.key, now: 1_000 as Millis, transport: 'udp' }, () => Promise.resolve(ans)));
  };
  const reply = (i: number, r: { bytes: Uint8Array; scan: ReturnType<typeof scanResponse> }): void => { (lookups[i]!.listener as CapEntry).upstreamDone(undefined, { ...r, ...up }); };

  // alias.example. CNAME peer.example.: the alias's own TYPE65300 lookup follows the chain to the peer's record.
  const done = ask('alias.example.', answer('alias.example.', RrType.AAAA, [cname('alias.example.', 'peer.example.'), aaaa('peer.example.')]));
  reply(0, answer('alias.example.', 65300, [cname('alias.example.', 'peer.example.'), cap('peer.example.')]));
  await turn();
  assert.deepEqual(lookups.map((l) => l.nameKey), [textToNameKey('alias.example.'), textToNameKey('peer.example.')], 'the final name\'s record is fetched too');
  reply(1, answer('peer.example.', 65300, [cap('peer.example.')]));
  await done;
  await turn();
  assert.deepEqual(primes, [textToNameKey('peer.example.')]);
  // Once settled an entry keeps one record's header and locators (at most 660 octets), whatever its parameters.
  for (const n of heldOctets(stage)) assert.ok(n <= 660, `an entry holds ${n} octets of records`);

  // The address lookup fails (SERVFAIL) after the record came: nothing will settle that record, so it is not kept.
  const failed = ask('gone.example.', answer('gone.example.', RrType.AAAA, [], Rcode.SERVFAIL), Rcode.SERVFAIL);
  reply(2, answer('gone.example.', 65300, [cap('gone.example.')]));
  await failed;
  await turn();
  for (const n of heldOctets(stage)) assert.ok(n <= 660, `an entry holds ${n} octets of records`);
});

test('an alias is followed for its CNAME\'s TTL, not a fixed minute: a retargeted CNAME\'s new peer is looked up once that TTL is over', async () => {
  const lookups: Array<{ nameKey: string; listener: QueryListener }> = [];
  const stage = new CapabilityStage(() => new Promise<Answer>(() => {}), () => new Promise<Answer>(() => {}), (nameKey, _qtype, listener) => lookups.push({ nameKey, listener }),
    { prime: () => {}, absent: () => {} }, newCounters(), new Logger({ level: 'error', sink: { write: () => {} } }), DEFAULT_CAPABILITY_OPTIONS, () => 1_000 as Millis, () => 1_000);
  const up = { upstream: { host: '127.0.0.1', port: 53 }, tcp: false };
  const ask = (now: number, address: { bytes: Uint8Array; scan: ReturnType<typeof scanResponse> }): Promise<Answer> => {
    const query = buildQuery(1, textToNameKey('alias.example.'), RrType.AAAA, CLASS_IN, {});
    const q = parseQuery(query);
    const ans: Answer = { bytes: address.bytes, optOff: -1, source: 'upstream', owned: false, rcode: 0, scan: address.scan };
    return Promise.resolve(stage.serve({ query, q, key: q.key, now: now as Millis, transport: 'udp' }, () => Promise.resolve(ans)));
  };
  const short = (data: string): dnsPacket.Answer => ({ name: 'alias.example.', type: 'CNAME', ttl: 5, data });
  const first = ask(1_000, answer('alias.example.', RrType.AAAA, [short('peer.example.'), aaaa('peer.example.')]));
  (lookups[0]!.listener as CapEntry).upstreamDone(undefined, { ...answer('alias.example.', 65300, [short('peer.example.'), cap('peer.example.')]), ...up });
  await turn();
  (lookups[1]!.listener as CapEntry).upstreamDone(undefined, { ...answer('peer.example.', 65300, [cap('peer.example.')]), ...up });
  await first;
  await turn();
  assert.equal(lookups.length, 2);
  // Within the CNAME's 5 s the alias leads to the settled peer: nothing is looked up.
  await ask(4_000, answer('alias.example.', RrType.AAAA, [short('peer.example.'), aaaa('peer.example.')]));
  assert.equal(lookups.length, 2, 'the alias is followed while its TTL lasts');
  // After it, the alias's own record is looked up again: the chain may lead elsewhere now.
  const later = ask(7_000, answer('alias.example.', RrType.AAAA, [short('other.example.'), aaaa('other.example.')]));
  await turn();
  assert.equal(lookups[2]?.nameKey, textToNameKey('alias.example.'), 'the alias went with its CNAME\'s TTL');
  // Their outcomes (failed lookups here) let the held answer go.
  for (const l of lookups.slice(2)) (l.listener as CapEntry).upstreamDone(new UpstreamError('ETIMEOUT', 'test'), undefined);
  await turn();
  for (const l of lookups.slice(3)) (l.listener as CapEntry).upstreamDone(new UpstreamError('ETIMEOUT', 'test'), undefined);
  await later;
});

test('the TXT fallback asks nothing for a name whose _shim6 label would make it longer than 255 octets: no such name exists', async () => {
  const asked: string[] = [];
  const handler = (req: Request): Answer => {
    asked.push(req.q.nameKey);
    return { bytes: new Uint8Array(12), optOff: -1, source: 'local', owned: true, rcode: Rcode.SERVFAIL, failed: true };
  };
  // 4 labels of 61 octets: 249 octets in wire form; `_shim6.` adds 7.
  const long = textToNameKey(Array.from({ length: 4 }, (_, i) => String(i).repeat(61)).join('.') + '.');
  assert.equal(long.length, 249);
  const r = await fetchTxt(handler, () => 1_000 as Millis, long, { ...DEFAULT_CAPABILITY_OPTIONS, txtFallback: true }, 60);
  assert.deepEqual(asked, [], 'no question with a name of 256 octets goes upstream');
  assert.deepEqual(r, { kind: 'absent', ttl: 60, source: 'txt-nodata' });
});
