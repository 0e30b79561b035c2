// CGA-verified locators (RFC 5533 §5.15.4, §5.15.5, §7.2; RFC 3972 §6; RFC 5535
// §3): our locators outside the HBA set are announced as CGA-method and the
// Locator List is signed with the configured key; the peer checks the signature
// against the PDS, uses such locators only when it holds, and answers a bad one
// with Error code 2 whose Pointer names the offending verification method octet.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { Sim } from '../sim/sim.ts';
import { addLinkedShimHost, engineEvents, hbaIdentity, sendShim, shimDeliveries, type ShimHost } from '../sim/shim-hosts.ts';
import { sent } from '../sim/trace.ts';
import { Engine, State } from '../../shim/engine/index.ts';
import { decodeMessage, encodeMessage, findOption, type ErrorMessage, type Shim6Option } from '../../shim/wire/index.ts';
import { generateHbaSet } from '../../shim/wire/hba.ts';
import { generateCga, signCgaLocators } from '../../shim/wire/cga.ts';
import { UsageError } from '../../shim/errors.ts';
import { SimRng } from '../helpers/rng.ts';

const A_PREFIXES = ['2001:db8:a1::/64', '2001:db8:a2::/64'];
const B_PREFIXES = ['2001:db8:b1::/64', '2001:db8:b2::/64'];
const A_EXTRA = '2001:db8:a9::77'; // not in A's HBA set: provable only by signature

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
function cgaHost(sim: Sim, name: string, seed: number): ShimHost {
  const set = generateHbaSet({ prefixes: A_PREFIXES, sec: 0, publicKey: KEY.spki, randomBytes: bytesFrom(seed) });
  const id = { ulid: set.members[0]!.address, locators: [...set.members.map((m) => m.address), A_EXTRA], params: set.members[0]!.params };
  return addLinkedShimHost(sim, name, id, { cgaKey: KEY.privateKey });
}

/** An HBA-only host over B's prefixes, linked with every host already there. */
const hbaHostB = (sim: Sim): ShimHost => addLinkedShimHost(sim, 'b', hbaIdentity(B_PREFIXES, sim.rng.fork()));

function establish(sim: Sim, a: ShimHost, b: ShimHost): void {
  a.engine.prime(sim.now, { ulid: b.ulid, locators: [], ttl: 300, source: 'configured' });
  sim.runFor(300);
  assert.equal(a.engine.status().contexts[0]?.state, State.ESTABLISHED);
  assert.equal(b.engine.status().contexts[0]?.state, State.ESTABLISHED);
}

const peerLoc = (h: ShimHost, address: string) => h.engine.status().contexts[0]!.peerLocators.find((l) => l.address === address);

test('a locator outside the HBA set is signed (CGA method) in I2, verified by the peer, and carries traffic after a probe', () => {
  const sim = new Sim(51);
  const a = cgaHost(sim, 'a', 51);
  const b = hbaHostB(sim);
  establish(sim, a, b);
  const i2 = sent(sim, 'a').find((l) => l.type === 'I2')!.message!;
  assert.deepEqual(findOption(i2, 'LocatorList')!.locators.map((l) => l.verificationMethod), [1, 1, 2]);
  assert.ok(findOption(i2, 'CgaSignature')!.signature.length === 128, 'RSA-1024 PKCS#1 v1.5 signature');
  assert.equal(peerLoc(b, A_EXTRA)?.verified, true);
  // Only the CGA locator still works: B must re-home onto it (verified + probed).
  for (const la of a.locators.slice(0, 2)) for (const lb of b.locators) sim.setLink(la, lb, { blackhole: true });
  for (let t = 0; t < 40; t++) { sendShim(sim, b, a); sendShim(sim, a, b); sim.runFor(100); }
  const moved = engineEvents(b).filter((e) => e.kind === 'locator-pair-changed').at(-1);
  assert.ok(moved && moved.kind === 'locator-pair-changed', 'B re-homed');
  assert.equal(moved.new.peer, A_EXTRA);
  assert.ok(shimDeliveries(sim, a).length > 0 && shimDeliveries(sim, b).length > 0);
});

