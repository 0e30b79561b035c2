import { test } from 'node:test';
import assert from 'node:assert/strict';
import { State, TRANSITIONS, transition, REAP_TABLE, Reap } from '../../shim/engine/index.ts';
import { encodeMessage, type Shim6Message } from '../../shim/wire/index.ts';
import type { Sim } from '../sim/sim.ts';
import { established, primeWith, rebootShimHost, sendShim, shimPair, type ShimHost } from '../sim/shim-hosts.ts';

test('state table: one row per (state, trigger), every row found by transition()', () => {
  const keys = new Set<string>();
  for (const row of TRANSITIONS) {
    const k = `${row.from}|${row.trigger}`;
    assert.ok(!keys.has(k), `duplicate row ${k}`);
    keys.add(k);
    assert.equal(transition(row.from, row.trigger), row);
    assert.ok(Object.values(State).includes(row.to), `${k} → unknown state ${row.to}`);
  }
});

test('state table: walk from IDLE reaches every state, and every state can get back to IDLE', () => {
  const reach = new Set<string>([State.IDLE]);
  for (let changed = true; changed;) {
    changed = false;
    for (const r of TRANSITIONS) if (reach.has(r.from) && !reach.has(r.to)) { reach.add(r.to); changed = true; }
  }
  assert.deepEqual([...reach].sort(), Object.values(State).sort());
  for (const s of Object.values(State)) {
    const seen = new Set<string>([s]);
    for (let changed = true; changed;) {
      changed = false;
      for (const r of TRANSITIONS) if (seen.has(r.from) && !seen.has(r.to)) { seen.add(r.to); changed = true; }
    }
    assert.ok(seen.has(State.IDLE), `${s} cannot return to IDLE`);
  }
});

test('state table: the RFC 5533 Appendix B cells', () => {
  const cell = (from: State, trig: Parameters<typeof transition>[1]) => { const r = transition(from, trig); return r && `${r.send || '-'}→${r.to}`; };
  assert.equal(cell(State.IDLE, 'recv-I1'), 'R1→IDLE');
  assert.equal(cell(State.IDLE, 'recv-payload'), 'R1bis→IDLE');
  assert.equal(cell(State.I1_SENT, 'recv-I1'), 'R2→I1-SENT');
  assert.equal(cell(State.I1_SENT, 'timeout-max'), '-→E-FAILED');
  assert.equal(cell(State.I2_SENT, 'timeout-max'), 'I1→I1-SENT');
  assert.equal(cell(State.I2_SENT, 'recv-payload'), 'I2→I2-SENT');
  assert.equal(cell(State.I2BIS_SENT, 'timeout-max'), 'I1→I1-SENT');
  assert.equal(cell(State.ESTABLISHED, 'recv-R1bis'), 'I2bis→I2BIS-SENT');
  assert.equal(cell(State.ESTABLISHED, 'recv-I1-ct-match'), 'R2→ESTABLISHED');
  assert.equal(cell(State.ESTABLISHED, 'recv-I1'), 'R1→ESTABLISHED');
  // An I1 from an address the context's packets do not go to is answered as in IDLE, whatever the state (§7.9 read with §16).
  for (const s of [State.I1_SENT, State.I2_SENT, State.I2BIS_SENT, State.ESTABLISHED]) assert.equal(cell(s, 'recv-I1-stateless'), `R1→${s}`);
  assert.equal(cell(State.E_FAILED, 'holddown-expired'), '-→IDLE');
  assert.equal(cell(State.NO_SUPPORT, 'holddown-expired'), '-→IDLE');
  // Appendix B "N/A": R1bis is never delivered to a context without CT(peer)
  assert.equal(transition(State.I1_SENT, 'recv-R1bis'), undefined);
  assert.equal(transition(State.I2_SENT, 'recv-R1bis'), undefined);
});

