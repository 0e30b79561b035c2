// E2E: the CGA verification flood of the wire review (docs/security.md "CGA
// verification cost"). The attacker on link P asks A for R1s and sends I2s
// whose PDS holds a key of its choosing — a 3072-bit modulus with a 3070-bit
// public exponent (before the fix each cost A a ~3070-bit modular
// exponentiation, ~120 times a normal key's check), alternating with a normal
// 2048-bit key — each with a fresh random signature, 300 per second, until told
// to stop. While it runs, a benign host in another /64 completes a handshake
// with A and a real A→B stream through the shim works; afterwards A's status
// shows the huge-exponent keys refused before any RSA work and the normal-key
// I2s' verifications within the per-/64 budget (burst + rate × the measured
// duration, so a slow machine only loosens it; never a wall-clock limit).
import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { missingPrereqs, needs } from '../helpers/prereq.ts';
import { LAB_ADDR } from '../../lab/topology.ts';
import { LAB_B_NAME } from '../../lab/dns.ts';
import { LAB_STUB, labDaemonFiles } from '../../lab/daemons.ts';
import { runStream } from '../../lab/run.ts';
import { controlRequest } from '../../shim/daemon/control/client.ts';
import type { CgaCounters } from '../../shim/engine/core.ts';
import { ATTACK_PREREQ, AttackLab, Cleanup } from './attack-fixture.ts';
import { log, mostOf, STREAM_RATE } from './fixture.ts';
import { waitFor } from '../helpers/wait.ts';

/** The daemon's default `verifyLimit` per source /64. */
const PER_PREFIX = { rate: 10, burst: 10 };
/** A benign host in a /64 of its own (on the attacker's lo, routed by A via the attacker). */
const GOOD = '2001:db8:ee:1::1';

const cleanup = new Cleanup('attack-cga');
let x: AttackLab | undefined;

before(async () => {
  if (missingPrereqs(ATTACK_PREREQ).length > 0) return;
  x = await AttackLab.up(cleanup, ['b', 'a']);
  x.addAttackerAddresses([{ address: GOOD, dev: 'lo' }]);
  x.routeViaAttacker('2001:db8:ee::/48', LAB_ADDR.xP);
});
after(() => cleanup.run());

function lab(t: TestContext): AttackLab | undefined {
  if (!needs(t, ATTACK_PREREQ)) return undefined;
  assert.ok(x, 'the attack lab came up');
  return x;
}

async function cgaOf(l: AttackLab): Promise<CgaCounters | undefined> {
  const st = await controlRequest(labDaemonFiles(l.lab, 'a').control, 'status', {}, 60_000) as { engine: { guard?: { cga?: CgaCounters } } };
  return st.engine.guard?.cga;
}

test('a flood of I2s with slow-to-verify CGA keys: refused or budgeted, and benign handshakes and a stream go on', { timeout: 600_000 }, async (t) => {
  const l = lab(t);
  if (!l) return;
  await l.attacker.socket('evil', LAB_ADDR.xP);
  await l.attacker.socket('good', GOOD);
  const before = await cgaOf(l);
  assert.ok(before !== undefined, 'A\'s status counts CGA signature checks (engine.guard.cga)');
  const t0 = Date.now();
  const flood = l.attacker.cgaFlood({ sock: 'evil', dst: LAB_ADDR.aP, keys: ['huge-exponent', 'normal'], fresh: true, rate: 300, count: 1_000_000 });
  let floodError: unknown;
  flood.catch((e: unknown) => { floodError = e; });
  try {
    // The flood has reached A's engine: both kinds of I2 are being checked.
    await waitFor(async () => { const c = await cgaOf(l); return c !== undefined && c.keyBadExponent > before.keyBadExponent && c.limited > before.limited; },
      'A refusing huge-exponent keys and budgeting the rest', 120_000, 250);
    // A benign host from another /64 sets up a context with A (the barrier in `handshake` waits for A's answers).
    const hs = await l.attacker.handshake({ sock: 'good', dst: LAB_ADDR.aP });
    assert.equal(hs.r2, true, 'the benign handshake got its R2 during the flood');
    // A real A→B stream through the shim, during the flood.
    const since = Date.now();
    const r = await runStream(l.lab, { to: LAB_B_NAME, resolver: LAB_STUB, durationMs: 2000, failAtMs: 1, failure: 'none', rate: STREAM_RATE, graceMs: 8000 });
    assert.equal(r.complete, true, 'the stream ended normally');
    assert.equal(r.bytes_verified, r.bytes_sent, 'every byte once and intact');
    assert.ok(r.bytes_sent > mostOf(2000), `sent ${r.bytes_sent}`);
    assert.ok(log(l.lab, 'a').some((e) => e.msg === 'context-established' && e.peerUlid === LAB_ADDR.bP && Date.parse(e.ts) >= since), 'through a shim6 context with B');
    assert.equal(floodError, undefined, 'the flood was still running');
  } finally {
    await l.attacker.cgaFloodStop();
  }
  const sent = await flood;
  // Barrier: once a handshake from the benign socket is answered, A has read the flood.
  assert.equal((await l.attacker.handshake({ sock: 'good', dst: LAB_ADDR.aP })).r2, true);
  const after = (await cgaOf(l))!;
  const seconds = (Date.now() - t0) / 1000;
  const verified = after.verified - before.verified;
  const bound = Math.floor(PER_PREFIX.burst + PER_PREFIX.rate * seconds);
  t.diagnostic(`flood: ${sent.sent} I2s in ${(sent.sendMs / 1000).toFixed(1)} s; A: ${JSON.stringify(after)}; RSA verifications ${verified}, bound over ${seconds.toFixed(1)} s ${bound}`);
  assert.ok(after.keyBadExponent - before.keyBadExponent > 0, 'huge-exponent keys refused');
  assert.ok(verified <= bound, `${verified} RSA verifications, within the /64's burst + rate × ${seconds.toFixed(1)} s = ${bound}`);
  assert.ok(after.limited - before.limited > 0, 'the rest over the budget, counted');
});
