/**
 * The deterministic simulator (quinn tests/util.rs `Pair`/`drive`): hosts with
 * several locators, each owning one endpoint (the Engine, or a stand-in); the
 * Network of links between locator pairs; virtual time that jumps straight to
 * the next delivery, timer or scheduled action; one seed for every random draw;
 * an adversary tap; and drive loops that throw instead of spinning when a
 * scenario does not settle. Owns: time, hosts, the drive loop. Must not know
 * protocol bytes: it moves datagrams and records what endpoints report.
 */
import { ms, type Millis } from '../../shim/time.ts';
import { Adversary } from './adversary.ts';
import { APP_NEXT_HEADER, makePayload, PayloadLedger, type SentPayload } from './app.ts';
import type { EndpointEvent, HandleResult, Ipv6, SimEndpoint } from './endpoint.ts';
import { Network, type LinkConfig, type WirePacket } from './network.ts';
import { SimRng } from '../helpers/rng.ts';

/** A drive loop ran out of steps or virtual time before its condition held. */
export class SimStallError extends Error {
  readonly code = 'SIM_STALL';
}

/** An endpoint did something no real host can (sent from an address it does not own…). */
export interface Violation {
  readonly at: Millis;
  readonly host: string;
  readonly what: string;
}

export interface HostSpec {
  readonly name: string;
  readonly locators: readonly Ipv6[];
  /** The address the app uses as its own ULID; default the first locator. */
  readonly ulid?: Ipv6;
}

/** What a factory gets to build one host's endpoint. */
export interface EndpointSetup {
  readonly name: string;
  readonly locators: readonly Ipv6[];
  readonly ulid: Ipv6;
  /** This host's own seeded stream (the engine's Rng). */
  readonly rng: SimRng;
  readonly now: Millis;
}

export class SimHost {
  readonly events: Array<{ at: Millis; event: EndpointEvent }> = [];
  readonly drops: Array<{ at: Millis; reason: string; packet: WirePacket }> = [];
  constructor(
    readonly name: string,
    readonly locators: Ipv6[],
    readonly ulid: Ipv6,
    public endpoint: SimEndpoint,
    readonly rng: SimRng,
  ) {}

  /** Events of one kind, in order. */
  eventsOf(kind: string): EndpointEvent[] {
    return this.events.filter((e) => e.event.kind === kind).map((e) => e.event);
  }
}

/** Start of virtual time: far from 0 so nothing confuses "0" with "unset". */
export const SIM_EPOCH = ms(1_000_000);

export class Sim {
  now: Millis;
  readonly rng: SimRng;
  readonly net: Network;
  readonly hosts: SimHost[] = [];
  readonly adversary: Adversary;
  readonly ledger = new PayloadLedger();
  readonly violations: Violation[] = [];
  /** Steps taken over the whole run. */
  steps = 0;
  /** Called after every delivery to an endpoint (property tests check invariants here). */
  onDeliver: ((host: SimHost, packet: WirePacket, result: HandleResult) => void) | undefined;
  readonly #actions: Array<{ at: Millis; seq: number; fn: () => void }> = [];
  #actionSeq = 0;
  readonly #owner = new Map<Ipv6, SimHost>();

  constructor(readonly seed: number, start: Millis = SIM_EPOCH) {
    this.now = start;
    this.rng = new SimRng(seed);
    this.net = new Network(this.rng.fork());
    this.adversary = new Adversary(this.net, () => this.now);
  }

