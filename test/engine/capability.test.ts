// Capability detection and priming details (seed §2.2, §3.1.3, §3.1.4, §4):
// priming that lands while an I1 is pending, the independent probe not
// repeating once answered, the positive cache keeping what DNS said after a
// handshake, and a locator change during I2-SENT reaching the peer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Loop } from './loop.ts';
import { State } from '../../shim/engine/index.ts';

const A_PREFIXES = ['2001:db8:a1::/64', '2001:db8:a2::/64'];
const B_PREFIXES = ['2001:db8:b1::/64', '2001:db8:b2::/64'];
const hints = (ls: string[]) => ls.map((address, i) => ({ address, flags: 0, priority: i, weight: 0 }));

test('priming while an I1 to the dead ULID is pending: retransmissions try the primed locators and establish', () => {
  const net = new Loop(20);
  const a = net.add('A', 101, A_PREFIXES, { profile: 'fast' });
  const b = net.add('B', 102, B_PREFIXES, { profile: 'fast' });
  net.block(a.ulid, b.ulid);
  net.block(a.locators[1]!, b.ulid);
  net.sendPayload(a, b); // no context: traffic starts an exchange towards the ULID only
  net.run(10);
  assert.equal(a.engine.status().contexts[0]?.state, State.I1_SENT);
  a.engine.prime(net.now, { ulid: b.ulid, locators: hints(b.locators), ttl: 60, source: 'dns' });
  net.run(3000);
  assert.equal(a.engine.status().contexts[0]?.state, State.ESTABLISHED);
  assert.equal(a.engine.status().contexts[0]!.pair.peer, b.locators[1]);
  assert.ok(!a.events.some((e) => e.kind === 'peer-unsupported'));
});

test('independent mode: once the probe is answered, further traffic does not probe again', () => {
  const net = new Loop(20);
  const b = net.add('B', 103, B_PREFIXES);
  const a = net.add('A', 104, A_PREFIXES, { peers: [{ ulid: b.ulid, mode: 'independent' }] });
  for (let i = 0; i < 5; i++) { net.sendPayload(a, b); net.run(net.now + 500); }
  assert.deepEqual(net.types().filter((t) => t !== 'payload'), ['1', '2']);
  assert.equal(a.events.filter((e) => e.kind === 'peer-supported').length, 1);
  assert.equal(a.engine.contextCount + b.engine.contextCount, 0);
});

test('the positive cache keeps the DNS locators and port after the handshake (and after the context is gone)', () => {
  const net = new Loop(20);
  const a = net.add('A', 105, A_PREFIXES, { profile: 'fast' });
  const b = net.add('B', 106, B_PREFIXES, { profile: 'fast' });
  a.engine.prime(net.now, { ulid: b.ulid, locators: hints(b.locators), ttl: 60, source: 'dns', port: 7000 });
  net.run(300);
  assert.equal(a.engine.status().contexts[0]?.state, State.ESTABLISHED);
  a.engine.close(net.now, b.ulid);
  net.run(net.now + 500);
  assert.equal(a.engine.contextCount, 0);
  const pos = a.engine.exportCaches(net.now).positive.find((e) => e.ulid === b.ulid);
  assert.ok(pos);
  assert.deepEqual(pos.locators.map((l) => l.address), b.locators);
  assert.equal(pos.source, 'dns');
  assert.equal(pos.port, 7000);
  assert.ok(pos.expires >= net.now + 3_000_000, 'confirmed capability lives for positiveTtl (1 h)');
});

test('a locator change while our I2 is in flight reaches the peer by Update once R2 arrives', () => {
  const net = new Loop(20);
  const a = net.add('A', 107, A_PREFIXES, { profile: 'fast' });
  const b = net.add('B', 108, B_PREFIXES, { profile: 'fast' });
  a.engine.prime(net.now, { ulid: b.ulid, locators: [], ttl: 60, source: 'configured' });
  net.run(65); // I2 sent at 40, R2 in flight
  assert.equal(a.engine.status().contexts[0]?.state, State.I2_SENT);
  assert.equal(b.engine.status().contexts[0]?.state, State.ESTABLISHED);
  a.engine.setLocalLocators(net.now, [{ address: a.locators[0]! }]);
  net.run(net.now + 500);
  assert.equal(a.engine.status().contexts[0]?.state, State.ESTABLISHED);
  const upd = b.events.filter((e) => e.kind === 'locator-set-updated').at(-1);
  assert.ok(upd && upd.kind === 'locator-set-updated', 'the peer heard of the change');
  assert.deepEqual(upd.locators, [a.locators[0]]);
  assert.equal(net.types('A').filter((t) => t === '64').length, 1, 'exactly one Update Request');
});

test('one policy (seed §3.1.4): DNS absence does not refuse a later record; a claim that failed refuses the same claim; absence never overrides a handshake', () => {
  const net = new Loop(20);
  const a = net.add('A', 103, A_PREFIXES, { profile: 'fast' });
  const b = net.add('B', 104, B_PREFIXES, { profile: 'fast' });
  // DNS said "no record" for B's address; then a record appears: the record is newer knowledge.
  a.engine.absent(net.now, { addresses: [b.ulid], ttl: 600 });
  a.engine.prime(net.now, { ulid: b.ulid, locators: hints(b.locators), ttl: 60, source: 'dns' });
  net.run(net.now + 1000);
  assert.equal(a.engine.status().contexts[0]?.state, State.ESTABLISHED);
  // A handshake taught A that B runs shim6: a later "no record" does not hold B down.
  a.engine.absent(net.now, { addresses: [b.ulid], ttl: 600 });
  assert.equal(a.engine.exportCaches(net.now).negative.length, 0);

  // C is claimed by DNS but runs nothing: the claim fails, and the same claim is refused until the hold-down ends.
  const c = '2001:db8:c1::1';
  a.engine.prime(net.now, { ulid: c, locators: hints([c]), ttl: 60, source: 'dns' });
  for (let i = 0; i < 600 && !a.events.some((e) => e.kind === 'context-failed'); i++) net.run(net.now + 100);
  assert.deepEqual(a.engine.exportCaches(net.now).negative.map((e) => [e.address, e.ulid, e.reason]), [[c, c, 'no-answer']]);
  a.events.length = 0;
  a.engine.prime(net.now, { ulid: c, locators: hints([c]), ttl: 60, source: 'dns' });
  net.flush();
  assert.deepEqual(a.events.filter((e) => e.kind === 'peer-unsupported').map((e) => e.kind === 'peer-unsupported' && e.reason), ['negative-cache']);
  assert.equal(a.engine.status().contexts.filter((x) => x.peerUlid === c && x.state === State.I1_SENT).length, 0, 'no new I1');
});
