// Trust (RFC 5533 §7.13 read with §16; docs/security.md): a peer ULID is
// accepted only when proven — it is the handshake's source locator, or the
// I2's PDS proves both the ULID and that source locator (HBA set / CGA) —
// and stateless replies (R1, R1bis, Error) are rate-limited per source /64 and
// globally, never more than twice the datagram that caused them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine, MAX_PEER_LOCATORS, MAX_PREFIX_BUCKETS, State, type EngineConfig, type EngineEvent } from '../../shim/engine/index.ts';
import { ReplyLimiter } from '../../shim/engine/reply-limit.ts';
import { hbaVerifier } from '../../shim/engine/verify.ts';
import { decodeMessage, encodeMessage, encodePayloadHeader, findOption, type R1Message, type Shim6Option } from '../../shim/wire/index.ts';
import { VerificationMethod } from '../../shim/constants.ts';
import { ms, type Millis } from '../../shim/time.ts';
import { SimRng } from '../helpers/rng.ts';
import { configuredPair, hbaIdentity, shimPair } from '../sim/shim-hosts.ts';

const B = '2001:db8:b1::1';
const THIRD_PARTY = '2001:db8:53::53';
const engineB = (extra: Partial<EngineConfig> = {}) => new Engine({ localLocators: [{ address: B }], ...extra }, new SimRng(42));

/** I1 then I2 (with the R1's validator) from `src`, carrying `options`; the I2's result and what B sent back. */
function handshake(b: Engine, src: string, options: Shim6Option[], now: Millis = ms(0), dst = B) {
  b.handleDatagram(now, { src, dst, bytes: encodeMessage({ type: 'I1', contextTag: 0x1234, initiatorNonce: 1, options: options.filter((o) => o.type === 'UlidPair') }) });
  const r1 = decodeMessage(b.pollTransmit()!.bytes) as R1Message;
  const validator = findOption(r1, 'ResponderValidator')!.validator;
  const i2 = encodeMessage({ type: 'I2', contextTag: 0x1234, initiatorNonce: 2, responderNonce: r1.responderNonce, options: [{ type: 'ResponderValidator', critical: false, validator }, ...options] });
  const result = b.handleDatagram(now, { src, dst, bytes: i2 });
  const sent: string[] = [];
  for (let t = b.pollTransmit(); t !== undefined; t = b.pollTransmit()) sent.push(decodeMessage(t.bytes).type);
  const events: EngineEvent[] = [];
  for (let e = b.pollEvent(); e !== undefined; e = b.pollEvent()) events.push(e);
  return { result, sent, events };
}

const ulidPair = (sender: string, receiver = B): Shim6Option => ({ type: 'UlidPair', critical: false, senderUlid: sender, receiverUlid: receiver });
const pdsOf = (pds: Uint8Array): Shim6Option => ({ type: 'CgaParameterDataStructure', critical: false, pds });
const hbaList = (addresses: readonly string[]): Shim6Option => ({ type: 'LocatorList', critical: false, generation: 1, locators: addresses.map((address) => ({ address, verificationMethod: VerificationMethod.HBA })) });

test('ULID hijack without proof: claiming a third party, a real HBA host, or the responder itself → no context, no R2, counted', () => {
  const attacker = '2001:db8:e1::66';
  const real = hbaIdentity(['2001:db8:a1::/64', '2001:db8:a2::/64'], new SimRng(81));
  const cases: [string, string, string][] = [[THIRD_PARTY, 'ulid-unproven', 'ulidUnproven'], [real.ulid, 'ulid-unproven', 'ulidUnproven'], [B, 'ulid-is-local', 'ulidIsLocal']];
  for (const [claimed, reason, counter] of cases) {
    const b = engineB();
    const { result, sent, events } = handshake(b, attacker, [ulidPair(claimed)]);
    assert.deepEqual(result, { kind: 'drop', reason }, claimed);
    assert.deepEqual(sent, [], `no R2 for ${claimed}`);
    assert.equal(b.contextCount, 0);
    assert.deepEqual(events, [{ kind: 'ulid-refused', claimedUlid: claimed, source: attacker, reason }]);
    assert.equal((b.status().guard as unknown as Record<string, number>)[counter], 1);
  }
});

