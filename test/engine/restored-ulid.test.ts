// A ULID kept from before a restart (docs/operations.md "Protection that lasts") that is not the
// engine's own ULID carries its own proof: the contexts whose local ULID it is send its own CGA
// Parameter Data Structure (an HBA member's, with its prefix in the Subnet Prefix field, RFC 5535
// §6 step 6.5; a CGA's own, RFC 3972 §4), not the one of the engine's ULID. A peer that checks the
// binding of ULID and PDS as RFC 5535 §7.1 / RFC 3972 §5 say (the PDS "corresponds to the
// ULID(peer)", RFC 5533 §7.13) accepts the context; with the engine's PDS it refused it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { Sim } from '../sim/sim.ts';
import { addLinkedShimHost, engineEvents, hbaIdentity, sendShim, shimDeliveries, type ShimHost } from '../sim/shim-hosts.ts';
import { sent } from '../sim/trace.ts';
import { State } from '../../shim/engine/index.ts';
import { hbaVerifier, type LocatorVerifier } from '../../shim/engine/verify.ts';
import type { LocalLocator } from '../../shim/engine/config.ts';
import { findOption } from '../../shim/wire/index.ts';
import { generateHbaSet } from '../../shim/wire/hba.ts';
import { generateCga, verifyCga } from '../../shim/wire/cga.ts';
import { UsageError } from '../../shim/errors.ts';
import { HBA_PARAMS_FORMAT, type HbaParamsFile } from '../../shim/wire/hba-params.ts';
import { Daemon, keptFromBefore, liveContexts, orderLocators, withRestored } from '../../shim/daemon/daemon.ts';
import { checkHbaMembers } from '../../shim/daemon/start-checks.ts';
import { chooseRestored, connectionsByLocal, keptUlidsView, MAX_RESTORED_ULIDS, peersOfRestored, restoredCheckMs, unusedRestored } from '../../shim/daemon/restored.ts';
import { schemaProblems } from '../../shim/daemon/status-schema.ts';
import { formatStatus } from '../../cli/commands/status.ts';
import { generateCgaUlid } from '../../shim/daemon/cga-identity.ts';
import type { LocalAddress, LocatorDiff } from '../../shim/daemon/locators.ts';
import type { OpenConnection } from '../../shim/daemon/open-connections.ts';
import { Logger } from '../../shim/log.ts';
import { SimRng } from '../helpers/rng.ts';

const A_PREFIXES = ['2001:db8:a1::/64', '2001:db8:a2::/64', '2001:db8:a3::/64'];
const B_PREFIXES = ['2001:db8:b1::/64', '2001:db8:b2::/64'];

function bytesFrom(seed: number): (n: number) => Uint8Array {
  const rng = new SimRng(seed);
  return (n) => { const b = new Uint8Array(n); rng.fill(b); return b; };
}

const rsa = (): { privateKey: KeyObject; spki: Uint8Array } => {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 1024 });
  return { privateKey, spki: new Uint8Array(publicKey.export({ type: 'spki', format: 'der' })) };
};

/**
 * A peer that checks the PDS of an I2/R2/Update against the claimed ULID as RFC 5535 §7.1 says
 * (RFC 3972 §5 on the PDS as sent: its Subnet Prefix must be the ULID's), and the other locators
 * as the default verifier does (HBA set membership, RFC 5535 §7.2; CGA Signature).
 */
function strictVerifier(): LocatorVerifier {
  const base = hbaVerifier();
  return { verify: base.verify, ownsUlid: (ulid, params) => verifyCga(ulid, params) };
}

/** B: an HBA-only host over B's prefixes checking our PDS strictly, A known to it as shim6-capable is not needed (A initiates). */
const peerB = (sim: Sim, verifier: LocatorVerifier = strictVerifier()): ShimHost => addLinkedShimHost(sim, 'b', hbaIdentity(B_PREFIXES, sim.rng.fork()), { verifier });

/** A's configuration knows B (so `protect` starts the exchange at once, as after a restart with the cache file read). */
const knowsB = (b: ShimHost) => ({ peers: [{ ulid: b.ulid, mode: 'configured' as const, locators: [...b.locators] }] });