test('Update Request adding a CGA locator: signature over the new generation verified, merged', () => {
  const sim = new Sim(53);
  const a = cgaHost(sim, 'a', 53);
  const b = hbaHostB(sim);
  establish(sim, a, b);
  const added = '2001:db8:a8::8';
  a.engine.setLocalLocators(sim.now, [...a.locators, added].map((address) => ({ address })));
  sim.runFor(1000);
  const upd = sent(sim, 'a').find((l) => l.type === 'UpdateRequest')!.message!;
  assert.deepEqual(findOption(upd, 'LocatorList')!.locators.map((l) => l.verificationMethod), [1, 1, 2, 2]);
  assert.equal(peerLoc(b, added)?.verified, true);
  assert.ok(engineEvents(b).some((e) => e.kind === 'locator-set-updated' && e.locators.includes(added)));
  assert.ok(!sent(sim, 'b').some((l) => l.type === 'Error'), 'no Error sent');
});

/** Send a crafted Update Request from A to B; return B's Error. */
function forgeUpdate(sim: Sim, a: ShimHost, b: ShimHost, options: Shim6Option[]): ErrorMessage {
  const sb = b.engine.status().contexts[0]!;
  const before = JSON.stringify(sb.peerLocators);
  const bytes = encodeMessage({ type: 'UpdateRequest', contextTag: sb.contextTag, requestNonce: 7, options });
  assert.deepEqual(b.engine.handleDatagram(sim.now, { src: a.ulid, dst: b.ulid, bytes }), { kind: 'drop', reason: 'locator-unverified' });
  assert.equal(JSON.stringify(b.engine.status().contexts[0]!.peerLocators), before, 'Ls(peer) unchanged');
  const out = decodeMessage(b.engine.pollTransmit()!.bytes);
  assert.equal(out.type, 'Error');
  return out as ErrorMessage;
}

test('bad, missing, stale or foreign CGA signatures → Error code 2 pointing at the CGA method octet', () => {
  const sim = new Sim(55);
  const a = cgaHost(sim, 'a', 55);
  const b = hbaHostB(sim);
  establish(sim, a, b);
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
    const err = forgeUpdate(sim, a, b, opts);
    assert.equal(err.errorCode, 2, why);
    assert.equal(err.offendingPacket[err.pointer], 2, `${why}: Pointer names the CGA verification method octet`);
    assert.equal(err.offendingPacket[err.pointer - 1], 1, `${why}: the octet before is the HBA entry's`);
  }
  // The genuine key over the same list is accepted: the checks above failed for their reason only.
  const good: Shim6Option[] = [list, { type: 'CgaSignature', critical: false, signature: signCgaLocators(KEY.privateKey, gen, [evil]) }];
  const bytes = encodeMessage({ type: 'UpdateRequest', contextTag: b.engine.status().contexts[0]!.contextTag, requestNonce: 8, options: good });
  assert.equal(b.engine.handleDatagram(sim.now, { src: a.ulid, dst: b.ulid, bytes }).kind, 'consumed');
  assert.equal(peerLoc(b, evil)?.verified, true);
});

test('an HBA-only PDS (no key, P = 0) proves no CGA-method locator, whatever the signature', () => {
  const sim = new Sim(57);
  const a = addLinkedShimHost(sim, 'a', hbaIdentity(A_PREFIXES, sim.rng.fork()));
  const b = hbaHostB(sim);
  establish(sim, a, b);
  const gen = (a.engine.status().localGeneration + 1) >>> 0;
  const list: Shim6Option = { type: 'LocatorList', critical: false, generation: gen, locators: [{ address: '2001:db8:666::1', verificationMethod: 2 }] };
  const err = forgeUpdate(sim, a, b, [list, { type: 'CgaSignature', critical: false, signature: signCgaLocators(OTHER.privateKey, gen, ['2001:db8:666::1']) }]);
  assert.equal(err.errorCode, 2);
  assert.equal(err.offendingPacket[err.pointer], 2);
});