test('ULID hijack with HBA: a replayed PDS does not prove the sender; the attacker\'s own set proves no one else', () => {
  const attacker = '2001:db8:e1::66';
  const real = hbaIdentity(['2001:db8:a1::/64', '2001:db8:a2::/64'], new SimRng(82));
  // The real host's PDS and list, replayed from the attacker's address (not in the set).
  let b = engineB();
  let r = handshake(b, attacker, [ulidPair(real.ulid), hbaList(real.locators), pdsOf(real.params)]);
  assert.deepEqual(r.result, { kind: 'drop', reason: 'ulid-unproven' });
  assert.deepEqual(r.sent, []);
  // The same, with the attacker's address added to the list as if it were a member.
  b = engineB();
  r = handshake(b, attacker, [ulidPair(real.ulid), hbaList([...real.locators, attacker]), pdsOf(real.params)]);
  assert.deepEqual(r.result, { kind: 'drop', reason: 'ulid-unproven' });
  assert.equal(b.contextCount, 0);
  // The attacker's own HBA set, claiming a third party's address as ULID: the PDS does not own it.
  const own = hbaIdentity(['2001:db8:e1::/64'], new SimRng(83));
  b = engineB();
  r = handshake(b, own.ulid, [ulidPair(THIRD_PARTY), hbaList(own.locators), pdsOf(own.params)]);
  assert.deepEqual(r.result, { kind: 'drop', reason: 'ulid-unproven' });
  assert.equal(b.status().guard.ulidUnproven, 1, 'counted like any unproven claim');
  assert.deepEqual(r.sent, []);
  assert.equal(b.contextCount, 0);
});

test('proven ULIDs are accepted: the source itself (locator), and an HBA member speaking for its set\'s ULID (hba)', () => {
  // No ULID option: the ULID is the source locator.
  let b = engineB();
  let r = handshake(b, '2001:db8:e1::66', []);
  assert.equal(r.result.kind, 'consumed');
  assert.deepEqual(r.sent, ['R2']);
  assert.equal(b.status().contexts[0]?.ulidProof, 'locator');
  // An HBA host talking from its second locator, its ULID in the option: the PDS proves both.
  const f = hbaIdentity(['2001:db8:f1::/64', '2001:db8:f2::/64'], new SimRng(84));
  const f2 = f.locators[1]!;
  b = engineB();
  r = handshake(b, f2, [ulidPair(f.ulid), hbaList(f.locators), pdsOf(f.params)]);
  assert.equal(r.result.kind, 'consumed');
  assert.deepEqual(r.sent, ['R2']);
  const ctx = b.status().contexts[0]!;
  assert.equal(ctx.peerUlid, f.ulid);
  assert.equal(ctx.ulidProof, 'hba');
  assert.ok(r.events.some((e) => e.kind === 'context-established' && e.ulidProof === 'hba'));
  const h = encodePayloadHeader(17, ctx.contextTag);
  const p = b.handleDatagram(ms(1), { src: f2, dst: B, bytes: Uint8Array.from([...h, 1, 2, 3, 4, 5, 6, 7, 8]) });
  assert.equal(p.kind, 'payload');
  assert.equal(p.kind === 'payload' ? p.srcUlid : '', f.ulid);
});

