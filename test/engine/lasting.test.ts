// What a handshake proved lasts as long as the context (shim/engine/lasting.ts,
// docs/engine.md "Knowledge that lasts"): a context alive, or idle-cleaned and
// resumable, for longer than positiveTtl (1 h) keeps its peer known — a restart's
// protect() and a re-homing after an idle cleanup still work 2 h later. The
// simulator's clock is the only clock: no wall time anywhere.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Sim } from '../sim/sim.ts';
import { addLinkedShimHost, engineEvents, established, hbaIdentity, primeWith, rebootShimHost, sendShim, shimDeliveries, shimPair, type ShimHost } from '../sim/shim-hosts.ts';
import { State } from '../../shim/engine/index.ts';
import { encodePayloadHeader } from '../../shim/wire/index.ts';
import type { Millis } from '../../shim/time.ts';
import type { Engine } from '../../shim/engine/index.ts';
import { Discovery } from '../../shim/daemon/discovery.ts';
import { cacheRefreshMs } from '../../shim/daemon/daemon.ts';
import { Logger } from '../../shim/log.ts';
import { SimRng } from '../helpers/rng.ts';
import type { CapabilityMode, EngineEvent } from '../../shim/engine/index.ts';

const HOUR = 3_600_000;

/** Payload both ways now, then nothing for `gap` ms, until `until`. */
function chatty(sim: Sim, a: ShimHost, b: ShimHost, until: number, gap = 60_000): void {
  while (sim.now < until) {
    sendShim(sim, a, b);
    sendShim(sim, b, a);
    sim.runFor(gap);
  }
}

/** A primed by DNS with B's locators (record TTL 60 s, as in the lab), context up. */
function primedPair(seed: number): { sim: Sim; a: ShimHost; b: ShimHost } {
  const p = shimPair(seed);
  primeWith(p.sim, p.a, p.b, 60);
  p.sim.runFor(1000);
  assert.equal(p.a.engine.status().contexts[0]?.state, State.ESTABLISHED);
  return p;
}

const blackholeUlidPair = (sim: Sim, a: ShimHost, b: ShimHost): void => sim.setLink(a.ulid, b.ulid, { blackhole: true }, 'both');

test('restart lasting: a context busy for 2 h keeps its peer known; the restarted engine\'s protect() brings it back', () => {
  const { sim, a, b } = primedPair(301);
  chatty(sim, a, b, sim.now + 2 * HOUR);
  assert.equal(a.engine.status().contexts[0]?.state, State.ESTABLISHED, 'never idle: payload every minute');
  const entry = a.engine.exportCaches(sim.now).positive.find((e) => e.ulid === b.ulid);
  assert.ok(entry !== undefined && entry.expires > sim.now + HOUR / 2, `B's entry lasts past the save: ${JSON.stringify(entry)}`);
  assert.equal(entry.locators.length, b.locators.length, 'the locators DNS gave are kept');
  // The daemon restarts (SIGTERM: contexts closed, then caches saved) and finds the connection open.
  a.engine.close(sim.now);
  sim.runFor(2000);
  assert.equal(a.engine.contextCount, 0);
  const saved = a.engine.exportCaches(sim.now);
  assert.ok((saved.positive.find((e) => e.ulid === b.ulid)?.expires ?? 0) >= sim.now - 62_000 + HOUR, 'closed: still positiveTtl from the last proof');
  rebootShimHost(sim, a);
  a.engine.importCaches(sim.now, saved);
  assert.equal(a.engine.protect(sim.now, b.ulid), true, 'B is still known to run shim6');
  sim.runFor(2000);
  assert.equal(a.engine.status().contexts[0]?.state, State.ESTABLISHED);
});

test('restart lasting: the saved entry of a live context lasts positiveTtl from its last proof, whatever the handshake\'s age', () => {
  const { sim, a, b } = primedPair(302);
  chatty(sim, a, b, sim.now + 90 * 60_000);
  const lastProof = sim.now - 60_000; // chatty's last exchange, then a minute of quiet (REAP keepalives within the first second)
  const e = a.engine.exportCaches(sim.now).positive.find((x) => x.ulid === b.ulid);
  assert.ok(e !== undefined && e.expires >= lastProof + HOUR && e.expires <= sim.now + HOUR, `expires ${e?.expires} vs last proof ${lastProof}`);
  // A restart ~70 min after the last save still knows B only within positiveTtl of that proof: bounded.
  rebootShimHost(sim, a);
  sim.runFor(70 * 60_000);
  a.engine.importCaches(sim.now, { positive: [e], negative: [] });
  assert.equal(a.engine.protect(sim.now, b.ulid), false, 'past positiveTtl after the last proof: forgotten');
});

