/**
 * Hosts that run the real Engine in the simulator: each gets an HBA set
 * (RFC 5535, sec 0, HBA-only, generated from a seeded stream) over its
 * prefixes, so its locators verify at the peer; the first member is its ULID.
 * `shimPair()` builds the usual two-host world: A and B with two prefixes each,
 * every locator pair linked with 20 ms one-way delay, `fast` timer profile.
 */
import assert from 'node:assert/strict';
import { Engine, State, type EngineEvent } from '../../shim/engine/index.ts';
import type { EngineConfig } from '../../shim/engine/config.ts';
import { generateHbaSet } from '../../shim/wire/hba.ts';
import { ms } from '../../shim/time.ts';
import type { LinkConfig } from './network.ts';
import { Sim, type SimHost } from './sim.ts';
import type { SimRng } from '../helpers/rng.ts';
import type { SimEndpoint } from './endpoint.ts';
import type { Delivery } from './app.ts';

/** A host's identity: addresses (the first is the ULID unless given) and, for an HBA/CGA host, the PDS (none: a host without HBA/CGA). */
export interface Identity {
  readonly locators: readonly string[];
  readonly ulid: string;
  readonly params?: Uint8Array;
}

/** An HBA set made from a seeded stream. */
export function hbaIdentity(prefixes: readonly string[], rng: SimRng): Identity & { readonly params: Uint8Array } {
  const set = generateHbaSet({ prefixes, sec: 0, randomBytes: (n) => rng.bytes(n) });
  const locators = set.members.map((m) => m.address);
  return { locators, ulid: locators[0]!, params: set.members[0]!.params };
}

export interface ShimHost extends Identity {
  readonly host: SimHost;
  readonly engine: Engine;
}

/** Engine config for an identity: its locators (all, or the first `count`), its ULID, its PDS, the fast profile. */
export function baseConfig(id: Identity, count = id.locators.length): EngineConfig {
  return {
    localLocators: id.locators.slice(0, count).map((address) => ({ address })), profile: 'fast',
    ...(id.ulid !== id.locators[0] ? { localUlid: id.ulid } : {}), ...(id.params !== undefined ? { cgaParams: id.params } : {}),
  };
}

/** Add a host running the Engine; `config` is merged over `baseConfig(id)`; `rng`: the engine's random stream (default: the host's own). */
export function addShimHost(sim: Sim, name: string, id: Identity, config: Partial<EngineConfig> = {}, rng?: SimRng): ShimHost {
  const host = sim.addHost({ name, locators: id.locators, ulid: id.ulid }, (s) => new Engine({ ...baseConfig(id), ...config }, rng ?? s.rng) as unknown as SimEndpoint);
  // `engine` follows the host's endpoint, so it stays right across rebootShimHost().
  return { ...id, host, get engine() { return host.endpoint as unknown as Engine; } };
}

/** addShimHost, and every locator pair between the new host and each host already there linked (20 ms one way). */
export function addLinkedShimHost(sim: Sim, name: string, id: Identity, config: Partial<EngineConfig> = {}, rng?: SimRng): ShimHost {
  const others = [...sim.hosts];
  const h = addShimHost(sim, name, id, config, rng);
  for (const o of others) sim.connectHosts(h.host, o);
  return h;
}

/** Replace a host's engine by a fresh one in place: the host rebooted and lost every context (`rng`: default a new stream of the host's). */
export function rebootShimHost(sim: Sim, h: ShimHost, config: Partial<EngineConfig> = {}, rng: SimRng = h.host.rng.fork()): ShimHost {
  h.host.endpoint = new Engine({ ...baseConfig(h), ...config }, rng) as unknown as SimEndpoint;
  sim.flush();
  return h;
}

type ConfigFor = Partial<EngineConfig> | ((ids: { a: Identity; b: Identity }) => Partial<EngineConfig>);

export interface PairOptions {
  readonly link?: Partial<LinkConfig>;
  readonly a?: ConfigFor;
  readonly b?: ConfigFor;
  readonly aPrefixes?: readonly string[];
  readonly bPrefixes?: readonly string[];
}

export const A_PREFIXES = ['2001:db8:a1::/64', '2001:db8:a2::/64'] as const;
export const B_PREFIXES = ['2001:db8:b1::/64', '2001:db8:b2::/64'] as const;

