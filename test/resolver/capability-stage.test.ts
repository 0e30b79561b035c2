// The capability stage on its own (resolver/stages/capability.ts): no sockets, its lookups and the
// rest of the chain injected. Entries made in a turn are admitted to the LRU after it (admitFresh);
// until then lookups, status and flush must still see them. The record is decoded and the sink
// called only once the client's answer has left (Request.after).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as turn } from 'node:timers/promises';
import { CapabilityStage, DEFAULT_CAPABILITY_OPTIONS, type CapEntry } from '../../resolver/stages/capability.ts';
import dnsPacket from 'dns-packet';
import type { AfterAnswer, Answer, Request } from '../../resolver/chain.ts';
import type { CapabilitySink } from '../../resolver/capability-sink.ts';
import type { QueryListener } from '../../resolver/upstream.ts';
import { buildQuery } from '../../resolver/answer-build.ts';
import { scanResponse } from '../../resolver/answer-scan.ts';
import { CLASS_IN, Flag, parseQuery, Rcode, RrType, textToNameKey } from '../../resolver/message.ts';
import { newCounters } from '../../resolver/counters.ts';
import { Logger } from '../../shim/log.ts';
import type { Millis } from '../../shim/time.ts';

function setup() {
  const lookups: Array<{ nameKey: string; qtype: number; listener: QueryListener }> = [];
  const sink: CapabilitySink = { beforeAnswer: false, prime: () => {}, absent: () => {} };
  const never = (): Promise<Answer> => new Promise<Answer>(() => {}); // the address answers are not needed here
  const stage = new CapabilityStage(never, never, (nameKey, qtype, listener) => lookups.push({ nameKey, qtype, listener }), sink,
    newCounters(), new Logger({ level: 'error', sink: { write: () => {} } }), DEFAULT_CAPABILITY_OPTIONS, () => 1_000 as Millis, () => 1_000);
  const ask = (name: string, qtype: number = RrType.AAAA): void => {
    const query = buildQuery(1, textToNameKey(name), qtype, CLASS_IN, {});
    const q = parseQuery(query);
    const req: Request = { query, q, key: q.key, now: 1_000 as Millis, transport: 'udp' };
    void stage.serve(req, never);
  };
  return { stage, lookups, ask };
}

/** An NXDOMAIN answer to a lookup's TYPE65300 question (no SOA: the default negative TTL). */
function nxdomain(nameKey: string): { bytes: Uint8Array; scan: ReturnType<typeof scanResponse> } {
  const bytes = buildQuery(1, nameKey, 65300, CLASS_IN, {});
  bytes[2] = (Flag.QR | Flag.RD) >> 8;
  bytes[3] = Rcode.NXDOMAIN;
  return { bytes, scan: scanResponse(bytes) };
}

test('a name asked twice in one turn, and again after it, is looked up once', async () => {
  const { lookups, ask } = setup();
  ask('peer.example.');
  ask('peer.example.', RrType.A);
  assert.equal(lookups.length, 1, 'one TYPE65300 question for both questions of the turn');
  assert.equal(lookups[0]!.qtype, 65300);
  await turn(); // the turn's entries are admitted to the LRU
  ask('peer.example.');
  ask('other.example.');
  assert.deepEqual(lookups.map((l) => l.nameKey), [textToNameKey('peer.example.'), textToNameKey('other.example.')]);
});

test('status shows an outcome that arrived before its entry was admitted; flush forgets entries of the turn too', async () => {
  const { stage, lookups, ask } = setup();
  ask('gone.example.');
  const r = nxdomain(lookups[0]!.nameKey);
  (lookups[0]!.listener as CapEntry).upstreamDone(undefined, { ...r, upstream: { host: '127.0.0.1', port: 53 }, tcp: false });
  assert.deepEqual(stage.status(1_000 as Millis).negative.map((e) => (e as { name: string }).name), ['gone.example.']);
  await turn();
  assert.equal(stage.status(1_000 as Millis).negative.length, 1, 'the same entry once admitted');

  ask('new.example.');
  assert.equal(stage.flush(), 2, 'the admitted entry and the one of this turn');
  await turn();
  assert.equal(stage.status(1_000 as Millis).negative.length, 0);
  ask('new.example.');
  assert.equal(lookups.length, 3, 'looked up again after the flush');
});