/** A protects the connection bound to `ulid` and both ends reach ESTABLISHED on that ULID pair. */
function protectAndSettle(sim: Sim, a: ShimHost, b: ShimHost, ulid: string): void {
  assert.equal(a.engine.protect(sim.now, b.ulid, ulid), true);
  sim.runFor(2000);
  const mine = a.engine.status().contexts;
  assert.deepEqual(mine.map((c) => [c.localUlid, c.state]), [[ulid, State.ESTABLISHED]], 'A: the context of the connection is up');
  const theirs = b.engine.status().contexts;
  assert.deepEqual(theirs.map((c) => [c.peerUlid, c.state]), [[ulid, State.ESTABLISHED]], 'B accepted the ULID with the proof A sent');
  assert.equal(engineEvents(b).some((e) => e.kind === 'ulid-refused'), false);
  const before = shimDeliveries(sim, b).length;
  assert.equal(sendShim(sim, a, b, ulid), true, 'the connection\'s packets go through the context');
  sim.runFor(200);
  assert.equal(shimDeliveries(sim, b).length, before + 1);
}

/** The PDS of every I2 / Update Request A sent. */
const sentPds = (sim: Sim): Array<{ type: string; pds: Uint8Array | undefined }> => sent(sim, 'a')
  .filter((l) => l.type === 'I2' || l.type === 'UpdateRequest')
  .map((l) => ({ type: l.type, pds: findOption(l.message!, 'CgaParameterDataStructure')?.pds }));

test('a restored ULID that is the second member of the HBA set sends its own PDS; a peer checking the binding (RFC 5535 §7.1) accepts it', () => {
  const sim = new Sim(61);
  const set = generateHbaSet({ prefixes: A_PREFIXES, sec: 0, randomBytes: bytesFrom(61) });
  const [m1, m2, m3] = set.members as [typeof set.members[0], typeof set.members[0], typeof set.members[0]];
  const b = peerB(sim);
  // After the restart: the address of the second member (a2) is gone; A's ULID is the first member,
  // and the second is kept BROKEN among the locators, with its own PDS, for the connection bound to it.
  const locals: LocalLocator[] = [{ address: m1.address }, { address: m3.address }, { address: m2.address, flags: 0x01, cgaParams: m2.params }];
  const a = addLinkedShimHost(sim, 'a', { ulid: m1.address, locators: [m1.address, m3.address], params: m1.params }, { localLocators: locals, ...knowsB(b) });
  protectAndSettle(sim, a, b, m2.address);
  const i2 = sentPds(sim).find((m) => m.type === 'I2')!;
  assert.deepEqual(i2.pds, m2.params, 'the I2 carries the second member\'s own PDS');
  // A locator change later (Update Request) carries it too, and B takes the new list.
  a.engine.setLocalLocators(sim.now, [{ address: m1.address }, { address: m3.address, flags: 0x01 }, { address: m2.address, flags: 0x01, cgaParams: m2.params }]);
  sim.runFor(1000);
  const upd = sentPds(sim).filter((m) => m.type === 'UpdateRequest');
  assert.ok(upd.length > 0 && upd.every((m) => Buffer.from(m.pds!).equals(m2.params)), 'every Update Request of the context carries the second member\'s PDS');
  assert.equal(b.engine.status().contexts[0]!.peerLocators.find((l) => l.address === m3.address)?.flags, 0x01, 'B took the Update');
});

test('with the lenient default verifier (RFC 5535 §7.2 substitution) the second member was accepted with any member\'s PDS, and still is', () => {
  const sim = new Sim(62);
  const set = generateHbaSet({ prefixes: A_PREFIXES, sec: 0, randomBytes: bytesFrom(62) });
  const [m1, m2, m3] = set.members as [typeof set.members[0], typeof set.members[0], typeof set.members[0]];
  const b = peerB(sim, hbaVerifier());
  const locals: LocalLocator[] = [{ address: m1.address }, { address: m3.address }, { address: m2.address, flags: 0x01, cgaParams: m2.params }];
  const a = addLinkedShimHost(sim, 'a', { ulid: m1.address, locators: [m1.address, m3.address], params: m1.params }, { localLocators: locals, ...knowsB(b) });
  protectAndSettle(sim, a, b, m2.address);
});

