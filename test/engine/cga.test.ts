// CGA-verified locators (RFC 5533 §5.15.4, §5.15.5, §7.2; RFC 3972 §6; RFC 5535
// §3): our locators outside the HBA set are announced as CGA-method and the
// Locator List is signed with the configured key; the peer checks the signature
// against the PDS, uses such locators only when it holds, and answers a bad one
// with Error code 2 whose Pointer names the offending verification method octet.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { Loop, type Host } from './loop.ts';
import { Engine, State } from '../../shim/engine/index.ts';
import { decodeMessage, encodeMessage, findOption, type ErrorMessage, type Shim6Option } from '../../shim/wire/index.ts';
import { generateHbaSet } from '../../shim/wire/hba.ts';
import { generateCga, signCgaLocators } from '../../shim/wire/cga.ts';
import { UsageError } from '../../shim/errors.ts';
import { SimRng } from '../helpers/rng.ts';

const A_PREFIXES = ['2001:db8:a1::/64', '2001:db8:a2::/64'];
const B_PREFIXES = ['2001:db8:b1::/64', '2001:db8:b2::/64'];
const A_EXTRA = '2001:db8:a9::77'; // not in A's HBA set: provable only by signature
const I2 = 3;
const R2 = 4;
const UPDATE_REQUEST = 64;

const rsa = (): { privateKey: KeyObject; spki: Uint8Array } => {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 1024 });
  return { privateKey, spki: new Uint8Array(publicKey.export({ type: 'spki', format: 'der' })) };
};
const KEY = rsa();
const OTHER = rsa();

function bytesFrom(seed: number): (n: number) => Uint8Array {
  const rng = new SimRng(seed);
  return (n) => { const b = new Uint8Array(n); rng.fill(b); return b; };
}

/** An HBA/CGA host (RFC 5535 §3: P = 1, real key) with one extra, CGA-only locator. */
function cgaHost(net: Loop, name: string, seed: number): Host {
  const set = generateHbaSet({ prefixes: A_PREFIXES, sec: 0, publicKey: KEY.spki, randomBytes: bytesFrom(seed) });
  const id = { ulid: set.members[0]!.address, locators: [...set.members.map((m) => m.address), A_EXTRA], cgaParams: set.members[0]!.params };
  return net.addIdentity(name, seed, id, { profile: 'fast', cgaKey: KEY.privateKey });
}

function establish(net: Loop, a: Host, b: Host): void {
  a.engine.prime(net.now, { ulid: b.ulid, locators: [], ttl: 300, source: 'configured' });
  net.run(net.now + 300);
  assert.equal(a.engine.status().contexts[0]?.state, State.ESTABLISHED);
  assert.equal(b.engine.status().contexts[0]?.state, State.ESTABLISHED);
}

const peerLoc = (h: Host, address: string) => h.engine.status().contexts[0]!.peerLocators.find((l) => l.address === address);

test('a locator outside the HBA set is signed (CGA method) in I2, verified by the peer, and carries traffic after a probe', () => {
  const net = new Loop(20);
  const a = cgaHost(net, 'A', 51);
  const b = net.add('B', 52, B_PREFIXES, { profile: 'fast' });
  establish(net, a, b);
  const i2 = decodeMessage(net.log.find((l) => l.host === 'A' && l.bytes[2] === I2)!.bytes);
  assert.deepEqual(findOption(i2, 'LocatorList')!.locators.map((l) => l.verificationMethod), [1, 1, 2]);
  assert.ok(findOption(i2, 'CgaSignature')!.signature.length === 128, 'RSA-1024 PKCS#1 v1.5 signature');
  assert.equal(peerLoc(b, A_EXTRA)?.verified, true);
  // Only the CGA locator still works: B must re-home onto it (verified + probed).
  for (const la of a.locators.slice(0, 2)) for (const lb of b.locators) { net.block(la, lb); net.block(lb, la); }
  for (let t = 0; t < 40; t++) { net.sendPayload(b, a); net.sendPayload(a, b); net.run(net.now + 100); }
  const moved = b.events.filter((e) => e.kind === 'locator-pair-changed').at(-1);
  assert.ok(moved && moved.kind === 'locator-pair-changed', 'B re-homed');
  assert.equal(moved.new.peer, A_EXTRA);
  assert.ok(a.delivered.length > 0 && b.delivered.at(-1) !== undefined);
});