/** The stage with an address answer of our own for `peer.example.` and a sink that records its calls. */
function settling(addressLater: boolean, beforeAnswer = false) {
  const calls: Array<{ op: string; addresses: string[] }> = [];
  const sink: CapabilitySink = {
    beforeAnswer,
    prime: () => calls.push({ op: 'prime', addresses: [] }),
    absent: (_now, _name, addresses) => calls.push({ op: 'absent', addresses: addresses.map((a) => Buffer.from(a, 'latin1').toString('hex')) }),
  };
  const bytes = new Uint8Array(dnsPacket.encode({
    type: 'response', id: 1, flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type: 'AAAA', name: 'peer.example' }], answers: [{ type: 'AAAA', name: 'peer.example', ttl: 60, data: '2001:db8::1' }],
  }));
  const address: Answer = { bytes, optOff: -1, source: 'upstream', owned: true, rcode: Rcode.NOERROR, scan: scanResponse(bytes) };
  let release: () => void = () => {};
  const inner = (): Answer | Promise<Answer> => addressLater ? new Promise<Answer>((r) => { release = () => r(address); }) : address;
  const lookups: QueryListener[] = [];
  const counters = newCounters();
  const stage = new CapabilityStage(inner, inner, (_n, _t, listener) => lookups.push(listener), sink,
    counters, new Logger({ level: 'error', sink: { write: () => {} } }), DEFAULT_CAPABILITY_OPTIONS, () => 1_000 as Millis, () => 1_000);
  const tasks: Array<() => void> = [];
  const after: AfterAnswer = { afterAnswer: (task) => tasks.push(task) };
  const ask = (withAfter: boolean): Answer | Promise<Answer> => {
    const query = buildQuery(1, textToNameKey('peer.example.'), RrType.AAAA, CLASS_IN, {});
    const q = parseQuery(query);
    return stage.serve({ query, q, key: q.key, now: 1_000 as Millis, transport: 'udp', ...(withAfter ? { after } : {}) }, inner);
  };
  const recordAnswer = (): void => {
    const r = nxdomain(textToNameKey('peer.example.'));
    (lookups[0]! as CapEntry).upstreamDone(undefined, { ...r, upstream: { host: '127.0.0.1', port: 53 }, tcp: false });
  };
  return { stage, calls, counters, tasks, ask, recordAnswer, release: () => release() };
}

test('the record\'s answer is decoded and the sink called once the client\'s answer has left, whichever answer came first', async () => {
  // The address answer first: it is held for the record's; the record's answer lets it go.
  {
    const s = settling(false);
    const answer = s.ask(true);
    assert.ok(answer instanceof Promise, 'held for the record');
    s.recordAnswer();
    await answer;
    assert.deepEqual(s.calls, [], 'nothing handed to the sink before the answer left');
    assert.equal(s.counters.capabilityAbsent, 0, 'nor the record decoded');
    assert.equal(s.tasks.length, 1);
    s.tasks[0]!();
    assert.deepEqual(s.calls, [{ op: 'absent', addresses: ['20010db8000000000000000000000001'] }]);
    assert.equal(s.counters.capabilityAbsent, 1);
  }
  // The record's answer first (the usual case: it is asked first): the address answer goes at once.
  {
    const s = settling(true);
    const answer = s.ask(true);
    s.recordAnswer();
    assert.equal(s.counters.capabilityAbsent, 0, 'kept as it came');
    s.release();
    await answer;
    assert.deepEqual(s.calls, []);
    assert.equal(s.tasks.length, 1);
    s.tasks[0]!();
    assert.equal(s.calls.length, 1);
    s.tasks[0]!(); // a second run (another client's answer for the same name) settles nothing again
    assert.equal(s.calls.length, 1, 'once per negative lifetime');
  }
  // No one to wait for (an internal lookup): settled at once.
  {
    const s = settling(true);
    const answer = s.ask(false);
    s.recordAnswer();
    s.release();
    await answer;
    assert.equal(s.tasks.length, 0);
    assert.equal(s.calls.length, 1);
  }
  // A sink the application's first packet depends on (the daemon's): called before the answer is let go.
  {
    const s = settling(false, true);
    const answer = s.ask(true);
    s.recordAnswer();
    assert.equal(s.calls.length, 1, 'called as the record came');
    await answer;
    assert.equal(s.tasks.length, 0);
  }
  // Status decodes an answer nobody asked for yet.
  {
    const s = settling(true);
    void s.ask(true);
    s.recordAnswer();
    assert.equal(s.stage.status(1_000 as Millis).negative.length, 1);
    assert.equal(s.counters.capabilityAbsent, 1);
  }
});