test('a restored CGA ULID (the key\'s CGA on a prefix that is gone) sends its own PDS, signed with the same key; the peer accepts it', () => {
  const sim = new Sim(63);
  const key = rsa();
  const old = generateCga({ subnetPrefix: '2001:db8:a1::/64', publicKey: key.spki, sec: 0, randomBytes: bytesFrom(631) });
  const now = generateCga({ subnetPrefix: '2001:db8:a2::/64', publicKey: key.spki, sec: 0, randomBytes: bytesFrom(632) });
  const other = '2001:db8:a3::7'; // a plain address of the host: a CGA-method locator, signed
  const b = peerB(sim, hbaVerifier());
  const locals: LocalLocator[] = [{ address: now.address }, { address: other }, { address: old.address, flags: 0x01, cgaParams: old.params }];
  const a = addLinkedShimHost(sim, 'a', { ulid: now.address, locators: [now.address, other], params: now.params }, { localLocators: locals, cgaKey: key.privateKey, ...knowsB(b) });
  protectAndSettle(sim, a, b, old.address);
  const i2 = sentPds(sim).find((m) => m.type === 'I2')!;
  assert.deepEqual(i2.pds, old.params, 'the I2 carries the old CGA\'s own PDS');
  // The engine's own ULID still sends its own PDS on its contexts.
  assert.equal(a.engine.protect(sim.now, b.ulid), true);
  sim.runFor(2000);
  assert.deepEqual(b.engine.status().contexts.map((c) => [c.peerUlid, c.state]).sort(), [[now.address, State.ESTABLISHED], [old.address, State.ESTABLISHED]].sort());
});

test('a locator\'s own PDS must prove it and hold the engine\'s key', () => {
  const sim = new Sim(64);
  const key = rsa();
  const set = generateHbaSet({ prefixes: A_PREFIXES, sec: 0, randomBytes: bytesFrom(64) });
  const c = generateCga({ subnetPrefix: '2001:db8:a1::/64', publicKey: rsa().spki, sec: 0, randomBytes: bytesFrom(641) });
  const [m1, m2] = set.members as [typeof set.members[0], typeof set.members[0]];
  const add = (locals: LocalLocator[], extra: object = {}) => addLinkedShimHost(sim, `a${sim.hosts.length}`, { ulid: m1.address, locators: [m1.address], params: m1.params }, { localLocators: locals, ...extra });
  assert.throws(() => add([{ address: m1.address }, { address: m2.address, cgaParams: m2.params.map((x, i) => (i === 0 ? x ^ 1 : x)) }]), (e: unknown) => e instanceof UsageError && e.code === 'ECGA_PARAMS', 'a PDS that does not prove its address');
  assert.throws(() => add([{ address: m1.address }, { address: c.address, cgaParams: c.params }], { cgaKey: key.privateKey, cgaParams: generateHbaSet({ prefixes: A_PREFIXES, sec: 0, publicKey: key.spki, randomBytes: bytesFrom(642) }).members[0]!.params }),
    (e: unknown) => e instanceof UsageError && e.code === 'ECGA_KEY_MISMATCH', 'a CGA of another key');
});

/** The HBA parameters file of a set, as `zone hba --out` writes it and the daemon reads it. */
const hbaFile = (set: ReturnType<typeof generateHbaSet>): HbaParamsFile => ({
  format: HBA_PARAMS_FORMAT, sec: 0, publicKeyIncluded: set.publicKeyIncluded, publicKey: Buffer.from(set.publicKey).toString('hex'),
  members: set.members.map((m) => ({ prefix: m.prefix, address: m.address, params: Buffer.from(m.params).toString('hex') })),
});
const quiet = (): Logger => new Logger({ level: 'error', format: 'json', component: 'test' });

/** The first three members of an HBA set. */
type HbaMember = ReturnType<typeof generateHbaSet>['members'][number];
type HbaMembers = [HbaMember, HbaMember, HbaMember];

/**
 * A's restart with its HBA set from `seed`: member m2 (the address of `openOf`'s connections, gone
 * from the host) kept from before (keptFromBefore), the host's addresses `foundOf`, A's locators in
 * the daemon's order (`ulidOf`: orderLocators' own ULID), A started on them with B known, and A's
 * protection of m2's connection with B settled.
 */
