// E2E trust 2 (issue 15): an on-path attacker cannot re-point A's context.
// The attacker sits on link P (the lab's hub floods every frame to it), watches a
// real A→B stream through the shim6 daemons, reads A's context tag from B→A
// payload packets, and then sends packets with that tag from another UDP port:
//  - from its own address (payload and Keepalive): they fail the locator check;
//  - with B's address forged as the source (it is on the link; the kernel lets it
//    bind a non-local address): they pass the locator check, but they prove
//    nothing about the sender, so A must not move the context's UDP port there.
// What a user cares about: the stream arrives whole, A's context keeps B's
// locator (and port), and none of A's stream packets ever goes to the
// attacker's port.
// Also while the stream runs: the attacker claims B's ULID in I2s of its own
// (B's PDS and Locator List replayed, as captured from B), for the live
// context's FII and for another one: no R2, no second context, nothing moves.
import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { missingPrereqs } from '../helpers/prereq.ts';
import { LAB_ADDR } from '../../lab/topology.ts';
import { LAB_B_NAME } from '../../lab/dns.ts';
import { LAB_STUB } from '../../lab/daemons.ts';
import { runStream } from '../../lab/run.ts';
import { LAB_HBA } from '../../lab/hba.ts';
import { VerificationMethod } from '../../shim/constants.ts';
import { ATTACK_PREREQ, AttackLab, Cleanup, peerPortOf, type ContextView , sharedLab } from './attack-fixture.ts';
import { waitLog, STREAM_RATE } from './fixture.ts';

const cleanup = new Cleanup('attack-onpath');
let x: AttackLab | undefined;

before(async () => {
  if (missingPrereqs(ATTACK_PREREQ).length > 0) return; // each test then skips (or fails under CI) naming what is missing
  x = await AttackLab.up(cleanup, []);
  x.attacker.allowForgedSources();
  await x.attacker.capture(LAB_ADDR.aP);
});
after(() => cleanup.run());

const lab = (t: TestContext): AttackLab | undefined => sharedLab(t, x);

function contextWithB(contexts: readonly ContextView[]): ContextView | undefined {
  return contexts.find((c) => c.peerUlid === LAB_ADDR.bP && c.state === 'ESTABLISHED');
}

for (const forged of [false, true]) {
  const who = forged ? 'with B\'s address forged as the source' : 'from the attacker\'s own address';
  test(`on-path: payload and Keepalives with A's context tag ${who}, from another port, do not re-point A's context; the stream arrives whole`, { timeout: 120_000 }, async (t) => {
    const l = lab(t);
    if (!l) return;
    // Before the daemons start: a daemon restarted in this shared lab sets up again the contexts
    // its cache file saved (docs/operations.md "Protection that lasts"), before the stream starts.
    // A's context is its new daemon's: B, restarted first, may set up its saved context with A's
    // previous daemon, which logs it after `since` (CI run 165).
    const since = Date.now();
    await l.start('b');
    const aStarted = await l.start('a');
    const stream = runStream(l.lab, { to: LAB_B_NAME, resolver: LAB_STUB, durationMs: 6000, failAtMs: 1, failure: 'none', rate: STREAM_RATE, graceMs: 8000 });
    const established = await waitLog(l.lab, 'a', (r) => r.msg === 'context-established' && r.peerUlid === LAB_ADDR.bP && Date.parse(r.ts) >= aStarted, 20_000);

    // What the attacker learns from the wire: A's tag, in B→A payload packets (on the kernel path,
    // where the stream goes plain, in B's Keepalives to A) sent since this context came up: the
    // previous test's daemons, stopped after `since`, still sent B→A packets with their own tag.
    const tag = await l.attacker.sniffTag(LAB_ADDR.bP, LAB_ADDR.aP, Date.parse(established.ts));
    const before = contextWithB((await l.status()).engine.contexts);
    assert.ok(before, 'A has an established context with B');
    assert.equal(tag, before.contextTag, 'the attacker read A\'s context tag off the wire');

    const sock = forged ? 'forged' : 'own';
    const { port } = await l.attacker.socket(sock, forged ? LAB_ADDR.bP : LAB_ADDR.xP);
    // A few seconds of forged traffic while the stream runs (each B→A packet is a chance to undo a re-pointing).
    await l.attacker.spray({ sock, dst: LAB_ADDR.aP, kind: 'payload', tag, count: 3000, batch: 10, gapMs: 5 });
    await l.attacker.spray({ sock, dst: LAB_ADDR.aP, kind: 'keepalive', tag, count: 300, batch: 10, gapMs: 5 });
    const r = await stream;

    const afterCtx = contextWithB((await l.status()).engine.contexts);
    const toAttackerPort = await l.attacker.captured({ since, src: LAB_ADDR.aP, dstPort: port, payloadOnly: true });
    const toAttackerAddress = await l.attacker.captured({ since, src: LAB_ADDR.aP, dstIn: [LAB_ADDR.xP], payloadOnly: true });
    const findings = {
      streamComplete: r.complete,
      corrupt: r.corrupt,
      everyByteOnce: r.bytes_verified === r.bytes_sent,
      // B's own locators only (on a busy machine REAP may move the context to B's Q locator: still B).
      contextWithB: afterCtx === undefined ? 'gone' : { tag: afterCtx.contextTag, peerIsB: [LAB_ADDR.bP, LAB_ADDR.bQ].includes(afterCtx.pair.peer) },
      peerPort: afterCtx === undefined ? 'no context' : peerPortOf(afterCtx),
      streamPacketsToAttackerPort: toAttackerPort.count,
      streamPacketsToAttackerAddress: toAttackerAddress.count,
    };
    t.diagnostic(JSON.stringify({ ...findings, attackerPort: port, firstToAttackerPort: toAttackerPort.first, sent: r.bytes_sent, stall_ms: r.stall_ms }));
    assert.deepEqual(findings, {
      streamComplete: true, corrupt: 0, everyByteOnce: true,
      contextWithB: { tag: before.contextTag, peerIsB: true },
      peerPort: peerPortOf(before), streamPacketsToAttackerPort: 0, streamPacketsToAttackerAddress: 0,
    });
  });
}

