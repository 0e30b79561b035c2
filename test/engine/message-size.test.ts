// Every message that carries our Locator List (I2, I2bis, R2, Update Request: RFC 5533 §7.9, §7.14,
// §7.19, §10.1) must fit a Shim6 message (2,048 octets: the 8-bit Hdr Ext Len) with the largest
// identity the engine accepts: a 4096-bit key (its ~550-octet public key in the PDS, a 512-octet
// CGA Signature), an HBA/CGA set of many prefixes (8 octets each in the Multi-Prefix extension)
// and 32 locators. Before, such an I2 could not be encoded: the WireError it threw out of
// handleDatagram stopped the daemon.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { tmpdir } from '../helpers/tmp.ts';
import { Sim } from '../sim/sim.ts';
import { addLinkedShimHost, engineEvents, hbaIdentity, rebootShimHost, sendShim, type ShimHost } from '../sim/shim-hosts.ts';
import { mark, sent, traceAfter, type TraceLine } from '../sim/trace.ts';
import { Engine, MAX_ECHOED_VALIDATOR, MAX_LOCAL_LOCATORS, State, listRoom } from '../../shim/engine/index.ts';
import { decodeMessage, encodeMessage, findOption, type I1Message, type I2Message } from '../../shim/wire/index.ts';
import { MAX_HEADER_LENGTH } from '../../shim/wire/message-codec.ts';
import { generateHbaSet } from '../../shim/wire/hba.ts';
import { UsageError } from '../../shim/errors.ts';
import { SHIM6_MAX_RSA_KEY_BITS } from '../../shim/constants.ts';
import { bytesFrom } from '../helpers/cga-handshake.ts';
import { SimRng } from '../helpers/rng.ts';
import { generateHbaParams, rsaPublicKeyDer, type HbaParamsFile } from '../../shim/wire/hba-params.ts';
import { checkCgaSignature, generateCga, signCgaLocators } from '../../shim/wire/cga.ts';
import { loadCgaKey } from '../../shim/daemon/cga-identity.ts';
import { checkHbaMembers, identityListRoom } from '../../shim/daemon/start-checks.ts';
import { orderLocators } from '../../shim/daemon/daemon.ts';
import type { LocalAddress } from '../../shim/daemon/locators.ts';

const rsa = (bits: number): { privateKey: KeyObject; spki: Uint8Array } => {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: bits });
  return { privateKey, spki: new Uint8Array(publicKey.export({ type: 'spki', format: 'der' })) };
};
const KEY = rsa(SHIM6_MAX_RSA_KEY_BITS);
const prefixes = (n: number): string[] => Array.from({ length: n }, (_, i) => `2001:db8:${(0xa000 + i).toString(16)}::/64`);

/** A: a 4096-bit HBA/CGA set of `n` prefixes; its locators the first `members` members, then CGA-only addresses up to 32. */
function bigHost(sim: Sim, n: number, members: number, seed: number): ShimHost {
  const set = generateHbaSet({ prefixes: prefixes(n), sec: 0, publicKey: KEY.spki, randomBytes: bytesFrom(seed) });
  const locators = set.members.slice(0, members).map((m) => m.address);
  for (let i = 0; locators.length < MAX_LOCAL_LOCATORS; i++) locators.push(`2001:db8:cafe::${(i + 1).toString(16)}`);
  return addLinkedShimHost(sim, 'a', { ulid: locators[0]!, locators, params: set.members[0]!.params }, { cgaKey: KEY.privateKey });
}

const carriesList = (l: TraceLine): boolean => l.message !== undefined && findOption(l.message, 'LocatorList') !== undefined;

