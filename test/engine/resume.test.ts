// Protection that lasts (issue 17): an idle cleanup of a peer known to run
// shim6 is resumable — the next packet starts a new context, and the driver
// holds that packet meanwhile — and a daemon that restarts protects the peers
// of connections already open (`protect`) when it knows them to be capable.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { configuredPair, engineEvents, sendShim, shimPair } from '../sim/shim-hosts.ts';
import { State } from '../../shim/engine/index.ts';
import { parseTcp6Peers } from '../../shim/daemon/open-connections.ts';

test('idle cleanup of a capable peer is resumable; the next packet brings the context back, announced so the driver holds it', () => {
  const { sim, a, b } = configuredPair(201);
  let seen = a.host.events.length;
  sim.runFor(130_000); // fast profile: idleTimeout 120 s
  assert.equal(a.engine.contextCount, 0);
  const closed = engineEvents(a).slice(seen).find((e) => e.kind === 'context-closed');
  assert.ok(closed?.kind === 'context-closed' && closed.reason === 'idle' && closed.resumable, 'resumable: the positive cache knows B');
  seen = a.host.events.length;
  assert.equal(sendShim(sim, a, b), false, 'no context yet: the packet is the driver\'s to hold');
  sim.flush();
  assert.ok(engineEvents(a).slice(seen).some((e) => e.kind === 'context-initiated' && e.peerUlid === b.ulid));
  sim.runFor(1000);
  assert.equal(a.engine.status().contexts[0]?.state, State.ESTABLISHED);
  assert.ok(sendShim(sim, a, b));
});

test('protect(): a peer known to run shim6 gets a context at once; an unknown one does not', () => {
  const { sim, a, b } = configuredPair(203);
  const saved = a.engine.exportCaches(sim.now);
  // A "restart": a fresh engine with the saved caches (the same seed makes the same identities).
  const { sim: sim2, a: a2, b: b2 } = shimPair(203);
  assert.equal(b2.ulid, b.ulid);
  a2.engine.importCaches(sim2.now, saved);
  assert.equal(a2.engine.protect(sim2.now, '2001:db8:99::1'), false, 'unknown peer: nothing');
  assert.equal(a2.engine.protect(sim2.now, b.ulid), true);
  assert.equal(a2.engine.protect(sim2.now, b.ulid), false, 'once');
  sim2.runFor(1000);
  assert.equal(a2.engine.status().contexts[0]?.state, State.ESTABLISHED);
  void a;
});

test('the kernel socket table: peers of open TCP connections, global IPv6 only, each once', () => {
  const head = '  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n';
  const row = (remote: string, st: string) => `   0: B80D0120000000000000000001000000:1F90 ${remote}:C350 ${st} 00000000:00000000 00:00000000 00000000     0        0 1 1 0 20 4 30 10 -1\n`;
  const b1 = 'B80D0120000000000000000010000000'; // 2001:db8::10 in /proc's word order
  const text = head + row(b1, '01') + row(b1, '01') + row('B80D0120000000000000000020000000', '0A') + row('00000000000000000000000001000000', '01')
    + row('0000000000000000FFFF00000100007F', '01') + row('000080FE000000000000000001000000', '01') + row('B80D0120000000000000000030000000', '08');
  assert.deepEqual(parseTcp6Peers(text), ['2001:db8::10', '2001:db8::30']);
});