test('Update Request adding a CGA locator: signature over the new generation verified, merged', () => {
  const net = new Loop(20);
  const a = cgaHost(net, 'A', 53);
  const b = net.add('B', 54, B_PREFIXES, { profile: 'fast' });
  establish(net, a, b);
  const added = '2001:db8:a8::8';
  a.locators.push(added);
  a.engine.setLocalLocators(net.now, a.locators.map((address) => ({ address })));
  net.run(net.now + 1000);
  const upd = decodeMessage(net.log.find((l) => l.host === 'A' && l.bytes[2] === UPDATE_REQUEST)!.bytes);
  assert.deepEqual(findOption(upd, 'LocatorList')!.locators.map((l) => l.verificationMethod), [1, 1, 2, 2]);
  assert.equal(peerLoc(b, added)?.verified, true);
  assert.ok(b.events.some((e) => e.kind === 'locator-set-updated' && e.locators.includes(added)));
  assert.ok(!net.log.some((l) => l.host === 'B' && l.bytes[2] === 7), 'no Error sent');
});

/** Send a crafted Update Request from A to B; return B's Error. */
function forgeUpdate(net: Loop, a: Host, b: Host, options: Shim6Option[]): ErrorMessage {
  const sb = b.engine.status().contexts[0]!;
  const before = JSON.stringify(sb.peerLocators);
  const bytes = encodeMessage({ type: 'UpdateRequest', contextTag: sb.contextTag, requestNonce: 7, options });
  assert.deepEqual(b.engine.handleDatagram(net.now, { src: a.ulid, dst: b.ulid, bytes }), { kind: 'drop', reason: 'locator-unverified' });
  assert.equal(JSON.stringify(b.engine.status().contexts[0]!.peerLocators), before, 'Ls(peer) unchanged');
  const out = decodeMessage(b.engine.pollTransmit()!.bytes);
  assert.equal(out.type, 'Error');
  return out as ErrorMessage;
}

test('bad, missing, stale or foreign CGA signatures → Error code 2 pointing at the CGA method octet', () => {
  const net = new Loop(20);
  const a = cgaHost(net, 'A', 55);
  const b = net.add('B', 56, B_PREFIXES, { profile: 'fast' });
  establish(net, a, b);
  const gen = (a.engine.status().localGeneration + 1) >>> 0;
  const evil = '2001:db8:666::1';
  const list: Shim6Option = { type: 'LocatorList', critical: false, generation: gen, locators: [{ address: a.locators[0]!, verificationMethod: 1 }, { address: evil, verificationMethod: 2 }] };
  const signatures: [string, Uint8Array | undefined][] = [
    ['missing', undefined],
    ['foreign key', signCgaLocators(OTHER.privateKey, gen, [evil])],
    ['stale generation', signCgaLocators(KEY.privateKey, gen - 1, [evil])],
    ['other locators', signCgaLocators(KEY.privateKey, gen, ['2001:db8:666::2'])],
  ];
  for (const [why, signature] of signatures) {
    const opts: Shim6Option[] = signature === undefined ? [list] : [list, { type: 'CgaSignature', critical: false, signature }];
    const err = forgeUpdate(net, a, b, opts);
    assert.equal(err.errorCode, 2, why);
    assert.equal(err.offendingPacket[err.pointer], 2, `${why}: Pointer names the CGA verification method octet`);
    assert.equal(err.offendingPacket[err.pointer - 1], 1, `${why}: the octet before is the HBA entry's`);
  }
  // The genuine key over the same list is accepted: the checks above failed for their reason only.
  const good: Shim6Option[] = [list, { type: 'CgaSignature', critical: false, signature: signCgaLocators(KEY.privateKey, gen, [evil]) }];
  const bytes = encodeMessage({ type: 'UpdateRequest', contextTag: b.engine.status().contexts[0]!.contextTag, requestNonce: 8, options: good });
  assert.equal(b.engine.handleDatagram(net.now, { src: a.ulid, dst: b.ulid, bytes }).kind, 'consumed');
  assert.equal(peerLoc(b, evil)?.verified, true);
});

