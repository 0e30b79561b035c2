/**
 * A tiny two-host loop for the engine's own unit tests (the full simulator is
 * test/sim/): every datagram is delivered after `delay` ms unless its
 * (src → dst) is in `blocked`; virtual time jumps to the next delivery or timer.
 */
import assert from 'node:assert/strict';
import { Engine, State, type EngineConfig, type EngineEvent } from '../../shim/engine/index.ts';
import { generateHbaSet } from '../../shim/wire/hba.ts';
import { ms, type Millis } from '../../shim/time.ts';
import { SimRng } from '../helpers/rng.ts';

export interface Host {
  name: string;
  engine: Engine;
  locators: string[];
  ulid: string;
  events: EngineEvent[];
  delivered: { srcUlid: string; payload: Uint8Array }[];
}

interface InFlight { at: number; src: string; dst: string; bytes: Uint8Array; to: Host }

/** An HBA set over `prefixes` (sec 0, deterministic randomness). */
export function hbaHost(seed: number, prefixes: string[]): { ulid: string; locators: string[]; cgaParams: Uint8Array } {
  const rng = new SimRng(seed);
  const set = generateHbaSet({ prefixes, sec: 0, randomBytes: (n) => { const b = new Uint8Array(n); rng.fill(b); return b; } });
  return { ulid: set.members[0]!.address, locators: set.members.map((m) => m.address), cgaParams: set.members[0]!.params };
}

export class Loop {
  now: Millis = ms(0);
  readonly hosts: Host[] = [];
  readonly inflight: InFlight[] = [];
  readonly blocked = new Set<string>();
  /** Every datagram sent: [time, from host, src, dst, message type or 'payload']. */
  readonly log: { at: number; host: string; src: string; dst: string; bytes: Uint8Array }[] = [];
  constructor(readonly delay = 20) {}

  add(name: string, seed: number, prefixes: string[], extra: Partial<EngineConfig> = {}): Host {
    return this.addIdentity(name, seed, hbaHost(seed, prefixes), extra);
  }

  /** A host with a given identity (ULID, locators, PDS — none: a host without HBA/CGA), e.g. a CGA host with extra locators. */
  addIdentity(name: string, seed: number, id: { ulid: string; locators: string[]; cgaParams?: Uint8Array }, extra: Partial<EngineConfig> = {}): Host {
    const base: EngineConfig = { localLocators: id.locators.map((address) => ({ address })), localUlid: id.ulid };
    if (id.cgaParams !== undefined) base.cgaParams = id.cgaParams;
    const engine = new Engine({ ...base, ...extra }, new SimRng(seed + 1000));
    const h: Host = { name, engine, locators: id.locators, ulid: id.ulid, events: [], delivered: [] };
    this.hosts.push(h);
    return h;
  }

  block(src: string, dst: string): void {
    this.blocked.add(`${src}>${dst}`);
  }

  /** Drain every host's output into the network. */
  flush(): void {
    for (const h of this.hosts) {
      for (let t = h.engine.pollTransmit(); t !== undefined; t = h.engine.pollTransmit()) {
        this.log.push({ at: this.now, host: h.name, src: t.src, dst: t.dst, bytes: t.bytes });
        const to = this.hosts.find((x) => x !== h && x.locators.includes(t.dst));
        if (to === undefined || this.blocked.has(`${t.src}>${t.dst}`)) continue;
        this.inflight.push({ at: this.now + this.delay, src: t.src, dst: t.dst, bytes: t.bytes, to });
      }
      for (let e = h.engine.pollEvent(); e !== undefined; e = h.engine.pollEvent()) h.events.push(e);
    }
  }

  /** Send an application packet from `from` to the other host's ULID through the shim. */
  sendPayload(from: Host, to: Host, payload = new Uint8Array([1, 2, 3])): boolean {
    const r = from.engine.encapsulate(this.now, { srcUlid: from.ulid, dstUlid: to.ulid, nextHeader: 17, payload });
    if (r.kind !== 'send') return false;
    const bytes = new Uint8Array(r.header.length + payload.length);
    bytes.set(r.header);
    bytes.set(payload, r.header.length);
    this.log.push({ at: this.now, host: from.name, src: r.src, dst: r.dst, bytes });
    if (!this.blocked.has(`${r.src}>${r.dst}`)) this.inflight.push({ at: this.now + this.delay, src: r.src, dst: r.dst, bytes, to });
    return true;
  }

  /** Advance virtual time to `until`, delivering datagrams and firing timers in order. Bounded. */
  run(until: number, maxSteps = 100_000): void {
    for (let step = 0; step < maxSteps; step++) {
      this.flush();
      const nextPkt = this.inflight.reduce((m, p) => Math.min(m, p.at), Infinity);
      const nextTimer = this.hosts.reduce((m, h) => Math.min(m, h.engine.pollTimeout() ?? Infinity), Infinity);
      const next = Math.min(nextPkt, nextTimer);
      if (next > until) { this.now = ms(until); return; }
      this.now = ms(Math.max(this.now, next));
      const due = this.inflight.filter((p) => p.at <= this.now);
      this.inflight.splice(0, this.inflight.length, ...this.inflight.filter((p) => p.at > this.now));
      for (const p of due) {
        const r = p.to.engine.handleDatagram(this.now, { src: p.src, dst: p.dst, bytes: p.bytes });
        if (r.kind === 'payload') p.to.delivered.push({ srcUlid: r.srcUlid, payload: r.payload });
      }
      for (const h of this.hosts) h.engine.handleTimeout(this.now);
    }
    throw new Error('loop did not settle within maxSteps');
  }

  /** Message types sent by `host` (control messages by type name, payload as 'payload'). */
  types(host?: string): string[] {
    return this.log.filter((l) => host === undefined || l.host === host).map((l) => ((l.bytes[2]! & 0x80) !== 0 ? 'payload' : String(l.bytes[2]! & 0x7f)));
  }
}

/** Two prefixes per host, for two locators each. */
export const A_PREFIXES = ['2001:db8:a1::/64', '2001:db8:a2::/64'];
export const B_PREFIXES = ['2001:db8:b1::/64', '2001:db8:b2::/64'];

/** Hosts A and B (fast profile, 20 ms links) with an ESTABLISHED context, A the initiator. */
export function established(seedA: number, seedB: number): { net: Loop; a: Host; b: Host } {
  const net = new Loop(20);
  const a = net.add('A', seedA, A_PREFIXES, { profile: 'fast' });
  const b = net.add('B', seedB, B_PREFIXES, { profile: 'fast' });
  a.engine.prime(net.now, { ulid: b.ulid, locators: [], ttl: 300, source: 'configured' });
  net.run(200);
  assert.equal(a.engine.status().contexts[0]?.state, State.ESTABLISHED);
  return { net, a, b };
}