function restartWithKept(seed: number, foundOf: (m: HbaMembers) => LocalAddress[], openOf: (m: HbaMembers, b: ShimHost) => OpenConnection[], ulidOf?: (m: HbaMembers) => string) {
  const sim = new Sim(seed);
  const set = generateHbaSet({ prefixes: A_PREFIXES, sec: 0, randomBytes: bytesFrom(seed) });
  const m = set.members as HbaMembers;
  const [m1, m2, m3] = m;
  const b = peerB(sim);
  const hba = hbaFile(set);
  const found = foundOf(m);
  const open = openOf(m, b);
  const restored = keptFromBefore([m2.address], open, hba, undefined, undefined, quiet());
  const locals = orderLocators(found, hba, undefined, ulidOf?.(m), restored);
  const a = addLinkedShimHost(sim, 'a', { ulid: m1.address, locators: [m1.address, m3.address], params: m1.params }, { localLocators: locals, ...knowsB(b) });
  protectAndSettle(sim, a, b, m2.address);
  return { m1, m2, m3, b, hba, found, open, restored, locals, a };
}

test('the daemon\'s restart: a kept HBA member is the second one, after the members still there, with its own PDS; its context comes up with a peer checking the binding', () => {
  const { m1, m2, m3, restored, locals } = restartWithKept(65,
    ([m1, , m3]) => [{ address: m3.address, ifname: 'q', up: true }, { address: m1.address, ifname: 'p', up: true }],
    ([, m2], b) => [{ local: m2.address, peer: b.ulid, proto: 'tcp' }]);
  assert.deepEqual([...restored], [[m2.address, m2.params]], 'the member\'s own parameters');
  assert.deepEqual(locals.map((l) => [l.address, l.flags]), [[m1.address, 0], [m3.address, 0], [m2.address, 1]]);
});

test('the daemon\'s restart with a CGA key and no HBA set: a former CGA ULID is proven by the CGA our key makes on its prefix; others are left alone', () => {
  const { privateKey, spki } = rsa();
  const key = { file: 'k.pem', key: privateKey, spki, bits: 1024 };
  const old = generateCgaUlid(key, '2001:db8:a1::1', 0);
  const other = generateCgaUlid({ ...key, key: rsa().privateKey }, '2001:db8:a1::1', 0).address; // someone else's key: no proof of ours
  const open: OpenConnection[] = [{ local: old.address, peer: '2001:db8:b1::1', proto: 'tcp' }, { local: other, peer: '2001:db8:b1::1', proto: 'udp' }];
  const kept = keptFromBefore([old.address, other], open, undefined, key, 0, quiet());
  assert.deepEqual([...kept], [[old.address, old.params]]);
  assert.equal(verifyCga(old.address, kept.get(old.address)!), true);
});

test('the restart keeps at most MAX_RESTORED_ULIDS, the most used first, only those it can prove; one peer of each for the cache file', () => {
  const ulids = Array.from({ length: MAX_RESTORED_ULIDS + 3 }, (_, i) => `2001:db8:a1::${(i + 1).toString(16)}`);
  const open: OpenConnection[] = ulids.flatMap((u, i) => Array.from({ length: i % 3 === 0 ? 2 : 1 }, (_, k) => ({ local: u, peer: `2001:db8:b1::${k + 1}`, proto: 'tcp' as const })));
  const choice = chooseRestored(ulids, open, (u) => (u.endsWith('::2') ? undefined : Uint8Array.of(1)));
  assert.equal(choice.kept.size, MAX_RESTORED_ULIDS);
  assert.deepEqual(choice.unproven, ['2001:db8:a1::2']);
  assert.equal(choice.over.length, 2);
  const twice = ulids.filter((_, i) => i % 3 === 0);
  assert.deepEqual([...choice.kept.keys()].slice(0, twice.length), twice, 'those with more open connections first');
  assert.deepEqual([...peersOfRestored(['2001:db8:a1::1', '2001:db8:a1::5'], open)], [['2001:db8:a1::1', '2001:db8:b1::1'], ['2001:db8:a1::5', '2001:db8:b1::1']]);
  assert.deepEqual([restoredCheckMs(600_000), restoredCheckMs(120_000), restoredCheckMs(1500), restoredCheckMs(10)], [60_000, 60_000, 1500, 1000], 'every minute, or every idle timeout when shorter');
});

