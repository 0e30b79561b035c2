import { test } from 'node:test';
import assert from 'node:assert/strict';
import { State, TRANSITIONS, transition, REAP_TABLE, Reap } from '../../shim/engine/index.ts';
import { encodeMessage, type Shim6Message } from '../../shim/wire/index.ts';
import { pairWithContextIn, type ShimHost } from '../sim/shim-hosts.ts';

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

test('every message that names a context by its tag, from the peer\'s ULID, to a context in each state that is not ESTABLISHED: a result, never an exception', () => {
  const messages: Array<(tag: number, a: ShimHost, b: ShimHost) => Shim6Message> = [
    (tag) => ({ type: 'UpdateRequest', contextTag: tag, requestNonce: 1, options: [] }),
    (tag) => ({ type: 'UpdateAck', contextTag: tag, requestNonce: 2, options: [] }),
    (tag) => ({ type: 'Keepalive', contextTag: tag, options: [] }),
    (tag, a, b) => ({ type: 'Probe', contextTag: tag, state: 'Exploring', sent: [{ source: b.ulid, destination: a.ulid, nonce: 5, data: 0 }], received: [], options: [] }),
    (tag) => ({ type: 'Close', contextTag: tag, nonce: 3, options: [] }),
    (tag) => ({ type: 'CloseAck', contextTag: tag, nonce: 4, options: [] }),
  ];
  let seed = 700;
  for (const state of [State.I1_SENT, State.I2_SENT, State.I2BIS_SENT, State.CLOSING]) {
    // A new context in that state for each message (a Close, say, ends the one it reaches).
    for (const make of messages) {
      const { sim, a, b, tag } = pairWithContextIn(state, seed++);
      const m = make(tag, a, b);
      const r = a.engine.handleDatagram(sim.now, { src: b.ulid, dst: a.ulid, bytes: encodeMessage(m) });
      assert.ok(r.kind === 'consumed' || r.kind === 'drop', `${state}, ${m.type}: ${JSON.stringify(r)}`);
      sim.runFor(100); // what it sent, and the timers it armed
    }
  }
});
