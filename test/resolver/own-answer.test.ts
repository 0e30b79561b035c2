// The answer's header and OPT are the stub's own (RFC 1035 §4.1.1, RFC 4035 §3.2.2, RFC 6891
// §6.1.1/§6.2.5/§7, RFC 8914): byte builders first, then through the running stub in front of
// an upstream whose flags and OPT are wrong for a recursive answer on purpose.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import * as dnsPacket from 'dns-packet';
import { finishForClient, ownAnswer, truncatedResponse } from '../../resolver/answer-build.ts';
import { cacheTtl, scanResponse } from '../../resolver/answer-scan.ts';
import { parseQuery } from '../../resolver/message.ts';
import { startStub, udpAsk } from './harness.ts';
import { waitFor } from '../helpers/wait.ts';
import { answerFor, startFakeUpstream, type Query } from './fake-upstream.ts';

const AA = 0x0400;
const TC = 0x0200;
const RD = 0x0100;
const RA = 0x0080;
const CD = 0x0010;
const EDE = 15;
const COOKIE = 10;
const noCap = { capability: { enabled: false } };

interface Opt { udpPayloadSize: number; extendedRcode: number; flags: number; options: Array<{ code: number; data: Buffer }> }
const optOf = (m: dnsPacket.Packet): Opt | undefined => m.additionals?.find((r) => r.type === 'OPT') as unknown as Opt | undefined;
const flagsOf = (raw: Uint8Array): number => (raw[2]! << 8) | raw[3]!;

/** An upstream OPT that must not reach a client: its own size, a cookie, an unknown option, and an EDE that may. */
const upstreamOpt = (extendedRcode = 0): dnsPacket.Answer => ({
  type: 'OPT', name: '.', udpPayloadSize: 4096, extendedRcode, flags: 0,
  options: [{ code: COOKIE, data: Buffer.alloc(16, 7) }, { code: EDE, data: Buffer.from([0, 3, ...Buffer.from('stale')]) }, { code: 65001, data: Buffer.from([1, 2]) }],
} as unknown as dnsPacket.Answer);

const query = (name: string, opts: { edns?: number; do?: boolean; cd?: boolean } = {}): Buffer => dnsPacket.encode({
  id: 0x1234, type: 'query', flags: RD | (opts.cd ? CD : 0), questions: [{ name, type: 'AAAA' }],
  ...(opts.edns ? { additionals: [{ type: 'OPT', name: '.', udpPayloadSize: opts.edns, flags: opts.do ? dnsPacket.DNSSEC_OK : 0 } as unknown as dnsPacket.Answer] } : {}),
});

const fakeQuery = (name: string): Query => ({ id: 0x4321, name, type: 'AAAA', raw: query(name), from: undefined });

test('ownAnswer: the stub\'s OPT replaces the upstream\'s (size, options but EDE, records after it), RA set, AA cleared, in one copy', () => {
  const glue: dnsPacket.Answer = { type: 'A', name: 'ns.own.test', ttl: 60, data: '192.0.2.53' };
  const after: dnsPacket.Answer = { type: 'A', name: 'after.own.test', ttl: 60, data: '192.0.2.54' };
  const src = answerFor(fakeQuery('own.test'), { flags: AA | RD, additionals: [glue, upstreamOpt(), after] });
  const scan = scanResponse(src);
  const { bytes, optOff } = ownAnswer(src, scan, true);
  const m = dnsPacket.decode(Buffer.from(bytes));
  assert.equal(flagsOf(bytes) & (AA | RA), RA);
  assert.deepEqual(m.additionals?.map((r) => r.type), ['A', 'OPT'], 'the record after the upstream OPT is dropped');
  const opt = optOf(m)!;
  assert.equal(opt.udpPayloadSize, 1232);
  assert.equal(opt.flags & dnsPacket.DNSSEC_OK, dnsPacket.DNSSEC_OK);
  assert.deepEqual(opt.options.map((o) => o.code), [EDE], 'only the Extended DNS Error is carried over');
  assert.deepEqual([...opt.options[0]!.data], [0, 3, ...Buffer.from('stale')]);
  // The updated scan describes the copy: the same records, our OPT last, cacheable as before.
  assert.deepEqual(scanResponse(bytes).records.map((r) => [r.type, r.ownerOff, r.ttlOff]), scan.records.map((r) => [r.type, r.ownerOff, r.ttlOff]));
  assert.equal(scan.records[scan.optIndex]!.ownerOff, optOff);
  assert.equal(scan.optIndex, scan.records.length - 1);
  assert.deepEqual(cacheTtl(bytes, scan), { ttl: 300, negative: false });
  // No OPT from upstream: one is added all the same (the listener strips it for a client without EDNS).
  const plain = answerFor(fakeQuery('plain.test'));
  const own = ownAnswer(plain, scanResponse(plain), false);
  assert.equal(own.optOff, plain.length);
  assert.equal(optOf(dnsPacket.decode(Buffer.from(own.bytes)))?.udpPayloadSize, 1232);
});

