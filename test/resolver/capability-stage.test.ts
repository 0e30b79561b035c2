// The capability stage on its own (resolver/stages/capability.ts): no sockets, its lookups and the
// rest of the chain injected. Entries made in a turn are admitted to the LRU after it (admitFresh);
// until then lookups, status and flush must still see them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as turn } from 'node:timers/promises';
import { CapabilityStage, DEFAULT_CAPABILITY_OPTIONS, type CapEntry } from '../../resolver/stages/capability.ts';
import type { Answer, Request } from '../../resolver/chain.ts';
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
  const sink: CapabilitySink = { prime: () => {}, absent: () => {} };
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