test('resumable lasting: idle-cleaned for 2 h, P fails, the next packet brings the context back on the other pair (DNS locators kept)', () => {
  const { sim, a, b } = primedPair(303);
  chatty(sim, a, b, sim.now + 10_000, 1000);
  sim.runFor(2 * HOUR); // fast profile: idle cleanup after 120 s, then two hours of silence
  assert.equal(a.engine.contextCount, 0);
  const closed = engineEvents(a).find((e) => e.kind === 'context-closed');
  assert.ok(closed?.kind === 'context-closed' && closed.reason === 'idle' && closed.resumable);
  assert.ok(a.engine.status(sim.now).capability?.positive.some((p) => p.ulid === b.ulid), 'B is still known while resumable');
  blackholeUlidPair(sim, a, b);
  const seen = engineEvents(a).length;
  assert.equal(sendShim(sim, a, b), false, 'no context yet: the driver holds the packet');
  sim.flush();
  assert.ok(engineEvents(a).slice(seen).some((e) => e.kind === 'context-initiated'), 'announced, so the driver holds the packet');
  sim.runFor(5000);
  const ctx = a.engine.status().contexts[0];
  assert.equal(ctx?.state, State.ESTABLISHED, `the I1 retries reached B off the ULID pair: ${JSON.stringify(engineEvents(a).slice(seen).map((e) => e.kind))}`);
  assert.notDeepEqual(ctx.pair, { local: a.ulid, peer: b.ulid });
  const before = shimDeliveries(sim, b).length;
  assert.ok(sendShim(sim, a, b));
  sim.runFor(1000);
  assert.ok(shimDeliveries(sim, b).length > before, 'payload reaches B');
});

test('resumable lasting: a peer found by discovery (no DNS locators) keeps the locators its handshake verified', () => {
  const { sim, a, b } = shimPair(304);
  assert.equal(a.engine.discover(sim.now, a.ulid, b.ulid), 'started');
  sim.runFor(1000);
  assert.equal(a.engine.status().contexts[0]?.state, State.ESTABLISHED);
  chatty(sim, a, b, sim.now + 5000, 1000);
  sim.runFor(2 * HOUR);
  assert.equal(a.engine.contextCount, 0);
  const known = a.engine.status(sim.now).capability?.positive.find((p) => p.ulid === b.ulid);
  assert.ok(known !== undefined && known.locators.length === b.locators.length, `B's verified locators: ${JSON.stringify(known)}`);
  blackholeUlidPair(sim, a, b);
  sendShim(sim, a, b);
  sim.runFor(5000);
  assert.equal(a.engine.status().contexts[0]?.state, State.ESTABLISHED);
});

test('lasting: a payload that proves nothing (the tag from an address B never verified) refreshes nothing; B\'s own does', () => {
  const { sim, a, b } = primedPair(305);
  const tag = a.engine.status().contexts[0]!.contextTag;
  sim.runFor(10_000);
  const expires = (): number | undefined => a.engine.exportCaches(sim.now).positive.find((e) => e.ulid === b.ulid)?.expires;
  const before = expires();
  const bytes = new Uint8Array([...encodePayloadHeader(59, tag), 1, 2, 3, 4]);
  const r = a.engine.handleDatagram(sim.now as Millis, { src: '2001:db8:e::1', dst: a.ulid, bytes });
  assert.equal(r.kind, 'drop');
  assert.equal(expires(), before, 'unchanged');
  sendShim(sim, b, a);
  sim.runFor(100);
  assert.ok((expires() ?? 0) > (before ?? 0), 'B\'s payload proved it alive: the entry lasts positiveTtl from then');
});

test('lost cache: after a restart without the cache file, discovery brings the open connection\'s peer back (within its bounds); discovery off does not', () => {
  for (const mode of ['integrated', 'independent', 'off'] as const) {
    const { sim, a, b } = primedPair(306);
    rebootShimHost(sim, a, { defaultMode: mode }); // the cache file was unreadable: nothing imported
    const seen = engineEvents(a).length;
    assert.equal(a.engine.protect(sim.now, b.ulid), false, 'the caches know nothing of B');
    const command = (<T>(fn: (e: Engine, t: Millis) => T): T => { const r = fn(a.engine, sim.now as Millis); sim.flush(); return r; }) as never;
    const d = new Discovery(command, new Logger({ level: 'error', format: 'json', component: 'test' }), () => sim.now);
    const driver = (): void => { for (const e of engineEvents(a).slice(seen)) d.onEvent(e); };
    assert.equal(d.openConnections(a.ulid, [b.ulid]), mode === 'off' ? 0 : 1, mode);
    sim.runFor(1000);
    driver(); // independent: the probe's answer makes discovery call protect() on the next turn (setImmediate): done here
    if (mode === 'independent') { assert.equal(a.engine.contextCount, 0); assert.equal(a.engine.protect(sim.now, b.ulid), true); sim.runFor(1000); }
    assert.equal(a.engine.status().contexts[0]?.state, mode === 'off' ? undefined : State.ESTABLISHED, mode);
  }
});

