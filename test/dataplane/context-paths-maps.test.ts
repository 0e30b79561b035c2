// The kernel encapsulation's maps (shim6_egr, shim6_ing, shim6_watch) as ContextPaths keeps them
// (shim/dataplane/context-paths.ts), against a recording EncapHook: after every step they must
// match the engine's context and its path — `kernel`: our tag's ingress entry only; `encap`: that
// and the egress entry with the current pair and the peer's current tag; `tun`: neither (the
// engine sees every packet of the peer itself there).
//  - A context re-established by recovery (RFC 5533 §7.17–7.20: R1bis → I2bis → R2, the engine
//    emits context-established again, the peer with a new tag) while on the kernel encapsulation:
//    before, the old egress entry (dead tag, old pair) stayed while status said `kernel`.
//  - Re-homed, then REAP explored and came back to the ULID pair: before, the ingress entry was gone.
//  - A full map (the egress update refused): before, the ingress entry stayed on the TUN path, the
//    kernel decapsulated the peer's packets unseen by the engine, and REAP explored again and again.
//  - Re-homed onto a pair that leaves by a link without the tc programs (not Ethernet: PPP, WireGuard,
//    a cellular modem's raw-IP link): before, the context took the kernel encapsulation and its ULID
//    was routed onto that link, where no program encapsulates: the application's packets left with
//    the ULIDs as addresses, on a path that does not carry them.
//  - The peer's locator set changed (an Update Request): the ingress entry's sources follow the
//    engine's verified locators. Before, it kept a withdrawn one (test/e2e/attack-kernel-path.test.ts F7).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ContextPaths, type DataPath } from '../../shim/dataplane/context-paths.ts';
import type { EncapContext, EncapHook } from '../../shim/dataplane/bpf-encap.ts';
import type { Logger } from '../../shim/log.ts';
import type { Millis } from '../../shim/time.ts';

const L = 'a::1', P = 'b::1', LQ = 'a:2::1', PQ = 'b:2::1';
const TAG = 7;

interface Lab {
  paths: ContextPaths;
  egr: Map<string, EncapContext>;
  ing: Map<number, string>;
  /** The verified peer locators of each ingress entry. */
  ingLocators: Map<number, string[]>;
  watched: Set<string>;
  drops: Record<string, number>;
  warnings: string[];
  /** The engine's context: the peer's tag (a restarted peer has a new one), its verified locators. */
  engine: { peerTag: number; locators: string[] };
  /** What the kernel refuses: a full map; `ingAll`: any ingress update, a replacement too. */
  full: { egr: boolean; ing: boolean; watch: boolean; ingAll: boolean };
  /** Our locators whose packets leave by a link without the tc programs. */
  bare: Set<string>;
  path(): DataPath | undefined;
  /** The maps match the engine's context on its path (see the file's comment). */
  consistent(what: string): void;
  /** REAP explored and settled on `pair` (reap-state exploring, the pair, reap-state operational). */
  rehome(pair: { local: string; peer: string }): void;
}