test('a locator with a verification method neither HBA nor CGA (0, 3, 255) proves nothing, and listed before an HBA member does not take that member\'s result: the third party never a destination, the member verified', () => {
  const f = hbaIdentity(['2001:db8:f1::/64', '2001:db8:f2::/64'], new SimRng(85));
  const f2 = f.locators[1]!;
  for (const method of [0, 3, 255]) {
    const claims = [{ address: THIRD_PARTY, method }, { address: f2, method: VerificationMethod.HBA }];
    assert.deepEqual(hbaVerifier().verify(f.ulid, claims, f.params), [false, true], `method ${method}: the verifier`);
    // Through an I2: the context is made (an unproven entry is kept, never a destination), the member is B's to use.
    const b = engineB();
    const list: Shim6Option = { type: 'LocatorList', critical: false, generation: 1, locators: claims.map((c) => ({ address: c.address, verificationMethod: c.method })) };
    const r = handshake(b, f.ulid, [list, pdsOf(f.params)]);
    assert.equal(r.result.kind, 'consumed', `method ${method}`);
    const peers = b.status().contexts[0]!.peerLocators;
    assert.deepEqual([THIRD_PARTY, f2].map((a) => peers.find((l) => l.address === a)?.verified), [false, true], `method ${method}: ${JSON.stringify(peers)}`);
  }
});

test('an I2 claiming the ULID of an established peer from an unproven locator changes nothing', () => {
  const { sim, a, b } = configuredPair(85);
  const before = b.engine.status().contexts[0]!;
  const attacker = '2001:db8:b1::66'; // on B's own link, not in A's HBA set
  sim.flush();
  const r = handshake(b.engine, attacker, [ulidPair(a.ulid, b.ulid), hbaList([...a.locators, attacker]), pdsOf(a.params!)], sim.now, b.ulid);
  assert.deepEqual(r.result, { kind: 'drop', reason: 'ulid-unproven' });
  assert.deepEqual(r.sent, []);
  assert.equal(b.engine.status().guard.ulidUnproven, 1);
  const after = b.engine.status().contexts[0]!;
  assert.deepEqual(after.pair, before.pair);
  assert.deepEqual(after.peerLocators, before.peerLocators);
  assert.equal(after.peerContextTag, before.peerContextTag);
});

/** `n` datagrams over `seconds` of virtual time from `src(i)`; how many replies B sent. */
function flood(b: Engine, n: number, seconds: number, src: (i: number) => string, bytes: (i: number) => Uint8Array): number {
  let replies = 0;
  for (let i = 0; i < n; i++) {
    b.handleDatagram(ms((i * seconds * 1000) / n), { src: src(i), dst: B, bytes: bytes(i) });
    while (b.pollTransmit() !== undefined) replies++;
  }
  return replies;
}

const i1 = (i: number) => encodeMessage({ type: 'I1', contextTag: i + 1, initiatorNonce: i, options: [] });
/** A payload packet for an unknown tag with a 20-octet ULP header behind it (a TCP segment's size). */
const unknownTag = (i: number) => Uint8Array.from([...encodePayloadHeader(6, 0x4000_0000 + i), ...new Uint8Array(20)]);
const oneSource = () => '2001:db8:e1::66';
const thousandSources = (i: number) => `2001:db8:${(i % 1000).toString(16)}::66`;

test('I1 flood: 100,000 I1s in 1 s draw at most burst + rate·t R1s per /64 and globally; limits off answers all', () => {
  let b = engineB();
  const one = flood(b, 100_000, 1, oneSource, i1);
  assert.ok(one <= 10 + 10 * 1 && one >= 19, `one /64: 10 burst + 10/s, got ${one}`);
  assert.equal(b.status().guard.replies.R1.sent, one);
  assert.equal(b.status().guard.replies.R1.limited, 100_000 - one);
  b = engineB();
  const many = flood(b, 100_000, 1, thousandSources, i1);
  assert.ok(many <= 200 + 200 * 1 && many >= 200, `1,000 /64s: global 200 burst + 200/s, got ${many}`);
  b = engineB({ replyLimit: 'off' });
  assert.equal(flood(b, 100_000, 1, thousandSources, i1), 100_000);
  assert.equal(b.contextCount, 0);
});