/** What A announced in `lines`: each message fits, lists A's locators from the ULID on, in A's order, and B verified every one. */
function checkAnnounced(lines: readonly TraceLine[], a: ShimHost, b: ShimHost, type: string): number {
  const msgs = lines.filter((l) => l.from === 'a' && l.type === type);
  assert.ok(msgs.length > 0, `A sent an ${type}`);
  let listed = 0;
  for (const l of msgs) {
    assert.ok(l.bytes.length <= MAX_HEADER_LENGTH, `${type} of ${l.bytes.length} octets`);
    assert.ok(carriesList(l), `the ${type} carries the list`);
    const addresses = findOption(l.message!, 'LocatorList')!.locators.map((x) => x.address);
    assert.deepEqual(addresses, a.locators.slice(0, addresses.length), 'the first locators, ULID first');
    listed = addresses.length;
  }
  const ctx = b.engine.status().contexts.find((c) => c.peerUlid === a.ulid);
  for (const address of a.locators.slice(0, listed)) assert.equal(ctx?.peerLocators.find((p) => p.address === address)?.verified, true, `B verified ${address}`);
  return listed;
}

/** Drive I2 (A initiates), Update Request (A's set changes), I2bis (B restarted), and R2 (B initiates). */
function driveAll(n: number, members: number, seed: number): Record<string, number> {
  const out: Record<string, number> = {};
  {
    const sim = new Sim(seed);
    const a = bigHost(sim, n, members, seed);
    const b = addLinkedShimHost(sim, 'b', hbaIdentity(['2001:db8:b1::/64', '2001:db8:b2::/64'], sim.rng.fork()));
    a.engine.prime(sim.now, { ulid: b.ulid, locators: [], ttl: 300, source: 'configured' });
    sim.runFor(500);
    assert.equal(a.engine.status().contexts[0]?.state, State.ESTABLISHED);
    out.I2 = checkAnnounced(sent(sim), a, b, 'I2');
    // A's set changes (the ULID's preference): the Update Request carries the list again.
    let from = mark(sim);
    a.engine.setLocalLocators(sim.now, a.locators.map((address, i) => ({ address, priority: i === 0 ? 7 : 0 })));
    sim.runFor(1000);
    out.UpdateRequest = checkAnnounced(traceAfter(sim, from), a, b, 'UpdateRequest');
    // B restarts; A's payload draws an R1bis, A answers with an I2bis.
    rebootShimHost(sim, b);
    from = mark(sim);
    sendShim(sim, a, b);
    sim.runFor(1000);
    assert.ok(engineEvents(a).some((e) => e.kind === 'context-established' && e.recovered), 'A recovered the context');
    out.I2bis = checkAnnounced(traceAfter(sim, from), a, b, 'I2bis');
  }
  {
    const sim = new Sim(seed + 1);
    const a = bigHost(sim, n, members, seed);
    const b = addLinkedShimHost(sim, 'b', hbaIdentity(['2001:db8:b1::/64', '2001:db8:b2::/64'], sim.rng.fork()));
    b.engine.prime(sim.now, { ulid: a.ulid, locators: [], ttl: 300, source: 'configured' });
    sim.runFor(500);
    assert.equal(b.engine.status().contexts[0]?.state, State.ESTABLISHED);
    out.R2 = checkAnnounced(sent(sim), a, b, 'R2');
  }
  return out;
}

/** A's PDS: 25 octets, the key, a Multi-Prefix extension of 8 + 8n. */
const pdsOf = (n: number): number => 25 + KEY.spki.length + 8 + 8 * n;

test('a 4096-bit key, a 31-prefix HBA/CGA set and 32 locators (one CGA-signed): I2, Update Request, I2bis and R2 fit in 2,048 octets, listing the 26 that fit', () => {
  assert.equal(listRoom(pdsOf(31), 512), 26);
  assert.deepEqual(driveAll(31, 31, 71), { I2: 26, UpdateRequest: 26, I2bis: 26, R2: 26 });
});

test('a 4096-bit key and an HBA/CGA set of 80 prefixes: the list is cut to the 7 that fit (ULID first), every message within 2,048 octets', () => {
  assert.equal(listRoom(pdsOf(80), 512), 7);
  assert.deepEqual(driveAll(80, 2, 73), { I2: 7, UpdateRequest: 7, I2bis: 7, R2: 7 });
});