test('an HBA-only PDS (no key, P = 0) proves no CGA-method locator, whatever the signature', () => {
  const net = new Loop(20);
  const a = net.add('A', 57, A_PREFIXES, { profile: 'fast' });
  const b = net.add('B', 58, B_PREFIXES, { profile: 'fast' });
  establish(net, a, b);
  const gen = (a.engine.status().localGeneration + 1) >>> 0;
  const list: Shim6Option = { type: 'LocatorList', critical: false, generation: gen, locators: [{ address: '2001:db8:666::1', verificationMethod: 2 }] };
  const err = forgeUpdate(net, a, b, [list, { type: 'CgaSignature', critical: false, signature: signCgaLocators(OTHER.privateKey, gen, ['2001:db8:666::1']) }]);
  assert.equal(err.errorCode, 2);
  assert.equal(err.offendingPacket[err.pointer], 2);
});

test('a pure CGA host (no Multi-Prefix extension): ULID is a CGA of the PDS, its other locators are signed', () => {
  const net = new Loop(20);
  const g = generateCga({ subnetPrefix: '2001:db8:c1::/64', publicKey: KEY.spki, sec: 1, randomBytes: bytesFrom(59) });
  const other = '2001:db8:c2::5';
  const a = net.addIdentity('A', 59, { ulid: g.address, locators: [g.address, other], cgaParams: g.params }, { profile: 'fast', cgaKey: KEY.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string });
  const b = net.add('B', 60, B_PREFIXES, { profile: 'fast' });
  establish(net, b, a); // B initiates: A's signed list travels in its R2
  const r2 = decodeMessage(net.log.find((l) => l.host === 'A' && l.bytes[2] === R2)!.bytes);
  assert.deepEqual(findOption(r2, 'LocatorList')!.locators.map((l) => l.verificationMethod), [2, 2]);
  assert.ok(findOption(r2, 'CgaSignature') !== undefined);
  assert.equal(peerLoc(b, other)?.verified, true);
});

test('CGA configuration errors are UsageErrors with stable codes', () => {
  const set = generateHbaSet({ prefixes: A_PREFIXES, sec: 0, publicKey: KEY.spki, randomBytes: bytesFrom(61) });
  const hbaOnly = generateHbaSet({ prefixes: A_PREFIXES, sec: 0, randomBytes: bytesFrom(62) });
  const locs = set.members.map((m) => ({ address: m.address }));
  const make = (extra: object) => () => new Engine({ localLocators: locs, ...extra }, new SimRng(1));
  const code = (c: string) => (e: unknown) => e instanceof UsageError && e.code === c;
  assert.throws(make({ cgaKey: KEY.privateKey }), code('NO_CGA_PARAMS'));
  assert.throws(make({ cgaKey: OTHER.privateKey, cgaParams: set.members[0]!.params }), code('CGA_KEY_MISMATCH'));
  assert.throws(make({ cgaKey: KEY.privateKey, cgaParams: hbaOnly.members[0]!.params }), code('CGA_KEY_MISMATCH'));
  assert.throws(make({ cgaKey: generateKeyPairSync('ed25519').privateKey, cgaParams: set.members[0]!.params }), code('BAD_CGA_KEY'));
  assert.throws(make({ cgaKey: 'not a key' }), code('BAD_CGA_KEY'));
  assert.throws(() => new Engine({ localLocators: [{ address: locs[0]!.address, verification: 'cga' }], cgaParams: set.members[0]!.params }, new SimRng(1)), code('NO_CGA_KEY'));
  assert.ok(make({ cgaKey: KEY.privateKey.export({ type: 'pkcs8', format: 'der' }), cgaParams: set.members[0]!.params })() instanceof Engine);
});