test('unknown-tag flood: R1bis limited the same way; a bare payload header (smaller than half an R1bis) draws none', () => {
  let b = engineB();
  const one = flood(b, 100_000, 1, oneSource, unknownTag);
  assert.ok(one <= 20 && one >= 19, `got ${one}`);
  b = engineB();
  const many = flood(b, 100_000, 1, thousandSources, unknownTag);
  assert.ok(many <= 400 && many >= 200, `got ${many}`);
  b = engineB({ replyLimit: 'off' });
  assert.equal(flood(b, 1000, 1, thousandSources, (i) => encodePayloadHeader(6, 0x4000_0000 + i)), 0, 'an 8-octet header alone is answered by nothing');
  assert.equal(b.status().guard.replies.R1bis.oversize, 1000);
  assert.equal(flood(b, 1000, 1, thousandSources, unknownTag), 1000);
});

test('R2s that I1s draw from the contexts\' own locators take the /64\'s tokens too: 30 contexts from one /64, an I1 from each at once, at most the burst (10) of R2s', () => {
  const b = engineB();
  const srcs = Array.from({ length: 30 }, (_, i) => `2001:db8:e7::${(i + 1).toString(16)}`);
  // Set up at 5 a second, within the /64's 10/s: each handshake gets its R1 and R2.
  srcs.forEach((src, i) => assert.ok(handshake(b, src, [], ms(i * 200)).sent.includes('R2'), `context ${i} set up`));
  assert.equal(b.status().contexts.length, 30);
  const at = ms(30 * 200 + 2000); // the bucket full again
  const types: Record<string, number> = {};
  for (const src of srcs) {
    b.handleDatagram(at, { src, dst: B, bytes: encodeMessage({ type: 'I1', contextTag: 0x1234, initiatorNonce: 9, options: [] }) });
    for (let t = b.pollTransmit(); t !== undefined; t = b.pollTransmit()) { const k = decodeMessage(t.bytes).type; types[k] = (types[k] ?? 0) + 1; }
  }
  assert.ok((types.R2 ?? 0) >= 1, `the first I1s are answered with R2 (their R2 was lost, as far as B knows): ${JSON.stringify(types)}`);
  assert.ok((types.R2 ?? 0) + (types.R1 ?? 0) <= 10, `within the /64's burst: ${JSON.stringify(types)}`);
});

test('replies are never more than twice the datagram that caused them (the Error\'s quoted IPv6 header aside)', () => {
  const b = engineB({ replyLimit: 'off' });
  const cause = i1(1);
  b.handleDatagram(ms(0), { src: oneSource(), dst: B, bytes: cause });
  const r1 = b.pollTransmit()!;
  assert.ok(r1.bytes.length <= 2 * cause.length, `R1 ${r1.bytes.length} octets for an I1 of ${cause.length}`);
  const pkt = unknownTag(1);
  b.handleDatagram(ms(0), { src: oneSource(), dst: B, bytes: pkt });
  const r1bis = b.pollTransmit()!;
  assert.equal(decodeMessage(r1bis.bytes).type, 'R1bis');
  assert.ok(r1bis.bytes.length <= 2 * pkt.length);
  // Unknown message type → Error (RFC 5533 §5.14), carrying the quoted packet with a rebuilt IPv6 header.
  const odd = encodeMessage({ type: 'I1', contextTag: 9, initiatorNonce: 9, options: [] });
  odd[2] = (odd[2]! & 0x80) | 50;
  odd[4] = 0; odd[5] = 0;
  let sum = 0;
  for (let i = 0; i < odd.length; i += 2) sum += (odd[i]! << 8) | odd[i + 1]!;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  odd[4] = (~sum >> 8) & 0xff; odd[5] = ~sum & 0xff;
  b.handleDatagram(ms(0), { src: oneSource(), dst: B, bytes: odd });
  const err = b.pollTransmit()!;
  assert.equal(decodeMessage(err.bytes).type, 'Error');
  assert.ok(err.bytes.length <= 2 * (odd.length + 40));
});