/** Two Engine hosts, every locator pair linked (20 ms one way unless `link` says otherwise). */
export function shimPair(seed: number, o: PairOptions = {}): { sim: Sim; a: ShimHost; b: ShimHost } {
  const sim = new Sim(seed);
  const ids = { a: hbaIdentity(o.aPrefixes ?? A_PREFIXES, sim.rng.fork()), b: hbaIdentity(o.bPrefixes ?? B_PREFIXES, sim.rng.fork()) };
  const cfg = (c: ConfigFor | undefined): Partial<EngineConfig> => (typeof c === 'function' ? c(ids) : c ?? {});
  const a = addShimHost(sim, 'a', ids.a, cfg(o.a));
  const b = addShimHost(sim, 'b', ids.b, cfg(o.b));
  sim.connectHosts(a.host, b.host, { delay: ms(20), ...o.link });
  return { sim, a, b };
}

/** One Engine host 'a' alone on a new simulator (no links: what it sends is captured, then unrouted); `config` over the fast profile. */
export function shimAlone(seed: number, config: Partial<EngineConfig> = {}, prefixes: readonly string[] = A_PREFIXES): { sim: Sim; a: ShimHost } {
  const sim = new Sim(seed);
  return { sim, a: addShimHost(sim, 'a', hbaIdentity(prefixes, sim.rng.fork()), config) };
}

/** DNS priming as the resolver would do it: `peer`'s ULID and all its locators, in order. */
export function primeWith(sim: Sim, at: ShimHost, peer: Identity, ttlSeconds = 3600): void {
  at.engine.prime(sim.now, {
    ulid: peer.ulid,
    locators: peer.locators.map((address, i) => ({ address, flags: 0, priority: i, weight: 1 })),
    ttl: ttlSeconds,
    source: 'dns',
  });
  sim.flush();
}

/** `shimPair` with an ESTABLISHED context, A the initiator (configured peer, no locator hints): both ends settled after 200 ms. */
export function configuredPair(seed: number, o: PairOptions = {}): { sim: Sim; a: ShimHost; b: ShimHost } {
  const p = shimPair(seed, o);
  p.a.engine.prime(p.sim.now, { ulid: p.b.ulid, locators: [], ttl: 300, source: 'configured' });
  p.sim.runFor(200);
  assert.equal(p.a.engine.status().contexts[0]?.state, State.ESTABLISHED);
  return p;
}

/** The engine's events on a host, in order (the simulator records them untyped). */
export function engineEvents(h: ShimHost): EngineEvent[] {
  return h.host.events.map((e) => e.event as unknown as EngineEvent);
}

/** Payload the engine on `h` delivered (through a context; not plain IPv6 and not the adversary's). */
export function shimDeliveries(sim: Sim, h: ShimHost): Delivery[] {
  return sim.ledger.deliveries.filter((d) => d.host === h.host.name && d.path === 'shim');
}

/** The app on `from` sends one payload to `to`'s ULID (from `srcUlid`): true when it went through a context (false: plain IPv6, and the engine may have started an exchange). */
export function sendShim(sim: Sim, from: ShimHost, to: Identity, srcUlid: string = from.ulid): boolean {
  return sim.ledger.sent.get(sim.send(from.host, to.ulid, srcUlid))?.path === 'shim';
}

/** Number of context-established events a host reported. */
export function established(h: ShimHost): number {
  return h.host.eventsOf('context-established').length;
}

/**
 * `shimPair` with A's context with B, primed by DNS, brought to `state` (I1-SENT, I2-SENT,
 * I2BIS-SENT, CLOSING or ESTABLISHED), B's datagrams to A dropped where that holds it there:
 * I2-SENT loses B's R2 (B is established), CLOSING B's Close Ack. With A's tag for the context.
 */
export function pairWithContextIn(state: State, seed: number): { sim: Sim; a: ShimHost; b: ShimHost; tag: number } {
  const { sim, a, b } = shimPair(seed);
  const stateOfA = (): string | undefined => a.engine.status().contexts[0]?.state;
  primeWith(sim, a, b);
  if (state === State.I2_SENT) {
    sim.driveUntil(() => stateOfA() === State.I2_SENT, { within: 5000 });
    sim.setLink(b.ulid, a.ulid, { blackhole: true }, 'forward');
    sim.driveUntil(() => established(b) === 1, { within: 5000 });
  } else if (state !== State.I1_SENT) {
    sim.driveUntil(() => established(a) === 1 && established(b) === 1, { within: 5000 });
    if (state === State.I2BIS_SENT) {
      rebootShimHost(sim, b); // B lost the context: A's next payload draws an R1bis, A sends I2bis
      sendShim(sim, a, b);
      sim.driveUntil(() => stateOfA() === State.I2BIS_SENT, { within: 5000 });
    } else if (state === State.CLOSING) {
      sim.setLink(b.ulid, a.ulid, { blackhole: true }, 'forward');
      a.engine.close(sim.now, b.ulid);
      sim.flush();
    }
  }
  assert.equal(stateOfA(), state);
  return { sim, a, b, tag: a.engine.status().contexts[0]!.contextTag };
}