test('the daemon writes its cache file at least every quarter of the entries\' life (5 s to 10 min)', () => {
  assert.equal(cacheRefreshMs(86_400), 600_000);
  assert.equal(cacheRefreshMs(60), 15_000);
  assert.equal(cacheRefreshMs(1), 5000);
});

test('resumable pins are bounded by cacheMax, and the peer whose pin goes is announced (resumable-dropped), so the driver takes its route back: a long-running host\'s routes do not only grow', () => {
  const { sim, a, b } = shimPair(305, { a: { cacheMax: 1 } });
  const c = addLinkedShimHost(sim, 'c', hbaIdentity(['2001:db8:c1::/64', '2001:db8:c2::/64'], sim.rng.fork()));
  primeWith(sim, a, b, 60);
  primeWith(sim, a, c, 60);
  sim.runFor(1000);
  assert.equal(established(a), 2);
  sim.runFor(10 * 60_000); // fast profile: both idle-cleaned after 120 s
  const events = engineEvents(a);
  const closed = events.filter((e) => e.kind === 'context-closed' && e.resumable).map((e) => (e as { peerUlid: string }).peerUlid);
  assert.equal(closed.length, 2, 'both closes resumable');
  const dropped = events.filter((e) => (e.kind as string) === 'resumable-dropped').map((e) => (e as { peerUlid: string }).peerUlid);
  assert.deepEqual(dropped, [closed[0]], 'the first pin went when the second came (cacheMax 1), and said so');
});

test('a resumable close comes back at the next packet whatever the peer\'s capability mode: peers[].mode independent, and a default mode (discovery) independent or off once the pinned peer\'s entry left the cache', () => {
  for (const c of ['peer independent', 'default independent', 'default off'] as const) {
    const { sim, a, b } = shimPair(307, { a: (ids) => (c === 'peer independent' ? { peers: [{ ulid: ids.b.ulid, mode: 'independent' as const }] } : { defaultMode: c === 'default off' ? 'off' as const : 'independent' as const }) });
    if (c === 'peer independent') {
      sendShim(sim, a, b); // the probe pair (I1 → R1, peer-supported), then protect() as the daemon does
      sim.runFor(500);
      assert.equal(a.engine.protect(sim.now, b.ulid), true, c);
    } else {
      primeWith(sim, a, b, 60);
    }
    sim.runFor(1000);
    assert.equal(established(a), 1, c);
    // Idle-cleaned (fast profile: 120 s), then 2 h without an export: the entry is gone, the pin stays.
    sim.runFor(2 * HOUR);
    const closed = engineEvents(a).filter((e) => e.kind === 'context-closed');
    assert.deepEqual(closed.map((e) => [e.reason, (e as { resumable?: boolean }).resumable]), [['idle', true]], `${c}: the driver keeps the route`);
    const seen = engineEvents(a).length;
    sendShim(sim, a, b); // into the route the driver kept: the first packet brings the context back
    assert.deepEqual(engineEvents(a).slice(seen).map((e) => e.kind), ['context-initiated'], `${c}: the packet is held while the context comes back`);
    sim.runFor(1000);
    assert.equal(a.engine.status().contexts[0]?.state, State.ESTABLISHED, c);
    assert.equal(sendShim(sim, a, b), true, `${c}: through the context`);
  }
});

test('a peer a reload configures `off` while its idle cleanup is resumable loses its pin, announced (resumable-dropped): the driver takes back the route whose packets nothing would carry', () => {
  const { sim, a, b } = primedPair(308);
  sim.runFor(10 * 60_000); // fast profile: idle-cleaned after 120 s, resumable
  assert.deepEqual(engineEvents(a).filter((e) => e.kind === 'context-closed').map((e) => (e as { resumable?: boolean }).resumable), [true]);
  const seen = engineEvents(a).length;
  a.engine.setPeers(sim.now, [{ ulid: b.ulid, mode: 'off' }]);
  sim.flush();
  assert.deepEqual(engineEvents(a).slice(seen).map((e) => [e.kind, (e as { peerUlid?: string }).peerUlid]), [['resumable-dropped', b.ulid]]);
  assert.equal(sendShim(sim, a, b), false, 'off: no context');
  assert.equal(a.engine.contextCount, 0);
});