test('a restored ULID whose connections are gone is dropped once no context uses it: the engine stops announcing it, the cache file stops keeping it', () => {
  const sim = new Sim(66);
  const set = generateHbaSet({ prefixes: A_PREFIXES, sec: 0, randomBytes: bytesFrom(66) });
  const [m1, m2, m3] = set.members as [typeof set.members[0], typeof set.members[0], typeof set.members[0]];
  const b = peerB(sim);
  const hba = hbaFile(set);
  const found: LocalAddress[] = [{ address: m1.address, ifname: 'p', up: true }, { address: m3.address, ifname: 'q', up: true }];
  let open: OpenConnection[] = [{ local: m2.address, peer: b.ulid, proto: 'tcp' }];
  const restored = keptFromBefore([m2.address], open, hba, undefined, undefined, quiet());
  const a = addLinkedShimHost(sim, 'a', { ulid: m1.address, locators: [m1.address, m3.address], params: m1.params }, { localLocators: orderLocators(found, hba, undefined, undefined, restored), ...knowsB(b) });
  protectAndSettle(sim, a, b, m2.address);
  assert.equal(a.engine.protect(sim.now, b.ulid), true, 'and a context of A\'s own ULID with B');
  sim.runFor(2000);
  /** One check of the daemon's timer (Daemon.checkRestored): what it would release now. */
  const check = (): string[] => unusedRestored(restored.keys(), open, a.engine.traffic());
  assert.deepEqual(check(), [], 'the connection is open');
  const peers = peersOfRestored(restored.keys(), open);
  open = []; // the application closed it
  assert.deepEqual(check(), [], 'its context is still there (it ends by the idle timer)');
  // A's own context stays busy; the restored ULID's context goes quiet and the idle timer (fast profile: 120 s) removes it.
  for (let t = 0; t < 14; t++) { sendShim(sim, a, b); sim.runFor(10_000); }
  assert.deepEqual(a.engine.traffic().map((c) => c.localUlid), [m1.address]);
  assert.ok(withRestored(liveContexts(a.engine), peers).some((c) => c.localUlid === m2.address), 'until it is released, the cache file keeps the ULID (an idle connection\'s)');
  assert.deepEqual(check(), [m2.address], 'released at the next check');
  restored.delete(m2.address);
  const seen = sent(sim, 'a').length;
  a.engine.setLocalLocators(sim.now, orderLocators(found, hba, undefined, m1.address, restored));
  sim.runFor(1000);
  const upd = sent(sim, 'a').slice(seen).find((l) => l.type === 'UpdateRequest')!;
  assert.deepEqual(findOption(upd.message!, 'LocatorList')!.locators.map((l) => l.address), [m1.address, m3.address], 'A announces its locators without the released ULID');
  const theirs = b.engine.status().contexts.find((c) => c.peerUlid === m1.address)!;
  assert.equal(theirs.peerLocators.some((l) => l.address === m2.address), false, 'B no longer has it among A\'s locators');
  assert.equal(withRestored(liveContexts(a.engine), peersOfRestored(restored.keys(), open)).some((c) => c.localUlid === m2.address), false, 'the cache file no longer keeps it');
  assert.equal(a.engine.protect(sim.now, b.ulid, m2.address), false, 'no context starts on it any more');
});

test('the daemon checks every member of its HBA set at the start (each now carries its own parameters): one that does not prove its address is EHBA_PARAMS', () => {
  const set = generateHbaSet({ prefixes: A_PREFIXES, sec: 0, randomBytes: bytesFrom(67) });
  const good = hbaFile(set);
  assert.doesNotThrow(() => checkHbaMembers(good, 'hba.json', undefined));
  const bad = { ...good, members: good.members.map((m, i) => (i === 2 ? { ...m, params: good.members[0]!.params.replace(/^../, 'ff') } : m)) };
  assert.throws(() => checkHbaMembers(bad, 'hba.json', undefined), (e: unknown) => e instanceof UsageError && e.code === 'EHBA_PARAMS' && /hba\.json/.test(e.message) && e.message.includes(set.members[2]!.address));
});