test('finishForClient mirrors RD and CD, sets RA, clears AA; truncatedResponse keeps an OPT for an EDNS query', () => {
  const src = answerFor(fakeQuery('own.test'), { flags: AA | RD, additionals: [upstreamOpt(1)] });
  const scan = scanResponse(src);
  const { bytes, optOff } = ownAnswer(src, scan, true);
  assert.equal(optOf(dnsPacket.decode(Buffer.from(bytes)))?.extendedRcode, 1, 'the upstream\'s extended RCODE bits are kept');
  assert.equal(scan.rcode, 16);
  for (const cd of [false, true]) {
    const qb = query('OWN.test', { edns: 512, do: true, cd });
    const out = finishForClient(Buffer.from(bytes), optOff, qb, parseQuery(qb));
    assert.equal(flagsOf(out) & (AA | RA | RD | CD), RA | RD | (cd ? CD : 0));
    assert.equal(dnsPacket.decode(Buffer.from(out)).questions?.[0]?.name, 'OWN.test');
    const tc = truncatedResponse(out, qb, parseQuery(qb), optOff);
    const m = dnsPacket.decode(Buffer.from(tc));
    assert.equal(flagsOf(tc) & TC, TC);
    assert.equal(m.answers?.length, 0);
    assert.equal(optOf(m)?.udpPayloadSize, 1232, 'RFC 6891 §7: the truncated answer to an EDNS query has an OPT');
    assert.equal(optOf(m)?.extendedRcode, 1);
    assert.equal(optOf(m)!.flags & dnsPacket.DNSSEC_OK, dnsPacket.DNSSEC_OK);
  }
  const plainQ = query('own.test');
  const tc = truncatedResponse(bytes, plainQ, parseQuery(plainQ));
  assert.equal(dnsPacket.decode(Buffer.from(tc)).additionals?.length, 0, 'no OPT for a query without one');
});

test('through the stub: an upstream\'s AA, missing RA and OPT (4096, cookie, unknown option) never reach the client, from upstream or cache; EDE does', async (t) => {
  const up = await startFakeUpstream(t, (q) => [{ bytes: answerFor(q, { flags: AA | RD, additionals: [upstreamOpt()] }) }]);
  const stub = await startStub(t, [up.addr], noCap);
  for (const source of ['upstream', 'cache']) {
    const r = await udpAsk(stub, query('Hdr.Test', { edns: 4096, cd: true }));
    assert.equal(flagsOf(r.raw) & (AA | RA | CD), RA | CD, `${source}: RA set, AA clear, CD copied`);
    const opt = optOf(r.msg);
    assert.equal(opt?.udpPayloadSize, 1232, `${source}: the stub's own size`);
    assert.deepEqual(opt?.options.map((o) => o.code), [EDE], `${source}: no upstream cookie or unknown option`);
    const noEdns = await udpAsk(stub, query('hdr.test'));
    assert.equal(optOf(noEdns.msg), undefined, `${source}: no OPT for a client without EDNS`);
  }
  assert.equal(stub.resolver.counters.hits, 2, 'the second round came from the cache');
});

test('TC answered again over TCP is a failed try: the next upstream is asked, the truncated answer is never passed on', async (t) => {
  const bad = await startFakeUpstream(t, (q) => [{ bytes: answerFor(q, { tc: true }) }]);
  const good = await startFakeUpstream(t, (q) => [{ bytes: answerFor(q, { address: '2001:db8::600d' }) }]);
  const stub = await startStub(t, [bad.addr, good.addr], noCap);
  const r = await udpAsk(stub, query('tc-again.test', { edns: 1232 }));
  assert.equal(flagsOf(r.raw) & TC, 0);
  assert.deepEqual(r.msg.answers?.map((a) => (a as { data?: unknown }).data), ['2001:db8::600d']);
  assert.deepEqual(bad.queries.map((q) => (q.from ? 'udp' : 'tcp')), ['udp', 'tcp']);
  assert.equal(stub.resolver.counters.upstreamTcpFallbacks, 1);
});

test('an answer too big for the client\'s UDP size: TC, with the stub\'s OPT when the query had one (RFC 6891 §7)', async (t) => {
  const up = await startFakeUpstream(t, (q) => [{ bytes: answerFor(q, { many: 40, additionals: [upstreamOpt()] }) }]);
  const stub = await startStub(t, [up.addr], noCap);
  const withOpt = await udpAsk(stub, query('big.test', { edns: 512, do: true }));
  assert.equal(flagsOf(withOpt.raw) & (TC | RA), TC | RA);
  assert.equal(optOf(withOpt.msg)?.udpPayloadSize, 1232);
  assert.equal(optOf(withOpt.msg)!.flags & dnsPacket.DNSSEC_OK, dnsPacket.DNSSEC_OK, 'DO copied');
  const without = await udpAsk(stub, query('big.test'));
  assert.equal(flagsOf(without.raw) & TC, TC);
  assert.equal(without.msg.additionals?.length, 0);
});

