// E2E trust: an off-path attacker cannot learn A's context tag by
// racing A's own handshake with crossing I1s (RFC 5533 §7.9).
// The attacker sits on link P with its own address and, from it, sends I1s whose
// ULID Pair option names (B, A) — "I am B, starting a context with A" — one every
// 2 ms, before, during and after A sets up its context with B (A's application
// resolves B's name: the stub primes A's engine, I1 → R1 → I2 → R2). A answered
// each such I1 arriving in I1-SENT or I2-SENT with an R2 carrying its own tag, to
// the attacker: with the tag, a Close forged from B's address tore the context
// down, and an Update Request flagging B's locators BROKEN stalled the stream.
// What a user cares about: the attacker gets no R2 and no datagram holding A's
// tag; A's context with B comes up all the same. Positive control: A did answer
// the attacker's I1s (with R1s, as an I1 in IDLE is), so they reached it.
import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { missingPrereqs } from '../helpers/prereq.ts';
import { LAB_ADDR, nsExec } from '../../lab/topology.ts';
import { LAB_B_NAME } from '../../lab/dns.ts';
import { LAB_STUB } from '../../lab/daemons.ts';
import { ATTACK_PREREQ, AttackLab, Cleanup , sharedLab } from './attack-fixture.ts';
import { waitLog } from './fixture.ts';

const cleanup = new Cleanup('attack-tagleak');
let x: AttackLab | undefined;

before(async () => {
  if (missingPrereqs(ATTACK_PREREQ).length > 0) return; // each test then skips (or fails under CI) naming what is missing
  x = await AttackLab.up(cleanup, ['b', 'a']);
  await x.attacker.socket('claims', LAB_ADDR.xP);
  await x.attacker.socket('own', LAB_ADDR.xP);
  await x.attacker.capture(LAB_ADDR.aP);
});
after(() => cleanup.run());

const lab = (t: TestContext): AttackLab | undefined => sharedLab(t, x);

/** The 6 octets a context tag is on the wire (R bit 0, then 47 bits), in hex. */
const tagHex = (tag: number): string => tag.toString(16).padStart(12, '0');

test('off-path: I1s claiming to be B, sent from the attacker\'s own address through A\'s whole handshake with B, draw no R2 and never A\'s tag', { timeout: 120_000 }, async (t) => {
  const l = lab(t);
  if (!l) return;
  const since = Date.now();
  await l.attacker.startClaims({ sock: 'claims', dst: LAB_ADDR.aP, claim: { sender: LAB_ADDR.bP, receiver: LAB_ADDR.aP }, gapMs: 2 });
  // A's application looks B up: the stub primes A's engine, which starts its handshake with B.
  nsExec(l.lab.a, ['kdig', `@${LAB_STUB}`, LAB_B_NAME, 'AAAA', '+short']);
  await waitLog(l.lab, 'a', (r) => r.msg === 'context-established' && r.peerUlid === LAB_ADDR.bP && Date.parse(r.ts) >= since, 30_000);
  const { sent } = await l.attacker.stopClaims();
  // Barrier: A reads its socket in order, so once it has answered the attacker as itself (another
  // port, no claim: a context of its own, allowed), every reply to the claims is in.
  assert.equal((await l.attacker.handshake({ sock: 'own', dst: LAB_ADDR.aP })).r2, true, 'the attacker as itself gets its R2 (the tool works)');

  const ctx = (await l.status()).engine.contexts.find((c) => c.peerUlid === LAB_ADDR.bP && c.state === 'ESTABLISHED');
  assert.ok(ctx, 'A set up its context with B');
  const inbox = await l.attacker.inbox('claims');
  const withTag = await l.attacker.captured({ since, dstIn: [LAB_ADDR.xP], marker: tagHex(ctx.contextTag) });
  const findings = { r2: inbox.control.R2 ?? 0, datagramsWithAsTag: withTag.count };
  assert.deepEqual(findings, { r2: 0, datagramsWithAsTag: 0 }, `${sent} claiming I1s sent; the attacker received ${JSON.stringify(inbox.control)}`);
  assert.ok((inbox.control.R1 ?? 0) > 0, 'A answered the attacker (R1s): the claims reached it');
});
