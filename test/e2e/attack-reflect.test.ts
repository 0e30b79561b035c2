// E2E: REAP Probe answers are no reflector (docs/security.md, review 2026-12-05 F2). The attacker,
// on link P only, sets up an ordinary context with A's real daemon from its own address X: its ULID
// a CGA of its own key, its Locator List [X, V] signed by that key, so V — a third party (here an
// address routed to the attacker, so its capture sees what A sends there) — is a verified locator
// of the context. It then sends Probes (State Exploring, A's context tag) with V as the source and
// UDP source port 53. A user's view of success: what reaches V stays within the configured bucket,
// none of it at port 53, and `shim6 status` counts the probes left unanswered. Positive control:
// with `probeReplyLimit: off` the same probes do reach V (the tool, route and capture work).
import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { missingPrereqs } from '../helpers/prereq.ts';
import { LAB_ADDR } from '../../lab/topology.ts';
import { VerificationMethod } from '../../shim/constants.ts';
import { generateCga, signCgaLocators } from '../../shim/wire/cga.ts';
import { ATTACK_PREREQ, AttackLab, Cleanup, type StatusView , sharedLab } from './attack-fixture.ts';

const V_PREFIX = '2001:db8:77::/64';
const V = '2001:db8:77::53';
const VPORT = 53;
const PROBES = 2000;
/** A's buckets in the limited run: 10 answers per context, 30 for the host, next to nothing refills. */
const LIMITED = { probeReplyLimit: { perContext: { rate: 0.001, burst: 10 }, global: { rate: 0.001, burst: 30 } } };

const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 1024 });
const SPKI = new Uint8Array(publicKey.export({ type: 'spki', format: 'der' }));
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

const cleanup = new Cleanup('attack-reflect');
let x: AttackLab | undefined;

before(async () => {
  if (missingPrereqs(ATTACK_PREREQ).length > 0) return;
  x = await AttackLab.up(cleanup, ['a'], { a: LIMITED });
  x.attacker.addAddress(V, 'lo');
  x.routeViaAttacker(V_PREFIX, LAB_ADDR.xP);
  await x.attacker.socket('main', LAB_ADDR.xP, 5533);
  await x.attacker.socket('v', V, VPORT);
  await x.attacker.capture(LAB_ADDR.aP);
});
after(() => cleanup.run());

const lab = (t: TestContext): AttackLab | undefined => sharedLab(t, x);

/** The attacker's context: CGA ULID, [X, V] signed; A's context tag for it. */
async function context(l: AttackLab, seed: number): Promise<number> {
  let n = seed;
  const cga = generateCga({ subnetPrefix: '2001:db8:67::/64', publicKey: SPKI, sec: 0, randomBytes: (k) => Uint8Array.from({ length: k }, () => (n = (n * 1103515245 + 12345) >>> 0) >>> 24) });
  const locs = [LAB_ADDR.xP, V];
  const r = await l.attacker.handshake({
    sock: 'main', dst: LAB_ADDR.aP, claim: { sender: cga.address, receiver: LAB_ADDR.aP },
    proof: { pds: hex(cga.params), generation: 1, locators: locs.map((address) => ({ address, verificationMethod: VerificationMethod.CGA })), signature: hex(signCgaLocators(privateKey, 1, locs)) },
  });
  assert.ok(r.r2 && r.peerContextTag !== undefined, 'the attacker\'s own context is established (it may: X is its address)');
  const ctx = (await l.status()).engine.contexts.find((c) => c.peerUlid === cga.address);
  assert.equal(ctx?.peerLocators.find((p) => p.address === V)?.verified, true, 'V is verified: the CGA signature covers it');
  return r.peerContextTag;
}

/** Spray the forged probes, then wait until A has dealt with all it received (answered or limited). */
async function reflect(l: AttackLab, tag: number, count: number): Promise<{ toV: number; toVPort: number; status: StatusView }> {
  const since = Date.now();
  const before = (await l.status()).engine.guard?.probeReplies;
  const base = before === undefined ? 0 : before.sent + before.limited;
  await l.attacker.spray({ sock: 'v', dst: LAB_ADDR.aP, kind: 'probe', tag, count, batch: 50, gapMs: 5 });
  let status = await l.status();
  // A reads its socket in order; once the counters stop moving it has seen what arrived.
  for (let last = -1, i = 0; i < 100; i++) {
    const p = status.engine.guard?.probeReplies;
    const done = p === undefined ? 0 : p.sent + p.limited - base;
    if (done >= count || done === last) break;
    last = done;
    await new Promise((r) => setTimeout(r, 200));
    status = await l.status();
  }
  await new Promise((r) => setTimeout(r, 300)); // the capture's last frames
  const toV = (await l.attacker.captured({ since, src: LAB_ADDR.aP, dstIn: [V] })).count;
  const toVPort = (await l.attacker.captured({ since, src: LAB_ADDR.aP, dstIn: [V], dstPort: VPORT })).count;
  return { toV, toVPort, status };
}

test('forged probes from a CGA-listed third party: A sends V at most the bucket, never at the forged port, and counts the rest', async (t) => {
  const l = lab(t);
  if (!l) return;
  const tag = await context(l, 1);
  const r = await reflect(l, tag, PROBES);
  const p = r.status.engine.guard?.probeReplies;
  assert.ok(p, 'status shows engine.guard.probeReplies');
  // The bucket's 10 answers, and A's own exploration: the answers left REAP in InboundOk, and its
  // retransmissions walk the context's verified locators, V among them, with back-off (RFC 5534 §4.3).
  assert.ok(r.toV <= 15, `${r.toV} datagrams reached V from ${PROBES} forged probes (bucket: 10)`);
  assert.equal(r.toVPort, 0, 'nothing at the port the forged datagrams named');
  assert.ok(p.limited >= PROBES / 2, `limited ${p.limited}`);
  assert.ok(p.portPinned >= 1);
});

test('positive control: with probeReplyLimit off the same probes reach V (at the context\'s port, not 53)', async (t) => {
  const l = lab(t);
  if (!l) return;
  await l.start('a', { probeReplyLimit: 'off' });
  const tag = await context(l, 2);
  const r = await reflect(l, tag, 300);
  assert.ok(r.toV >= 100, `${r.toV} of 300 reached V`);
  assert.equal(r.toVPort, 0, 'the port stays pinned without the rate limit');
});