test('an I2 whose CGA Signature does not prove its CGA-method locators is dropped whole: no context, no R2 (RFC 5533 §7.2)', () => {
  const net = new Loop(20);
  const a = cgaHost(net, 'A', 63);
  const b = net.add('B', 64, B_PREFIXES, { profile: 'fast' });
  a.engine.prime(net.now, { ulid: b.ulid, locators: [], ttl: 300, source: 'configured' });
  // Let the I1 and B's R1 through, then hold A's I2 back to deliver it by hand.
  for (let t = 0; t < 300 && !net.log.some((l) => l.host === 'B' && l.bytes[2] === 2); t += 1) net.run(net.now + 1);
  net.block(a.ulid, b.ulid);
  net.run(net.now + 50);
  const sent = net.log.find((l) => l.host === 'A' && l.bytes[2] === I2);
  assert.ok(sent, 'A sent its I2');
  const i2 = decodeMessage(sent.bytes);
  const sig = findOption(i2, 'CgaSignature')!.signature;
  const tampered = encodeMessage({ ...i2, options: i2.options.map((o) => (o.type === 'CgaSignature' ? { ...o, signature: sig.map((x, i) => (i === 0 ? x ^ 1 : x)) } : o)) } as typeof i2);
  assert.deepEqual(b.engine.handleDatagram(net.now, { src: sent.src, dst: sent.dst, bytes: tampered }), { kind: 'drop', reason: 'locator-unverified' });
  assert.equal(b.engine.status().contexts.length, 0, 'no context at B');
  assert.equal(b.engine.pollTransmit(), undefined, 'no R2');
  // The genuine I2 is accepted: the tampered one failed for its signature only.
  assert.equal(b.engine.handleDatagram(net.now, { src: sent.src, dst: sent.dst, bytes: sent.bytes }).kind, 'consumed');
  assert.equal(b.engine.status().contexts[0]?.state, State.ESTABLISHED);
  assert.equal(peerLoc(b, A_EXTRA)?.verified, true);
});

test('renumbering: an Update Request that no longer lists the locator in use (the ULID\'s address) moves both ends off it; the ULID stays the identity', () => {
  const net = new Loop(20);
  const a = cgaHost(net, 'A', 65);
  const b = net.add('B', 66, B_PREFIXES, { profile: 'fast' });
  establish(net, a, b);
  assert.equal(b.engine.status().contexts[0]!.pair.peer, a.ulid, 'B sends to A\'s ULID');
  const left = a.locators.filter((l) => l !== a.ulid);
  a.engine.setLocalLocators(net.now, left.map((address) => ({ address })));
  for (let t = 0; t < 20; t++) { net.sendPayload(b, a); net.sendPayload(a, b); net.run(net.now + 100); }
  const sb = b.engine.status().contexts[0]!;
  assert.ok(left.includes(sb.pair.peer), `B moved to a listed locator of A (now ${sb.pair.peer})`);
  assert.equal((peerLoc(b, a.ulid)!.flags & 1), 1, 'the withdrawn address is no destination');
  assert.ok(left.includes(a.engine.status().contexts[0]!.pair.local), 'A sends from a locator it still has');
  assert.equal(sb.peerUlid, a.ulid);
  const before = b.delivered.length;
  net.sendPayload(a, b);
  net.run(net.now + 100);
  assert.equal(b.delivered.length, before + 1, 'payload still flows');
});