function lab(t: { after: (f: () => void) => void }): Lab {
  const egr = new Map<string, EncapContext>(), ing = new Map<number, string>(), ingLocators = new Map<number, string[]>(), watched = new Set<string>();
  const full = { egr: false, ing: false, watch: false, ingAll: false };
  const bare = new Set<string>();
  const engine = { peerTag: 111, locators: [P, PQ] };
  const drops: Record<string, number> = {};
  const warnings: string[] = [];
  const hook: EncapHook = {
    // As BpfEncap: the ingress entry first, then the egress one (each refused when its map is full and the key new).
    set(c) {
      if (!hook.accept!(c)) return false;
      const k = `${c.localUlid} ${c.peerUlid}`;
      if (full.egr && !egr.has(k)) return false;
      egr.set(k, { ...c });
      return true;
    },
    accept(c) {
      if (full.ingAll || (full.ing && !ing.has(c.localTag))) return false;
      ing.set(c.localTag, c.peerUlid);
      ingLocators.set(c.localTag, [...c.peerLocators]);
      return true;
    },
    unset(l, p, tag) { egr.delete(`${l} ${p}`); ing.delete(tag); ingLocators.delete(tag); },
    watch(l, p) {
      if (full.watch) return false;
      watched.add(`${l} ${p}`);
      return true;
    },
    unwatch(l, p) { watched.delete(`${l} ${p}`); },
    flows: () => [],
    carries: (local) => !bare.has(local),
  };
  const logger = { info() {}, debug() {}, error() {}, warn(msg: string) { warnings.push(msg); }, child() { return logger; } } as unknown as Logger;
  const paths = new ContextPaths({
    kernel: { watch: () => true, unwatch() {}, refresh: async () => {}, read: () => undefined },
    encap: hook, kernelTraffic: () => true, logger,
    details: () => ({ localTag: TAG, peerTag: engine.peerTag, peerPort: 5533, peerLocators: [...engine.locators] }),
    routes: { contextUp() {}, contextDown() {}, switchPath: async () => {} },
    clock: () => 0 as Millis, flush() {}, drop(r) { drops[r] = (drops[r] ?? 0) + 1; }, fed() {},
  });
  t.after(() => paths.close());
  const path = (): DataPath | undefined => paths.list().find((c) => c.peerUlid === P)?.path;
  return {
    paths, egr, ing, ingLocators, watched, drops, warnings, engine, full, bare, path,
    consistent(what) {
      const c = paths.list().find((x) => x.peerUlid === P);
      const e = egr.get(`${L} ${P}`);
      const shown = `${what}: path ${c?.path}, egr ${e ? `${e.localLocator}->${e.peerLocator} peerTag ${e.peerTag}` : '-'}, ing [${[...ing.keys()].join(',')}]`;
      if (c === undefined) {
        assert.equal(egr.size + ing.size, 0, shown);
        return;
      }
      if (c.path === 'tun') {
        assert.equal(e, undefined, `${shown}: no egress entry on the TUN path`);
        assert.equal(ing.has(TAG), false, `${shown}: no ingress entry on the TUN path (the engine must see the peer's packets)`);
        return;
      }
      assert.equal(ing.get(TAG), P, `${shown}: our tag's ingress entry`);
      assert.deepEqual(ingLocators.get(TAG), engine.locators, `${shown}: the ingress entry's sources are the engine's verified locators`);
      assert.equal(ing.size, 1, shown);
      if (c.path === 'kernel') {
        assert.equal(e, undefined, `${shown}: no egress entry on the kernel path`);
        return;
      }
      assert.deepEqual(e && { l: e.localLocator, p: e.peerLocator, tag: e.peerTag }, { l: c.pair.local, p: c.pair.peer, tag: engine.peerTag }, `${shown}: the egress entry is the current pair and the peer's current tag`);
    },
    rehome(pair) {
      const before = paths.list().find((x) => x.peerUlid === P)!.pair;
      paths.reapState(P, true, before);
      paths.pairChanged(P, pair);
      paths.reapState(P, false, pair);
    },
  };
}

test('a context recovered (peer restarted, new tag) while re-homed: its kernel entries are replaced, and back on the ULID pair no egress entry is left', (t) => {
  const x = lab(t);
  assert.equal(x.paths.established(L, P, { local: L, peer: P }), true);
  x.consistent('established on the ULID pair');
  assert.equal(x.path(), 'kernel');
  x.rehome({ local: LQ, peer: PQ });
  assert.equal(x.path(), 'encap');
  x.consistent('re-homed to Q');
  // B's daemon restarts; our R1bis/I2bis/R2 recovery gives the context B's new tag, on pair Q.
  x.engine.peerTag = 222;
  assert.equal(x.paths.established(L, P, { local: LQ, peer: PQ }), true, 'still off the TUN (the caller must not route it into the TUN)');
  assert.equal(x.path(), 'encap');
  x.consistent('context-established again (recovered), pair Q');
  assert.equal(x.egr.get(`${L} ${P}`)?.peerTag, 222, 'encapsulated with the peer\'s new tag');
  // Q is black-holed, REAP returns to the ULID pair.
  x.rehome({ local: L, peer: P });
  assert.equal(x.path(), 'kernel');
  x.consistent('REAP back on the ULID pair');
  x.paths.ended(P, false);
  x.consistent('context ended');
});