test('`shim6 status` shows the kept ULIDs: why kept, BROKEN or not, what uses them, when the next check may release them', () => {
  const { m1, m2, m3, hba, found, open, restored, locals, a } = restartWithKept(67,
    ([m1, , m3]) => [{ address: m1.address, ifname: 'p', up: true }, { address: m3.address, ifname: 'q', up: true }],
    ([m1, m2], b) => [{ local: m2.address, peer: b.ulid, proto: 'tcp' }, { local: m2.address, peer: '2001:db8:c1::1', proto: 'udp' }, { local: m1.address, peer: b.ulid, proto: 'tcp' }],
    ([m1]) => m1.address);
  const present = (x: string): boolean => found.some((f) => f.address === x);
  const view = keptUlidsView({
    restored: restored.keys(), ulid: m1.address, present, locals, connections: connectionsByLocal(open, restored.keys()),
    contexts: a.engine.traffic(), now: 1000, nextCheckAt: 42_000,
  });
  assert.deepEqual(view, [{ address: m2.address, why: 'restart', broken: true, connections: 2, contexts: 1, releaseCheckInMs: 41_000 }], 'only the restored ULID: our own has its address');
  const reply = { daemon: { pid: 1, keptUlids: view } };
  assert.match(formatStatus(reply as never), new RegExp(`kept ULIDs: ${m2.address} \\(from before the restart, BROKEN; 2 open connections, 1 context; released once unused, next check in 41 s\\)`));
  assert.deepEqual(schemaProblems({ schemaVersion: 1, engine: null, resolver: null, daemon: { ...reply.daemon, keptUlids: view.map(({ releaseCheckInMs: _, ...rest }) => rest) } }).filter((p) => p.includes('keptUlids')), ['daemon.keptUlids[].releaseCheckInMs'], 'the schema has every key');

  // Renumbered: our own ULID's address is gone too (kept, BROKEN, for the daemon's life); the address of the restored one comes back (not BROKEN).
  const after: LocalAddress[] = [{ address: m3.address, ifname: 'q', up: true }, { address: m2.address, ifname: 'p', up: true }];
  const view2 = keptUlidsView({
    restored: restored.keys(), ulid: m1.address, present: (x) => after.some((f) => f.address === x), locals: orderLocators(after, hba, undefined, m1.address, restored),
    connections: new Map(), contexts: [], now: 0, nextCheckAt: undefined,
  });
  assert.deepEqual(view2, [
    { address: m1.address, why: 'ulid', broken: true, connections: null, contexts: 0, releaseCheckInMs: null },
    { address: m2.address, why: 'restart', broken: false, connections: 0, contexts: 0, releaseCheckInMs: null },
  ]);
  const text = formatStatus({ daemon: { pid: 1, keptUlids: view2 } } as never);
  assert.match(text, new RegExp(`kept ULIDs: ${m1.address} \\(our ULID, its address gone, BROKEN; 0 contexts; kept while the daemon runs\\); ${m2.address} \\(from before the restart, not BROKEN; 0 open connections, 0 contexts; no check scheduled\\)`));
  assert.doesNotMatch(formatStatus({ daemon: { pid: 1, keptUlids: [] } } as never), /kept ULIDs/, 'no line without kept ULIDs');
});

// While the daemon runs, an address that is the local ULID of a live context but not the daemon's
// own ULID (discovery takes the flow's source; a privacy address; a second prefix) is kept when the
// host loses it, as the daemon's own ULID and the ULIDs kept from before a restart are: its `local`
// route stays (the peer's packets to it are still delivered) and it stays among the locators,
// BROKEN, until no open connection and no context uses it. Unit level: Daemon's onLocators and its
// check of the kept ULIDs with stand-ins for the routes, driver and engine.
const OWN = '2001:db8:1::a'; // the daemon's ULID (first address)
const OTHER = '2001:db8:2::a'; // the host's other address: the source of a discovered flow
const PEER = '2001:db8:99::1';

function locatorsHarness(contexts: Array<{ localUlid: string; peerUlid: string }>) {
  const dropped: string[] = [];
  const sets: Array<Array<{ address: string; flags?: number }>> = [];
  const logged: string[] = [];
  const engine = {
    setLocalLocators: (_t: number, l: Array<{ address: string; flags?: number }>) => { sets.push(l); },
    localLocatorDown: () => undefined,
    traffic: () => contexts.map((c) => ({ ...c, contextTag: 1, bytesIn: 0, bytesOut: 0 })),
  };
  const self = Object.assign(Object.create(Daemon.prototype) as object, {
    log: { info: (msg: string) => { logged.push(msg); }, warn: () => undefined, debug: () => undefined },
    engine,
    driver: { command: (fn: (e: typeof engine, now: number) => unknown) => fn(engine, 0), bindLocator: async () => 5533, unbindLocator: async () => undefined },
    routes: { keepLocals: () => [], dropLocal: (a: string) => { dropped.push(a); } },
    config: { timers: { profile: 'fast', overrides: {} } }, opts: { dataPlaneOff: {} },
    ulid: OWN, restored: new Map(), keptLive: new Set(), restoredPeers: new Map(), restoredConnections: new Map(), hba: undefined, cgaUlid: undefined, dns: undefined,
    found: [{ address: OWN, ifname: 'p', up: true }, { address: OTHER, ifname: 'q', up: true }] as LocalAddress[],
  }) as { restoredTimer?: NodeJS.Timeout };
  const proto = Daemon.prototype as unknown as {
    onLocators: (now: LocalAddress[], d: LocatorDiff) => void; checkRestored: () => void; keptUlids: () => Array<{ address: string; why: string }>;
  };
  return {
    onLocators: proto.onLocators.bind(self), check: proto.checkRestored.bind(self), kept: proto.keptUlids.bind(self),
    stop: () => { clearInterval(self.restoredTimer); }, dropped, sets, logged,
  };
}