/** A TXT answer to (`id`, `name`) without OPT, exactly `size` octets long. */
function bigTxt(id: number, name: string, size: number): Buffer {
  const encode = (answers: dnsPacket.Answer[]): Buffer => dnsPacket.encode({ id, type: 'response', flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE, questions: [{ name, type: 'TXT', class: 'IN' }], answers } as dnsPacket.Packet);
  const rr = (n: number): dnsPacket.Answer => ({ name, type: 'TXT', class: 'IN', ttl: 300, data: [Buffer.alloc(n, 0x61)] } as dnsPacket.Answer);
  const answers: dnsPacket.Answer[] = [];
  for (;;) {
    const left = size - encode(answers).length - (name.length + 2 + 10 + 1); // owner, fixed fields, the string's length octet
    if (left <= 255) {
      answers.push(rr(left));
      const out = encode(answers);
      assert.equal(out.length, size);
      return out;
    }
    answers.push(rr(255));
  }
}

/** One query over TCP to the stub; its answer, or undefined when the connection ends without one. */
function tcpAsk(port: number, query: Buffer): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const c = net.connect(port, '127.0.0.1', () => c.write(Buffer.concat([Buffer.from([query.length >> 8, query.length & 0xff]), query])));
    let buf = Buffer.alloc(0);
    c.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) { c.destroy(); resolve(buf.subarray(2, 2 + buf.readUInt16BE(0))); }
    });
    c.on('error', () => resolve(undefined));
    c.on('close', () => resolve(undefined));
  });
}

const txtQuery = (id: number, udpPayloadSize: number): Buffer => dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'TXT', name: 'big.example' }],
  additionals: [{ type: 'OPT', name: '.', udpPayloadSize, flags: 0, options: [] } as never] });

test('an upstream TCP answer of 65,530 octets without OPT, for a client over TCP with EDNS: with the stub\'s OPT it would not fit a TCP frame, so SERVFAIL; the stub goes on', async (t) => {
  const unhandled: unknown[] = [];
  const record = (e: unknown): void => { unhandled.push(e); };
  process.on('unhandledRejection', record); // the daemon has no handler: one would end its process
  t.after(() => process.off('unhandledRejection', record));
  const up = await startFakeUpstream(t, (q, transport) => q.type !== 'TXT' ? [{ bytes: answerFor(q) }] : [{ bytes: transport === 'udp' ? answerFor(q, { tc: true }) : bigTxt(q.id, q.name, 65_530) }]);
  const stub = await startStub(t, [up.addr], noCap);
  const answer = await tcpAsk(stub.port, txtQuery(9, 1232));
  assert.ok(answer, 'an answer over TCP');
  assert.equal(answer[3]! & 0x0f, 2, 'SERVFAIL');
  const again = await udpAsk(stub, dnsPacket.encode({ type: 'query', id: 10, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name: 'after.example' }] }));
  assert.equal(again.raw[3]! & 0x0f, 0, 'NOERROR');
  assert.deepEqual(unhandled, []);
});

test('a client advertising an EDNS size of 65,535 over UDP gets TC for an answer of 65,511 octets, which no IPv4 datagram carries (65,507 at most)', async (t) => {
  const up = await startFakeUpstream(t, (q, transport) => q.type !== 'TXT' ? [{ bytes: answerFor(q) }] : [{ bytes: transport === 'udp' ? answerFor(q, { tc: true }) : bigTxt(q.id, q.name, 65_500) }]);
  const stub = await startStub(t, [up.addr], noCap);
  const r = await udpAsk(stub, txtQuery(11, 65_535));
  assert.equal((r.raw[2]! & 2) !== 0, true, `TC set (${r.raw.length} octets)`);
});

test('a SERVFAIL shared by coalesced waiters carries an OPT for the one that sent EDNS, and none for the one that did not (RFC 6891 §7)', async (t) => {
  // Silent upstream: both questions end in the stub's own SERVFAIL at the deadline.
  const up = await startFakeUpstream(t, () => undefined);
  const stub = await startStub(t, [up.addr], { ...noCap, queryTimeoutMs: 1000 });
  for (const [first, second] of [[0, 1232], [1232, 0]] as const) {
    const name = `coalesced-${first}.test`;
    const a = udpAsk(stub, query(name, first ? { edns: first } : {}), 30_000);
    await waitFor(() => up.queries.some((q) => q.name === name), 'the first question upstream');
    const b = udpAsk(stub, query(name, second ? { edns: second } : {}), 30_000);
    const [ra, rb] = await Promise.all([a, b]);
    for (const [r, edns] of [[ra, first], [rb, second]] as const) {
      assert.equal(r.raw[3]! & 0x0f, 2, 'SERVFAIL');
      assert.equal(optOf(r.msg)?.udpPayloadSize, edns ? 1232 : undefined, `query ${edns ? 'with' : 'without'} EDNS after one ${first ? 'with' : 'without'}`);
    }
  }
  assert.equal(stub.resolver.counters.coalesced, 2);
});