test('REAP table: every cell of RFC 5534 §6 is present, and the Probe/state cells match the text', () => {
  for (const [ev, cells] of Object.entries(REAP_TABLE)) assert.equal(cells.length, 3, ev);
  assert.deepEqual(REAP_TABLE['send-timeout'].map((c) => c.next), [Reap.Exploring, Reap.Exploring, Reap.Exploring]);
  assert.deepEqual(REAP_TABLE['probe-inboundok'].map((c) => c.next), [Reap.Operational, Reap.Operational, Reap.Operational]);
  assert.deepEqual(REAP_TABLE['probe-exploring'].map((c) => c.next), [Reap.InboundOk, Reap.InboundOk, Reap.InboundOk]);
  assert.deepEqual(REAP_TABLE['payload-in'][Reap.Exploring].actions, ['SEND_PROBE', 'START_SEND']);
  assert.deepEqual(REAP_TABLE['payload-out'][Reap.Exploring].actions, []);
  assert.deepEqual(REAP_TABLE['retransmit'][Reap.InboundOk].actions, ['SEND_PROBE', 'START_SEND']);
  assert.deepEqual(REAP_TABLE['keepalive-timeout'][Reap.Operational].actions, ['SEND_KEEPALIVE']);
});

/**
 * A context of A with B brought to `state` in a simulated pair (B's messages to A dropped from where
 * it helps to hold the state), with A's tag for it.
 */
function contextIn(state: State, seed: number): { sim: Sim; a: ShimHost; b: ShimHost; tag: number } {
  const { sim, a, b } = shimPair(seed);
  const stateOfA = (): string | undefined => a.engine.status().contexts[0]?.state;
  primeWith(sim, a, b);
  if (state === State.I2_SENT) {
    sim.driveUntil(() => stateOfA() === State.I2_SENT, { within: 5000 });
    sim.setLink(b.ulid, a.ulid, { blackhole: true }, 'forward'); // B's R2 is lost
    sim.driveUntil(() => established(b) === 1, { within: 5000 });
  } else if (state !== State.I1_SENT) {
    sim.driveUntil(() => established(a) === 1 && established(b) === 1, { within: 5000 });
    if (state === State.I2BIS_SENT) {
      rebootShimHost(sim, b); // B lost the context: A's next payload draws an R1bis, A sends I2bis
      sendShim(sim, a, b);
      sim.driveUntil(() => stateOfA() === State.I2BIS_SENT, { within: 5000 });
    } else if (state === State.CLOSING) {
      sim.setLink(b.ulid, a.ulid, { blackhole: true }, 'forward'); // B's Close Ack is lost
      a.engine.close(sim.now, b.ulid);
      sim.flush();
    }
  }
  assert.equal(stateOfA(), state);
  return { sim, a, b, tag: a.engine.status().contexts[0]!.contextTag };
}

test('every message that names a context by its tag, from the peer\'s ULID, to a context in each state that is not ESTABLISHED: a result, never an exception', () => {
  // A new context in that state for each message (a Close, say, ends the one it reaches).
  const messages = (tag: number, b: ShimHost, a: ShimHost): Shim6Message[] => [
    { type: 'UpdateRequest', contextTag: tag, requestNonce: 1, options: [] },
    { type: 'UpdateAck', contextTag: tag, requestNonce: 2, options: [] },
    { type: 'Keepalive', contextTag: tag, options: [] },
    { type: 'Probe', contextTag: tag, state: 'Exploring', sent: [{ source: b.ulid, destination: a.ulid, nonce: 5, data: 0 }], received: [], options: [] },
    { type: 'Close', contextTag: tag, nonce: 3, options: [] },
    { type: 'CloseAck', contextTag: tag, nonce: 4, options: [] },
  ];
  let seed = 700;
  for (const state of [State.I1_SENT, State.I2_SENT, State.I2BIS_SENT, State.CLOSING]) {
    for (let i = 0; i < 6; i++) {
      const { sim, a, b, tag } = contextIn(state, seed++);
      const m = messages(tag, b, a)[i]!;
      const r = a.engine.handleDatagram(sim.now, { src: b.ulid, dst: a.ulid, bytes: encodeMessage(m) });
      assert.ok(r.kind === 'consumed' || r.kind === 'drop', `${state}, ${m.type}: ${JSON.stringify(r)}`);
      sim.runFor(100); // what it sent, and the timers it armed
    }
  }
});