const removed = (addresses: string[]): LocatorDiff => ({ added: [], removed: addresses, wentDown: [], cameUp: [], deprecated: [], renewed: [] });
const brokenIn = (set: Array<{ address: string; flags?: number }> | undefined, a: string): boolean => set?.some((l) => l.address === a && ((l.flags ?? 0) & 1) === 1) === true;

test('the daemon\'s own ULID removed from the host stays deliverable and among the locators (BROKEN)', (t) => {
  const h = locatorsHarness([{ localUlid: OWN, peerUlid: PEER }]);
  t.after(h.stop);
  h.onLocators([{ address: OTHER, ifname: 'q', up: true }], removed([OWN]));
  assert.deepEqual(h.dropped, []);
  assert.ok(brokenIn(h.sets.at(-1), OWN));
});

test('an address removed from the host while it is the local ULID of a live context stays deliverable and among the locators (BROKEN) until no context uses it', (t) => {
  const contexts = [{ localUlid: OTHER, peerUlid: PEER }];
  const h = locatorsHarness(contexts);
  t.after(h.stop);
  h.onLocators([{ address: OWN, ifname: 'p', up: true }], removed([OTHER]));
  assert.deepEqual(h.dropped, [], `the local route of ${OTHER}, the ULID of the live context with ${PEER}, was dropped: the peer's packets to it are no longer delivered`);
  assert.ok(brokenIn(h.sets.at(-1), OTHER), `${OTHER} left the locator set (or is not BROKEN) though a context names it as its ULID`);
  assert.ok(h.logged.includes('ULIDs kept after their address was removed'));
  assert.deepEqual(h.kept().map((k) => [k.address, k.why]), [[OTHER, 'context']], 'shim6 status shows it as a context\'s ULID');
  assert.match(formatStatus({ daemon: { pid: 1, keptUlids: h.kept() } } as never), new RegExp(`kept ULIDs: ${OTHER} \\(a context's ULID, its address gone, BROKEN; 0 open connections, 1 context; released once unused, next check in `));
  h.check();
  assert.deepEqual(h.dropped, [], 'kept while its context lives');
  contexts.length = 0; // the context ended (its connection closed, the idle timer)
  h.check(); // no open connection of this host has that documentation address as its local one
  assert.deepEqual(h.dropped, [OTHER], 'released: its local route goes');
  assert.equal(h.sets.at(-1)!.some((l) => l.address === OTHER), false, 'and it leaves the locator set');
  assert.ok(h.logged.includes('ULIDs kept after their address was removed released'));
  assert.deepEqual(h.kept(), []);
});

test('an address removed from the host that no context uses leaves the locator set and loses its local route at once', (t) => {
  const h = locatorsHarness([{ localUlid: OWN, peerUlid: PEER }]);
  t.after(h.stop);
  h.onLocators([{ address: OWN, ifname: 'p', up: true }], removed([OTHER]));
  assert.deepEqual(h.dropped, [OTHER]);
  assert.equal(h.sets.at(-1)!.some((l) => l.address === OTHER), false);
});

test('orderLocators: without an HBA set, usable addresses come before those down at start (the first is the ULID)', () => {
  const found = [{ address: '2001:db8:1::1', ifname: 'p', up: false }, { address: '2001:db8:2::1', ifname: 'q', up: true }];
  assert.deepEqual(orderLocators(found, undefined).map((l) => [l.address, l.flags]), [['2001:db8:2::1', 0], ['2001:db8:1::1', 0x01]]);
});
