/**
 * What a scenario may look at inside a host: the Engine's public `status()`,
 * reduced to the fields that define a context (state, ULIDs, tags, locator
 * pair, peer locators) — not timers or counters, which move on their own.
 * Two equal snapshots mean "this context did not change".
 */
import type { ShimHost } from './shim-hosts.ts';

export interface ContextSnap {
  readonly state: string;
  readonly ulids: readonly [string, string];
  /** [our context tag, the peer's]. */
  readonly tags: readonly [number, number];
  readonly pair: { readonly local: string; readonly peer: string };
  /** Peer locators with their verification flags, in the engine's order. */
  readonly peerLocators: readonly string[];
  /** Peer locators verified (HBA/CGA) and shown to work by a probe. */
  readonly usablePeerLocators: readonly string[];
}

/** Every context of a host, ordered by our tag. */
export function allContexts(h: ShimHost): ContextSnap[] {
  return h.engine.status().contexts
    .map((c) => ({
      state: c.state,
      ulids: [c.localUlid, c.peerUlid] as const,
      tags: [c.contextTag, c.peerContextTag] as const,
      pair: { local: c.pair.local, peer: c.pair.peer },
      peerLocators: c.peerLocators.map((l) => `${l.address}${l.verified ? '+v' : ''}`),
      usablePeerLocators: c.peerLocators.filter((l) => l.verified && l.probed).map((l) => l.address),
    }))
    .sort((x, y) => x.tags[0] - y.tags[0]);
}

/** The host's only context (throws when it has none or several). */
export function contextSnapshot(h: ShimHost): ContextSnap {
  const all = allContexts(h);
  if (all.length !== 1) throw new Error(`${h.host.name} has ${all.length} contexts, expected 1`);
  return all[0]!;
}