test('room for 32 beside the largest sets that leave it, 1 beside the largest the engine accepts', () => {
  assert.equal(listRoom(pdsOf(17), 512), MAX_LOCAL_LOCATORS);
  assert.equal(listRoom(pdsOf(18), 512), MAX_LOCAL_LOCATORS - 1);
  assert.equal(listRoom(pdsOf(95), 512), 1);
  assert.equal(listRoom(pdsOf(96), 512), 0);
  assert.equal(driveAll(95, 1, 77).I2, 1);
});

test('a PDS too large for any message to carry with even the ULID is refused when the engine is made', () => {
  const set = generateHbaSet({ prefixes: prefixes(120), sec: 0, publicKey: KEY.spki, randomBytes: bytesFrom(75) });
  const make = (): Engine => new Engine({ localLocators: [{ address: set.members[0]!.address }], cgaParams: set.members[0]!.params, cgaKey: KEY.privateKey }, new SimRng(1));
  assert.throws(make, (e: unknown) => e instanceof UsageError && e.code === 'ECGA_PARAMS' && /octets/.test(e.message));
});

test('the daemon: a key and HBA set that leave no room are refused at the start naming the file and the sizes; one that leaves less room than 32 cuts its locators to it, ULID first', () => {
  const cgaKey = { file: 'rsa.pem', key: KEY.privateKey, spki: KEY.spki, bits: SHIM6_MAX_RSA_KEY_BITS };
  const file = (n: number, seed: number): HbaParamsFile => generateHbaParams({ prefixes: prefixes(n), sec: 0, publicKey: KEY.spki, keyFile: 'rsa.pem', randomBytes: bytesFrom(seed) });
  const huge = file(96, 79);
  assert.throws(() => checkHbaMembers(huge, 'hba.json', cgaKey), (e: unknown) => e instanceof UsageError && e.code === 'EHBA_PARAMS'
    && /hba\.json/.test(e.message) && e.message.includes(`${pdsOf(96)} octets`) && e.message.includes('512 octets'));
  const big = file(80, 81);
  assert.doesNotThrow(() => checkHbaMembers(big, 'hba.json', cgaKey));
  const room = identityListRoom(big, cgaKey, undefined);
  assert.equal(room, 7);
  const found: LocalAddress[] = [...big.members.slice(0, 3).map((m) => m.address), ...Array.from({ length: 40 }, (_, i) => `2001:db8:cafe::${i + 1}`)]
    .map((address) => ({ address, ifname: 'eth0', up: true }));
  const locals = orderLocators(found, big, undefined, undefined, undefined, room);
  assert.deepEqual(locals.map((l) => l.address), found.slice(0, 7).map((a) => a.address));
});

test('an R1 whose Responder Validator is too long to echo beside our list is dropped, not thrown (it made our I2 too large: a peer stopped our daemon)', () => {
  const sim = new Sim(83);
  const a = bigHost(sim, 31, 31, 83);
  const b = addLinkedShimHost(sim, 'b', hbaIdentity(['2001:db8:b1::/64', '2001:db8:b2::/64'], sim.rng.fork()));
  // B stays silent: A's I1 is answered by hand.
  for (const la of a.locators) for (const lb of b.locators) sim.setLink(la, lb, { blackhole: true });
  a.engine.prime(sim.now, { ulid: b.ulid, locators: [], ttl: 300, source: 'configured' });
  sim.runFor(10);
  const i1 = sent(sim, 'a').find((l) => l.type === 'I1')!;
  const r1 = (validator: Uint8Array): Uint8Array => encodeMessage({ type: 'R1', initiatorNonce: (i1.message as I1Message).initiatorNonce, responderNonce: 9, options: [{ type: 'ResponderValidator', critical: false, validator }] });
  while (a.engine.pollTransmit() !== undefined) { /* drain */ }
  for (const length of [MAX_ECHOED_VALIDATOR + 1, 1500]) {
    assert.deepEqual(a.engine.handleDatagram(sim.now, { src: i1.dst, dst: i1.src, bytes: r1(new Uint8Array(length)) }), { kind: 'drop', reason: 'validator-too-long' }, `${length} octets`);
    assert.equal(a.engine.pollTransmit(), undefined, 'no I2');
  }
  // The longest it echoes: an I2 within 2,048 octets, with the list.
  assert.equal(a.engine.handleDatagram(sim.now, { src: i1.dst, dst: i1.src, bytes: r1(new Uint8Array(MAX_ECHOED_VALIDATOR)) }).kind, 'consumed');
  const i2 = a.engine.pollTransmit()!;
  assert.ok(i2.bytes.length <= MAX_HEADER_LENGTH);
  assert.equal((decodeMessage(i2.bytes) as I2Message).type, 'I2');
});