test('the per-prefix table is bounded: 30,000 /64s keep at most MAX_PREFIX_BUCKETS buckets', () => {
  const b = engineB();
  flood(b, 30_000, 30, (i) => `2001:db8:${(i >> 8).toString(16)}:${(i & 0xff).toString(16)}::1`, i1);
  const limiter = (b as unknown as { core: { limiter: { size: number } } }).core.limiter;
  assert.ok(limiter.size <= MAX_PREFIX_BUCKETS, `${limiter.size} buckets`);
  assert.equal(b.status().guard.replies.R1.sent + b.status().guard.replies.R1.limited, 30_000);
});

test('a message that fails its checks changes nothing: stale Update Ack, Update Request with an unproven locator', () => {
  const { sim, a, b } = configuredPair(87);
  sim.runFor(50);
  const ctxB = b.engine.status().contexts[0]!;
  const before = JSON.stringify(b.engine.status().contexts);
  const from = { src: a.ulid, dst: b.ulid };
  const ack = encodeMessage({ type: 'UpdateAck', contextTag: ctxB.contextTag, requestNonce: 0xdead, options: [] });
  assert.deepEqual(b.engine.handleDatagram(sim.now, { ...from, bytes: ack, port: 6666 }), { kind: 'drop', reason: 'stale-ack' });
  const list = { ...hbaList([...a.locators, '2001:db8:e1::66']), generation: (a.engine.status().localGeneration + 1) >>> 0 } as Shim6Option;
  const req = encodeMessage({ type: 'UpdateRequest', contextTag: ctxB.contextTag, requestNonce: 7, options: [list] });
  assert.deepEqual(b.engine.handleDatagram(sim.now, { ...from, bytes: req, port: 6666 }), { kind: 'drop', reason: 'locator-unverified' });
  assert.equal(JSON.stringify(b.engine.status().contexts), before, 'state, pair, locators, port and timers as they were');
  for (let t = b.engine.pollTransmit(); t !== undefined; t = b.engine.pollTransmit()) assert.equal(decodeMessage(t.bytes).type, 'Error', 'only the Error the RFC asks for (code 2)');
});

test('an Update Request or R2 carrying a PDS that does not prove the peer\'s ULID (an on-path forger\'s own HBA set, its members listed) is dropped whole: the forger\'s addresses never become the peer\'s', () => {
  const forger = hbaIdentity(['2001:db8:e1::/64', '2001:db8:e2::/64'], new SimRng(4242));
  const forgersList = (generation: number): Shim6Option => ({ ...hbaList(forger.locators), generation } as Shim6Option);

  // Update Request: the context's tag and A's address, as an on-path forger reads and forges them.
  const { sim, a, b } = configuredPair(89);
  sim.runFor(50);
  const ctxB = b.engine.status().contexts[0]!;
  const before = JSON.stringify(b.engine.status().contexts);
  const req = encodeMessage({ type: 'UpdateRequest', contextTag: ctxB.contextTag, requestNonce: 9, options: [forgersList((a.engine.status().localGeneration + 1) >>> 0), pdsOf(forger.params)] });
  assert.deepEqual(b.engine.handleDatagram(sim.now, { src: a.ulid, dst: b.ulid, bytes: req }), { kind: 'drop', reason: 'pds-mismatch' });
  assert.equal(JSON.stringify(b.engine.status().contexts), before, 'B\'s context with A as it was');

  // R2: A's I2 on the wire gives its nonce; B's own R2 is lost, the forger answers from B's address.
  const race = shimPair(90);
  const isR2 = (bytes: Uint8Array): boolean => { try { return decodeMessage(bytes).type === 'R2'; } catch { return false; } };
  for (const from of race.b.locators) for (const to of race.a.locators) race.sim.setLink(from, to, { dropIf: (p) => isR2(p.bytes) }, 'forward');
  race.a.engine.prime(race.sim.now, { ulid: race.b.ulid, locators: [], ttl: 300, source: 'configured' });
  race.sim.runFor(150);
  const i2 = race.sim.adversary.captured.map((c) => c.packet).find((p) => !p.plain && !p.forged && race.a.locators.includes(p.src) && (() => { try { return decodeMessage(p.bytes).type === 'I2'; } catch { return false; } })());
  assert.ok(i2, 'A sent its I2');
  const i2msg = decodeMessage(i2.bytes) as { initiatorNonce: number };
  const aBefore = JSON.stringify(race.a.engine.status().contexts);
  const r2 = encodeMessage({ type: 'R2', contextTag: 0x4242, initiatorNonce: i2msg.initiatorNonce, options: [forgersList(1), pdsOf(forger.params)] });
  assert.deepEqual(race.a.engine.handleDatagram(race.sim.now, { src: i2.dst, dst: i2.src, bytes: r2 }), { kind: 'drop', reason: 'pds-mismatch' });
  assert.equal(JSON.stringify(race.a.engine.status().contexts), aBefore, 'A\'s pending context as it was');
});