test('a pure CGA host (no Multi-Prefix extension): ULID is a CGA of the PDS, its other locators are signed', () => {
  const sim = new Sim(59);
  const g = generateCga({ subnetPrefix: '2001:db8:c1::/64', publicKey: KEY.spki, sec: 1, randomBytes: bytesFrom(59) });
  const other = '2001:db8:c2::5';
  const a = addLinkedShimHost(sim, 'a', { ulid: g.address, locators: [g.address, other], params: g.params }, { cgaKey: KEY.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string });
  const b = hbaHostB(sim);
  establish(sim, b, a); // B initiates: A's signed list travels in its R2
  const r2 = sent(sim, 'a').find((l) => l.type === 'R2')!.message!;
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
  assert.throws(make({ cgaKey: KEY.privateKey }), code('ENO_CGA_PARAMS'));
  assert.throws(make({ cgaKey: OTHER.privateKey, cgaParams: set.members[0]!.params }), code('ECGA_KEY_MISMATCH'));
  assert.throws(make({ cgaKey: KEY.privateKey, cgaParams: hbaOnly.members[0]!.params }), code('ECGA_KEY_MISMATCH'));
  assert.throws(make({ cgaKey: generateKeyPairSync('ed25519').privateKey, cgaParams: set.members[0]!.params }), code('ECGA_KEY'));
  assert.throws(make({ cgaKey: 'not a key' }), code('ECGA_KEY'));
  assert.throws(() => new Engine({ localLocators: [{ address: locs[0]!.address, verification: 'cga' }], cgaParams: set.members[0]!.params }, new SimRng(1)), code('ENO_CGA_KEY'));
  assert.ok(make({ cgaKey: KEY.privateKey.export({ type: 'pkcs8', format: 'der' }), cgaParams: set.members[0]!.params })() instanceof Engine);
});

test('an I2 whose CGA Signature does not prove its CGA-method locators is dropped whole: no context, no R2 (RFC 5533 §7.2)', () => {
  const sim = new Sim(63);
  const a = cgaHost(sim, 'a', 63);
  const b = hbaHostB(sim);
  a.engine.prime(sim.now, { ulid: b.ulid, locators: [], ttl: 300, source: 'configured' });
  // Let the I1 and B's R1 through, then hold A's I2 back to deliver it by hand.
  for (let t = 0; t < 300 && !sent(sim, 'b').some((l) => l.type === 'R1'); t++) sim.runFor(1);
  sim.setLink(a.ulid, b.ulid, { blackhole: true });
  for (let t = 0; t < 300 && !sent(sim, 'a').some((l) => l.type === 'I2'); t++) sim.runFor(1);
  const i2 = sent(sim, 'a').find((l) => l.type === 'I2')!.message!;
  const genuine = encodeMessage(i2);
  const sig = findOption(i2, 'CgaSignature')!.signature;
  const tampered = encodeMessage({ ...i2, options: i2.options.map((o) => (o.type === 'CgaSignature' ? { ...o, signature: sig.map((x, k) => (k === 0 ? x ^ 1 : x)) } : o)) } as typeof i2);
  while (b.engine.pollTransmit() !== undefined) { /* drain */ }
  assert.deepEqual(b.engine.handleDatagram(sim.now, { src: a.ulid, dst: b.ulid, bytes: tampered }), { kind: 'drop', reason: 'locator-unverified' });
  assert.equal(b.engine.status().contexts.length, 0, 'no context at B');
  assert.equal(b.engine.pollTransmit(), undefined, 'no R2');
  // The genuine I2 is accepted: the tampered one failed for its signature only.
  assert.equal(b.engine.handleDatagram(sim.now, { src: a.ulid, dst: b.ulid, bytes: genuine }).kind, 'consumed');
  assert.equal(b.engine.status().contexts[0]?.state, State.ESTABLISHED);
  assert.equal(peerLoc(b, A_EXTRA)?.verified, true);
});

test('renumbering: an Update Request that no longer lists the locator in use (the ULID\'s address) moves both ends off it; the ULID stays the identity', () => {
  const sim = new Sim(65);
  const a = cgaHost(sim, 'a', 65);
  const b = hbaHostB(sim);
  establish(sim, a, b);
  assert.equal(b.engine.status().contexts[0]!.pair.peer, a.ulid, 'B sends to A\'s ULID');
  const left = a.locators.filter((l) => l !== a.ulid);
  a.engine.setLocalLocators(sim.now, left.map((address) => ({ address })));
  for (let t = 0; t < 20; t++) { sendShim(sim, b, a); sendShim(sim, a, b); sim.runFor(100); }
  const sb = b.engine.status().contexts[0]!;
  assert.ok(left.includes(sb.pair.peer), `B moved to a listed locator of A (now ${sb.pair.peer})`);
  assert.equal((peerLoc(b, a.ulid)!.flags & 1), 1, 'the withdrawn address is no destination');
  assert.ok(left.includes(a.engine.status().contexts[0]!.pair.local), 'A sends from a locator it still has');
  assert.equal(sb.peerUlid, a.ulid);
});