  addHost(spec: HostSpec, factory: (s: EndpointSetup) => SimEndpoint): SimHost {
    const ulid = spec.ulid ?? spec.locators[0];
    if (ulid === undefined) throw new RangeError(`host ${spec.name} needs a locator`);
    const rng = this.rng.fork();
    const endpoint = factory({ name: spec.name, locators: spec.locators, ulid, rng, now: this.now });
    const h = new SimHost(spec.name, [...spec.locators], ulid, endpoint, rng);
    for (const a of [...spec.locators, ulid]) {
      if (this.#owner.has(a) && this.#owner.get(a) !== h) throw new RangeError(`address ${a} owned twice`);
      this.#owner.set(a, h);
    }
    this.hosts.push(h);
    return h;
  }

  host(name: string): SimHost {
    const h = this.hosts.find((x) => x.name === name);
    if (!h) throw new RangeError(`no host ${name}`);
    return h;
  }

  /** The host that owns `address`. */
  ownerOf(address: Ipv6): SimHost | undefined {
    return this.#owner.get(address);
  }

  /** Link a and b in both directions (or change both directions). */
  connect(a: Ipv6, b: Ipv6, cfg: Partial<LinkConfig> = {}): void {
    this.net.setDirection(a, b, cfg);
    this.net.setDirection(b, a, cfg);
  }

  /** Link every locator of h1 with every locator of h2. */
  connectHosts(h1: SimHost, h2: SimHost, cfg: Partial<LinkConfig> = {}): void {
    for (const a of h1.locators) for (const b of h2.locators) this.connect(a, b, cfg);
  }

  /** Change a link now: `forward` is a → b only, `reverse` b → a only. */
  setLink(a: Ipv6, b: Ipv6, patch: Partial<LinkConfig>, dir: 'both' | 'forward' | 'reverse' = 'both'): void {
    if (dir !== 'reverse') this.net.setDirection(a, b, patch);
    if (dir !== 'forward') this.net.setDirection(b, a, patch);
  }

  /** Black-hole (or heal) every link touching `address`, in both directions. */
  setLocatorBlackhole(address: Ipv6, on: boolean): void {
    for (const [s, d] of this.net.directions()) if (s === address || d === address) this.net.setDirection(s, d, { blackhole: on });
  }

  /** Run `fn` at virtual time `at` (e.g. switch a black hole on). */
  at(at: Millis, fn: () => void): void {
    const item = { at, seq: this.#actionSeq++, fn };
    const i = this.#actions.findIndex((x) => x.at > at);
    if (i < 0) this.#actions.push(item);
    else this.#actions.splice(i, 0, item);
  }

  /** The app on `from` sends one numbered payload to `dstUlid`; returns its id. */
  send(from: SimHost, dstUlid: Ipv6, srcUlid: Ipv6 = from.ulid): string {
    const id = this.ledger.nextId(from.name);
    const payload = makePayload(id, srcUlid, dstUlid);
    const r = from.endpoint.encapsulate(this.now, { srcUlid, dstUlid, nextHeader: APP_NEXT_HEADER, payload });
    let rec: SentPayload;
    if (r.kind === 'send') {
      const bytes = new Uint8Array(r.header.length + payload.length);
      bytes.set(r.header, 0);
      bytes.set(payload, r.header.length);
      this.#transmit(from, { src: r.src, dst: r.dst, bytes });
      rec = { id, at: this.now, from: from.name, srcUlid, dstUlid, path: 'shim', via: { src: r.src, dst: r.dst } };
    } else {
      // Without a context, the ULIDs are the locators: plain IPv6.
      this.#transmit(from, { src: srcUlid, dst: dstUlid, bytes: payload, plain: true });
      rec = { id, at: this.now, from: from.name, srcUlid, dstUlid, path: 'plain' };
    }
    this.ledger.recordSent(rec);
    this.flush();
    return id;
  }

  #transmit(from: SimHost, p: WirePacket): void {
    if (!from.locators.includes(p.src) && !(p.plain && p.src === from.ulid)) {
      this.violations.push({ at: this.now, host: from.name, what: `sent from ${p.src}, which it does not own` });
    }
    this.adversary.tap(from.name, p);
    this.net.send(this.now, p);
  }

  #deliver(p: WirePacket): void {
    const h = this.#owner.get(p.dst);
    if (!h) return;
    const owned = [...h.locators, h.ulid];
    if (p.plain) {
      this.ledger.recordDelivery({ at: this.now, host: h.name, srcUlid: p.src, dstUlid: p.dst, via: { src: p.src, dst: p.dst }, path: 'plain', forged: p.forged === true }, p.bytes, owned);
      return;
    }
    const r = h.endpoint.handleDatagram(this.now, { src: p.src, dst: p.dst, bytes: p.bytes });
    this.onDeliver?.(h, p, r);
    if (r.kind === 'payload') {
      this.ledger.recordDelivery({ at: this.now, host: h.name, srcUlid: r.srcUlid, dstUlid: r.dstUlid, via: { src: p.src, dst: p.dst }, path: 'shim', forged: p.forged === true }, r.payload, owned);
    } else if (r.kind === 'drop') {
      h.drops.push({ at: this.now, reason: r.reason, packet: p });
    }
  }