test('a DNS prime of a pinned peer whose mode is independent starts the full exchange, announced (context-initiated): a probe unpinned it and left the route kept for it with nothing to carry its packets', () => {
  const { sim, a, b } = shimPair(309, { a: (ids) => ({ peers: [{ ulid: ids.b.ulid, mode: 'independent' as const }] }) });
  sendShim(sim, a, b); // the probe pair, then protect() as the daemon does
  sim.runFor(500);
  assert.equal(a.engine.protect(sim.now, b.ulid), true);
  sim.runFor(1000);
  sim.runFor(10 * 60_000); // idle-cleaned (fast: 120 s), resumable: the driver keeps B's route
  assert.deepEqual(engineEvents(a).filter((e) => e.kind === 'context-closed').map((e) => (e as { resumable?: boolean }).resumable), [true]);
  const seen = engineEvents(a).length;
  primeWith(sim, a, b, 60); // the application looks B's name up again
  assert.deepEqual(engineEvents(a).slice(seen).map((e) => e.kind), ['context-initiated']);
  sim.runFor(1000);
  assert.equal(a.engine.status().contexts[0]?.state, State.ESTABLISHED);
  assert.equal(sendShim(sim, a, b), true, 'through the context');
});

/**
 * The peers the driver keeps a route into the TUN for, from A's events as it reads them
 * (shim/dataplane/engine-driver.ts): routed at context-initiated / -established, unrouted at a
 * close that is not resumable, a failure or a dropped pin.
 */
function routedPeers(events: readonly EngineEvent[]): Set<string> {
  const routed = new Set<string>();
  for (const e of events) {
    if (e.kind === 'context-initiated' || e.kind === 'context-established') routed.add(e.peerUlid);
    else if ((e.kind === 'context-closed' && !e.resumable) || e.kind === 'context-failed' || e.kind === 'resumable-dropped') routed.delete(e.peerUlid);
  }
  return routed;
}

test('random long lives (primes, reboots of the peers, Close, protect, discovery, reloads of the peers\' modes, idle gaps up to 3 h): a packet into a route the driver kept for a peer without a context always brings a context back', () => {
  const MODES: readonly CapabilityMode[] = ['integrated', 'independent', 'off'];
  for (let seed = 1; seed <= 12; seed++) {
    const r = new SimRng(seed);
    const pick = <T>(xs: readonly T[]): T => xs[r.int(xs.length)]!;
    const profile = pick(['fast', 'rfc'] as const);
    const defaultMode = pick(MODES);
    const { sim, a, b } = shimPair(310 + seed, { a: { profile, defaultMode, cacheMax: 2 }, b: { profile } });
    const peers: ShimHost[] = [b];
    for (let i = 0; i < 3; i++) peers.push(addLinkedShimHost(sim, `p${i}`, hbaIdentity([`2001:db8:d${i}::/64`, `2001:db8:e${i}::/64`], sim.rng.fork()), { profile }));
    for (let step = 0; step < 60; step++) {
      const p = pick(peers);
      const act = r.float();
      if (act < 0.25) primeWith(sim, a, p, pick([60, 3600]));
      else if (act < 0.3) { const saved = p.engine.exportCaches(sim.now); rebootShimHost(sim, p, { profile }); p.engine.importCaches(sim.now, saved); }
      else if (act < 0.35) a.engine.close(sim.now, p.ulid);
      else if (act < 0.4) a.engine.protect(sim.now, p.ulid);
      else if (act < 0.5) a.engine.setPeers(sim.now, peers.filter(() => r.chance(0.5)).map((q) => ({ ulid: q.ulid, mode: pick([...MODES, 'configured' as const]) })));
      else if (act < 0.55) a.engine.discover(sim.now, a.ulid, p.ulid);
      sim.flush();
      for (let k = 0; k < 5; k++) {
        const kept = routedPeers(engineEvents(a)).has(p.ulid) && !a.engine.status().contexts.some((c) => c.peerUlid === p.ulid);
        const seen = engineEvents(a).length;
        const viaShim = sendShim(sim, a, p);
        if (kept) assert.ok(viaShim || engineEvents(a).slice(seen).some((e) => e.kind === 'context-initiated'), `seed ${seed} step ${step} (${profile}, default ${defaultMode}): a packet into the route kept for ${p.host.name} started nothing`);
        sim.runFor(pick([100, 1000, 5000]));
      }
      sim.runFor(pick([1000, 60_000, 200_000, 3 * HOUR]), 5_000_000);
    }
  }
});