test('an R1 or R2 echoing our nonce from an address that is not one of the peer\'s locators (locator-mismatch), or to an address not ours (not-local), is dropped and changes nothing', () => {
  const { sim, a, b } = shimPair(91);
  const typeOf = (bytes: Uint8Array): string | undefined => { try { return decodeMessage(bytes).type; } catch { return undefined; } };
  // B's R1s and R2s are lost on the way: the test hands them to A itself, as they were or re-addressed.
  for (const from of b.locators) for (const to of a.locators) sim.setLink(from, to, { dropIf: (p) => typeOf(p.bytes) === 'R1' || typeOf(p.bytes) === 'R2' }, 'forward');
  a.engine.prime(sim.now, { ulid: b.ulid, locators: [], ttl: 300, source: 'configured' });
  const last = (type: string) => sim.adversary.captured.map((c) => c.packet).filter((p) => b.locators.includes(p.src) && typeOf(p.bytes) === type).at(-1);
  sim.driveUntil(() => last('R1') !== undefined, { within: 5000 });
  // Everything but the count of messages received (it counts every well-formed one, checked or not).
  const snapshot = () => { sim.flush(); return JSON.stringify({ st: { ...a.engine.status(sim.now), messages: undefined }, sent: sim.adversary.captured.length, events: a.host.events.length, tx: a.engine.pollTimeout() }); };
  const notPeer = '2001:db8:b1::99'; // B's /64, not B's address
  const notOurs = '2001:db8:a1::99'; // A's /64, not A's address
  for (const type of ['R1', 'R2'] as const) {
    const msg = last(type)!;
    const state = type === 'R1' ? State.I1_SENT : State.I2_SENT;
    assert.equal(a.engine.status().contexts[0]!.state, state);
    const before = snapshot();
    // To an address not ours the engine stops it at the door (handleDatagram), before the handler's own check.
    for (const [what, src, dst, reason] of [['from another address', notPeer, msg.dst, 'locator-mismatch'], ['to an address not ours', msg.src, notOurs, 'not-local']] as const) {
      assert.deepEqual(a.engine.handleDatagram(sim.now, { src, dst, bytes: msg.bytes }), { kind: 'drop', reason }, `${type} ${what}`);
      assert.equal(snapshot(), before, `${type} ${what}: nothing changed`);
    }
    // As B sent it: taken.
    assert.deepEqual(a.engine.handleDatagram(sim.now, { src: msg.src, dst: msg.dst, bytes: msg.bytes }), { kind: 'consumed' }, type);
    if (type === 'R1') sim.driveUntil(() => last('R2') !== undefined, { within: 5000 });
  }
  const ctx = a.engine.status().contexts[0]!;
  assert.equal(ctx.state, State.ESTABLISHED);
  assert.ok(b.locators.includes(ctx.pair.peer) && a.locators.includes(ctx.pair.local), JSON.stringify(ctx.pair));
});