test('a context recovered on its ULID pair while re-homed, or while REAP explored: the maps follow the engine\'s context', (t) => {
  const x = lab(t);
  x.paths.established(L, P, { local: L, peer: P });
  x.rehome({ local: LQ, peer: PQ });
  x.engine.peerTag = 222;
  assert.equal(x.paths.established(L, P, { local: L, peer: P }), true);
  assert.equal(x.path(), 'kernel');
  x.consistent('recovered on the ULID pair from encap');
  // Recovered while REAP explored (on the TUN): REAP starts Operational again, with no reap-state event.
  x.paths.reapState(P, true, { local: L, peer: P });
  assert.equal(x.path(), 'tun');
  x.consistent('exploring');
  x.engine.peerTag = 333;
  assert.equal(x.paths.established(L, P, { local: L, peer: P }), true, 'recovered: back on the kernel path (REAP is Operational)');
  x.consistent('recovered while exploring');
  x.rehome({ local: LQ, peer: PQ });
  assert.equal(x.path(), 'encap', 'the recovered context is not taken for exploring');
  x.consistent('re-homed after the recovery');
});

test('established again off its ULID pair while REAP explored: the kernel encapsulation, as when REAP settles on a pair; established there otherwise: the TUN until the driver settles it', (t) => {
  const x = lab(t);
  x.paths.established(L, P, { local: L, peer: P });
  // P fails: REAP explores (the TUN). The peer's daemon restarts meanwhile; its I1 comes over Q and
  // our R2 establishes it again on pair Q (same tags), REAP Operational with no reap-state event.
  x.paths.reapState(P, true, { local: L, peer: P });
  assert.equal(x.path(), 'tun');
  assert.equal(x.paths.established(L, P, { local: LQ, peer: PQ }), true, 'off the TUN: the caller must not route it into the TUN');
  assert.equal(x.path(), 'encap', 'not left on the TUN, where nothing would move it while its pair stays');
  x.consistent('established again on pair Q from exploring');
  x.paths.ended(P, false);
  x.consistent('context ended');
  // A new context whose exchange went over Q takes the TUN (a restart's challenges of our own
  // stack are answered through it), and so does its establishment again; the driver's settle, once
  // the challenges are answered, puts it on the encapsulation.
  assert.equal(x.paths.established(L, P, { local: LQ, peer: PQ }), false);
  assert.equal(x.path(), 'tun');
  x.consistent('established on pair Q');
  assert.equal(x.paths.established(L, P, { local: LQ, peer: PQ }), false);
  assert.equal(x.path(), 'tun');
  x.consistent('established again on pair Q, not exploring');
  assert.equal(x.paths.settle(LQ, P), false, 'another local ULID\'s context: nothing');
  x.paths.reapState(P, true, { local: LQ, peer: PQ });
  assert.equal(x.paths.settle(L, P), false, 'REAP explores: it moves the context when it settles');
  x.paths.reapState(P, false, { local: LQ, peer: PQ });
  assert.equal(x.path(), 'encap', 'REAP settled on Q');
  x.paths.ended(P, false);
  x.paths.established(L, P, { local: LQ, peer: PQ });
  assert.equal(x.paths.settle(L, P), true);
  assert.equal(x.path(), 'encap');
  x.consistent('settled on the encapsulation');
  assert.equal(x.paths.settle(L, P), false, 'once');
  x.paths.ended(P, false);
  x.paths.established(L, P, { local: L, peer: P });
  assert.equal(x.paths.settle(L, P), false, 'on its ULID pair: the kernel path already');
  assert.equal(x.path(), 'kernel');
});

test('re-homed, then REAP explores and comes back to the ULID pair: the context\'s ingress entry is there again', (t) => {
  const x = lab(t);
  x.paths.established(L, P, { local: L, peer: P });
  x.rehome({ local: LQ, peer: PQ });
  x.consistent('re-homed');
  x.rehome({ local: L, peer: P });
  assert.equal(x.path(), 'kernel');
  assert.equal(x.ing.get(TAG), P, 'shim6_ing holds our tag again (a peer that re-homes alone is decapsulated in the kernel)');
  x.consistent('back on the ULID pair through an exploration');
  // A false exploration on the ULID pair.
  x.rehome({ local: L, peer: P });
  x.consistent('after a false exploration');
});