test('on-path: while A↔B is live, I2s claiming B\'s ULID with B\'s replayed PDS (same FII, and another) get no R2 and change nothing', { timeout: 120_000 }, async (t) => {
  const l = lab(t);
  if (!l) return;
  const since = Date.now(); // before the daemons start (as above)
  await l.start('b');
  const aStarted = await l.start('a');
  const stream = runStream(l.lab, { to: LAB_B_NAME, resolver: LAB_STUB, durationMs: 5000, failAtMs: 1, failure: 'none', rate: STREAM_RATE, graceMs: 8000 });
  await waitLog(l.lab, 'a', (r) => r.msg === 'context-established' && r.peerUlid === LAB_ADDR.bP && Date.parse(r.ts) >= aStarted, 20_000);
  const before = contextWithB((await l.status()).engine.contexts);
  assert.ok(before, 'A has an established context with B');
  await l.attacker.socket('claim', LAB_ADDR.xP);
  const proof = {
    pds: LAB_HBA.b.members[0]!.params, generation: 7,
    locators: [{ address: LAB_ADDR.bP, verificationMethod: VerificationMethod.HBA }, { address: LAB_ADDR.bQ, verificationMethod: VerificationMethod.HBA }],
  };
  const claim = { sender: LAB_ADDR.bP, receiver: LAB_ADDR.aP };
  const sameFii = await l.attacker.handshake({ sock: 'claim', dst: LAB_ADDR.aP, claim, proof });
  const otherFii = await l.attacker.handshake({ sock: 'claim', dst: LAB_ADDR.aP, claim, proof, fii: 1 });
  const r = await stream;
  const contexts = (await l.status()).engine.contexts.filter((c) => c.peerUlid === LAB_ADDR.bP);
  const toAttacker = await l.attacker.captured({ since, src: LAB_ADDR.aP, dstIn: [LAB_ADDR.xP], payloadOnly: true });
  const findings = {
    r2: { sameFii: sameFii.r2, otherFii: otherFii.r2 },
    // The pair goes to one of B's own locators: a false exploration on a busy machine may move it
    // from one to the other, never to the attacker.
    contextsWithB: contexts.map((c) => ({ state: c.state, tag: c.contextTag, peerIsB: [LAB_ADDR.bP, LAB_ADDR.bQ].includes(c.pair.peer), port: peerPortOf(c) })),
    streamComplete: r.complete, everyByteOnce: r.bytes_verified === r.bytes_sent, corrupt: r.corrupt,
    streamPacketsToAttacker: toAttacker.count,
  };
  t.diagnostic(JSON.stringify(findings));
  assert.deepEqual(findings, {
    r2: { sameFii: false, otherFii: false },
    contextsWithB: [{ state: 'ESTABLISHED', tag: before.contextTag, peerIsB: true, port: peerPortOf(before) }],
    streamComplete: true, everyByteOnce: true, corrupt: 0, streamPacketsToAttacker: 0,
  });
});