test('contexts peers make are bounded overall and per /64; removing one makes room again', () => {
  const b = engineB({ maxContexts: 5, maxContextsPerPrefix: 3 });
  const from = (net: number, host: number) => `2001:db8:${net.toString(16)}::${host.toString(16)}`;
  const ok = (src: string) => handshake(b, src, []).result.kind === 'consumed';
  assert.deepEqual([1, 2, 3, 4].map((h) => ok(from(0xe1, h))), [true, true, true, false], 'three per /64');
  assert.deepEqual([1, 2, 3].map((h) => ok(from(0xe2, h))), [true, true, false], 'five in all');
  assert.equal(b.contextCount, 5);
  assert.equal(b.status().guard.contextLimit, 2);
  b.close(ms(0), from(0xe1, 1)); // Close sent; removed once the peer acks or the retries end
  for (let t = 1; t < 20 && b.contextCount === 5; t++) b.handleTimeout(ms(t * 10_000));
  assert.equal(b.contextCount, 4);
  while (b.pollTransmit() !== undefined); // the Close retransmissions
  assert.ok(ok(from(0xe3, 1)), 'room again');
});

test('the per-prefix table forgets by generation: a limited /64 stays limited while it is seen, a /64 unseen for a generation gets a fresh burst', () => {
  const l = new ReplyLimiter({ perPrefix: { rate: 0.001, burst: 2 }, global: { rate: 1e6, burst: 1e6 } }, 10);
  const x = '2001:db8:aaaa::1';
  const other = (i: number) => `2001:db8:${i.toString(16)}::1`;
  assert.deepEqual([l.allow(ms(0), x), l.allow(ms(0), x), l.allow(ms(0), x)], [true, true, false]);
  for (let i = 0; i < 5; i++) l.allow(ms(0), other(i)); // the generation of 5 fills: x moves to the previous one
  assert.equal(l.allow(ms(0), x), false, 'still limited: found in the previous generation and moved back');
  for (let i = 5; i < 20; i++) { l.allow(ms(0), other(i)); assert.ok(l.size <= 10, `${l.size} buckets`); }
  assert.equal(l.allow(ms(0), x), true, 'unseen for a whole generation: forgotten, a fresh burst');
});

test('a peer\'s Locator List is kept up to MAX_PEER_LOCATORS entries (an I2 listing 117 addresses held ~72 KB per context, 50,000 contexts ~3.6 GB); Locator Preferences for the whole list still apply', () => {
  const b = engineB();
  const src = '2001:db8:e1::1';
  const junk = Array.from({ length: 117 }, (_, i) => `2001:db8:${(0x1000 + i).toString(16)}:${(0x1000 + i).toString(16)}:ffff:ffff:ffff:${i.toString(16)}`);
  const { result, sent } = handshake(b, src, [hbaList(junk)]);
  assert.deepEqual(result, { kind: 'consumed' });
  assert.deepEqual(sent, ['R2']);
  const ctx = b.status().contexts[0]!;
  assert.ok(ctx.peerLocators.length <= MAX_PEER_LOCATORS + 2, `Ls(peer) holds ${ctx.peerLocators.length} entries`);
  assert.ok(ctx.peerLocators.some((l) => l.address === src && l.verified), 'the handshake\'s locator stays');
  // The peer's preferences name every entry of its list (RFC 5533 §10.4): not Error code 4.
  const bytes = encodeMessage({ type: 'UpdateRequest', contextTag: ctx.contextTag, requestNonce: 7, options: [
    { type: 'LocatorPreferences', critical: false, generation: 1, elementLength: 1, elements: junk.map(() => ({ flags: 0 })) },
  ] });
  assert.deepEqual(b.handleDatagram(ms(1), { src, dst: B, bytes }), { kind: 'consumed' });
  assert.equal(decodeMessage(b.pollTransmit()!.bytes).type, 'UpdateAck');
});