test('a full egress map: the context stays on the TUN path with no kernel entry (the engine sees the peer\'s packets), counted and warned once', (t) => {
  const x = lab(t);
  x.paths.established(L, P, { local: L, peer: P });
  x.consistent('established');
  x.full.egr = true; // other contexts filled shim6_egr (shim6_ing takes our tag: its key is there, or its slot freed)
  x.rehome({ local: LQ, peer: PQ });
  assert.equal(x.path(), 'tun', 'the encapsulation refused: the TUN path');
  assert.equal(x.ing.has(TAG), false, 'no ingress entry left: the kernel decapsulates none of the peer\'s packets the engine must see');
  x.consistent('re-homed with full maps');
  assert.equal(x.drops['encap-set'], 1);
  // Nothing more happens by itself: no exploration, no route change; REAP's next events find the same.
  for (let i = 0; i < 5; i++) x.rehome({ local: LQ, peer: PQ });
  assert.equal(x.path(), 'tun');
  x.consistent('after more explorations on Q');
  assert.equal(x.drops['encap-set'], 6, 'each refusal counted');
  assert.equal(x.warnings.filter((w) => w.includes('refused a map update')).length, 1, 'warned once, not per refusal');
  // The maps free up: the next settling re-homes it onto the encapsulation.
  x.full.egr = false;
  x.rehome({ local: LQ, peer: PQ });
  assert.equal(x.path(), 'encap');
  x.consistent('maps free again');
});

test('re-homed onto a pair whose packets leave by a link without the tc programs: the TUN path, no kernel entry; onto one with them: the kernel encapsulation', (t) => {
  const x = lab(t);
  x.paths.established(L, P, { local: L, peer: P });
  x.consistent('established');
  x.bare.add(LQ); // our locator on Q is on a link that is not Ethernet (ppp0, wg0, wwan0)
  x.rehome({ local: LQ, peer: PQ });
  assert.equal(x.path(), 'tun', 'the daemon encapsulates what the kernel cannot');
  x.consistent('re-homed onto a link without the programs');
  assert.equal(x.drops['encap-set'], undefined, 'no map refused: not counted as one');
  x.rehome({ local: L, peer: PQ }); // back onto our Ethernet link P, the peer still on Q
  assert.equal(x.path(), 'encap');
  x.consistent('re-homed onto a link with the programs');
});

test('a full shim6_watch (the kernel flows cannot be remembered) is counted and warned, and the context still takes the kernel path', (t) => {
  const x = lab(t);
  x.full.watch = true;
  assert.equal(x.paths.established(L, P, { local: L, peer: P }), true);
  assert.equal(x.drops['encap-watch'], 1);
  assert.equal(x.warnings.length, 1);
  x.consistent('established without flow memory');
});

test('the peer\'s locator set changes (an Update Request): the ingress entry takes the engine\'s verified locators, on the kernel path and the encapsulation; refused, an encapsulated context takes the TUN with no entry', (t) => {
  const x = lab(t);
  x.paths.established(L, P, { local: L, peer: P });
  x.consistent('established, the peer on P and Q');
  x.engine.locators = [P]; // the peer withdrew its locator on Q
  x.paths.peerLocatorsChanged(L, P);
  assert.equal(x.path(), 'kernel');
  x.consistent('Q withdrawn, on the kernel path');
  x.engine.locators = [P, PQ]; // back
  x.paths.peerLocatorsChanged(L, P);
  x.rehome({ local: LQ, peer: PQ });
  assert.equal(x.path(), 'encap');
  x.consistent('re-homed to Q');
  x.engine.locators = [P, PQ, 'b:3::1'];
  x.paths.peerLocatorsChanged(L, P);
  assert.equal(x.path(), 'encap');
  x.consistent('a third locator, encapsulated');
  x.paths.peerLocatorsChanged('a::99', P); // another local ULID's context with the peer: not this one's
  x.consistent('another context\'s update');
  x.full.ingAll = true;
  x.engine.locators = [P, PQ];
  x.paths.peerLocatorsChanged(L, P);
  assert.equal(x.path(), 'tun', 'the new entry refused: the TUN, where the engine checks the sources');
  x.consistent('refused');
  assert.equal(x.drops['encap-set'], 1);
});