test('an R1bis whose Responder Validator is too long to echo is dropped, on the current pair and off it', () => {
  const sim = new Sim(85);
  const a = bigHost(sim, 31, 31, 85);
  const b = addLinkedShimHost(sim, 'b', hbaIdentity(['2001:db8:b1::/64', '2001:db8:b2::/64'], sim.rng.fork()));
  a.engine.prime(sim.now, { ulid: b.ulid, locators: [], ttl: 300, source: 'configured' });
  sim.runFor(500);
  const ctx = a.engine.status().contexts[0]!;
  assert.equal(ctx.state, State.ESTABLISHED);
  while (a.engine.pollTransmit() !== undefined) { /* drain */ }
  const r1bis = encodeMessage({ type: 'R1bis', packetContextTag: ctx.peerContextTag, responderNonce: 9, options: [{ type: 'ResponderValidator', critical: false, validator: new Uint8Array(1500) }] });
  assert.deepEqual(a.engine.handleDatagram(sim.now, { src: ctx.pair.peer, dst: ctx.pair.local, bytes: r1bis }), { kind: 'drop', reason: 'validator-too-long' });
  assert.equal(a.engine.pollTransmit(), undefined, 'no I2bis');
  assert.equal(a.engine.status().contexts[0]!.state, State.ESTABLISHED);
});

test('a CGA key our peers refuse (over 4096 bits) is refused at the start, by the engine and by zone hba --key: every signed list of ours would be refused', (t) => {
  const dir = tmpdir(t, 'shim6-msgsize-');
  const keys: [string, KeyObject, RegExp][] = [
    ['long', generateKeyPairSync('rsa', { modulusLength: 4160 }).privateKey, /4160 bits; peers refuse a CGA key of more than 4096/],
  ];
  for (const [name, key, why] of keys) {
    const file = path.join(dir, `${name}.pem`);
    writeFileSync(file, key.export({ type: 'pkcs8', format: 'pem' }));
    assert.throws(() => loadCgaKey(file), (e: unknown) => e instanceof UsageError && e.code === 'ECGA_KEY' && e.message.includes(file) && why.test(e.message), name);
    assert.throws(() => rsaPublicKeyDer(readFileSync(file, 'utf8'), file), (e: unknown) => e instanceof UsageError && e.code === 'EKEY' && why.test(e.message), `zone hba --key ${name}`);
    const spki = new Uint8Array(createPublicKey(key).export({ type: 'spki', format: 'der' }));
    const g = generateCga({ subnetPrefix: '2001:db8:c1::/64', publicKey: spki, sec: 0, randomBytes: bytesFrom(87) });
    // What a peer makes of its signatures (before, the daemon started with it, and no peer took a list it signed).
    assert.equal(checkCgaSignature({ params: g.params, generation: 1, locators: [g.address], signature: signCgaLocators(key, 1, [g.address]), ulid: g.address }), 'key-too-long');
    assert.throws(() => new Engine({ localLocators: [{ address: g.address }], cgaParams: g.params, cgaKey: key }, new SimRng(3)), (e: unknown) => e instanceof UsageError && e.code === 'ECGA_KEY' && why.test(e.message), `engine ${name}`);
  }
});