  /** Drain every endpoint's transmit and event queues (bounded). */
  flush(): void {
    for (const h of this.hosts) {
      for (let n = 0; ; n++) {
        if (n > 100_000) throw new SimStallError(`${h.name} queued more than 100000 datagrams at once`);
        const d = h.endpoint.pollTransmit();
        if (!d) break;
        this.#transmit(h, { src: d.src, dst: d.dst, bytes: d.bytes });
      }
      for (let n = 0; ; n++) {
        if (n > 100_000) throw new SimStallError(`${h.name} queued more than 100000 events at once`);
        const e = h.endpoint.pollEvent();
        if (!e) break;
        h.events.push({ at: this.now, event: e });
      }
    }
  }

  /** Earliest pending delivery, timer or action. */
  nextTime(): Millis | undefined {
    let t = this.net.nextAt();
    const a = this.#actions[0]?.at;
    if (a !== undefined && (t === undefined || a < t)) t = a;
    for (const h of this.hosts) {
      const x = h.endpoint.pollTimeout();
      if (x !== undefined && (t === undefined || x < t)) t = x;
    }
    return t;
  }

  /** Jump to the next thing that happens and let it happen. False when nothing is pending. */
  step(): boolean {
    this.flush();
    const next = this.nextTime();
    if (next === undefined) return false;
    this.steps++;
    if (next > this.now) this.now = next;
    while (this.#actions[0] && this.#actions[0].at <= this.now) this.#actions.shift()!.fn();
    for (let p = this.net.popDue(this.now); p; p = this.net.popDue(this.now)) this.#deliver(p.packet);
    for (const h of this.hosts) {
      const t = h.endpoint.pollTimeout();
      if (t !== undefined && t <= this.now) h.endpoint.handleTimeout(this.now);
    }
    this.flush();
    return true;
  }

  /**
   * Run everything due up to `t`, then stand at `t`. Throws after `maxSteps`.
   * What endpoints queued since the last step (a test called the engine
   * directly) leaves first, at the current time.
   */
  runUntil(t: Millis, maxSteps = 200_000): void {
    this.flush();
    for (let n = 0; ; n++) {
      const next = this.nextTime();
      if (next === undefined || next > t) break;
      if (n >= maxSteps) throw new SimStallError(`runUntil(${t}) took more than ${maxSteps} steps at ${this.now}`);
      this.step();
    }
    if (t > this.now) this.now = t;
    this.flush();
  }

  runFor(d: number, maxSteps?: number): void {
    this.runUntil(ms(this.now + d), maxSteps);
  }

  /**
   * Step until `pred()` holds; throw SimStallError when it still does not after
   * `within` ms of virtual time or `maxSteps` steps, or when nothing is pending.
   * Returns the virtual time it took.
   */
  driveUntil(pred: () => boolean, opts: { within: number; maxSteps?: number; what?: string }): Millis {
    const start = this.now;
    const deadline = this.now + opts.within;
    const maxSteps = opts.maxSteps ?? 200_000;
    const what = opts.what ?? 'condition';
    this.flush();
    for (let n = 0; !pred(); n++) {
      const next = this.nextTime();
      if (next === undefined) throw new SimStallError(`${what}: nothing pending at ${this.now - start} ms and still false`);
      if (next > deadline) throw new SimStallError(`${what}: not reached within ${opts.within} ms`);
      if (n >= maxSteps) throw new SimStallError(`${what}: not reached within ${maxSteps} steps`);
      this.step();
    }
    return ms(this.now - start);
  }
}
