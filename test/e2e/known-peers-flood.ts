// The spoofed I1 flood of the known-peers tests (test/e2e/attack-known-peers*.test.ts, docs/security.md
// "Known peers"): 10,000 forged I1s/s at B from one address in each of 10,000 /64s, B's global reply
// bucket one token that the flood takes (the next in 1,000 s), the known peers' reserve the default.
// One process sends the flood in bursts, so a global token that came due between two bursts would
// answer whoever is next, a benign peer as well: with the bucket empty only the reserve answers one.
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { LAB_ADDR } from '../../lab/topology.ts';
import type { AttackLab, StatusView } from './attack-fixture.ts';
import { waitFor } from '../helpers/wait.ts';

/** B's `replyLimit.global`: one token, the next in 1,000 s (the flood keeps it empty). */
export const FLOOD_GLOBAL = { rate: 0.001, burst: 1 };
/** B's `replyLimit.knownPeers` (the default). */
const RESERVE = { rate: 100, burst: 100 };
/** The forged sources: one address in each of FORGED_PREFIXES /64s of this /48. */
export const FORGED_48 = '2001:db8:f0';
const FORGED_PREFIXES = 10_000;
const FLOOD_RATE = 10_000;

export type Guard = NonNullable<StatusView['engine']['guard']> & { knownPeers?: Record<string, number> };
export const guardOf = async (l: AttackLab, h: 'a' | 'b'): Promise<Guard> => (await l.status(h)).engine.guard as Guard;

/** A running flood at B, started once B's guard read `b0`. */
export interface Flood { b0: Guard; t0: number }

/** Start the flood at B's P address and wait until B refuses R1s to it (its global bucket drained). */
export async function startFlood(l: AttackLab): Promise<Flood> {
  const b0 = await guardOf(l, 'b');
  const t0 = Date.now();
  await l.attacker.spoofFlood({ prefix48: FORGED_48, prefixes: FORGED_PREFIXES, dst: LAB_ADDR.bP, rate: FLOOD_RATE });
  try {
    await waitFor(async () => (await guardOf(l, 'b')).replies.R1!.limited - b0.replies.R1!.limited > 1000, 'B refusing R1s to the flood', 120_000, 250);
  } catch (err) {
    await l.attacker.spoofFloodStop();
    throw err;
  }
  return { b0, t0 };
}

/**
 * After the flood `f` stopped (`sent`: what the attacker sent): what B answered since it started
 * stayed within its global bucket (`global`, B's `replyLimit.global`) and its reserve over the time,
 * and the flood was refused (counted). Returns B's guard now.
 */
export async function withinBuckets(t: TestContext, l: AttackLab, f: Flood, flood: { sent: number; sendMs: number }): Promise<Guard> {
  const global = FLOOD_GLOBAL;
  const b1 = await guardOf(l, 'b');
  const seconds = (Date.now() - f.t0) / 1000;
  const sent = b1.replies.R1!.sent - f.b0.replies.R1!.sent;
  const limited = b1.replies.R1!.limited - f.b0.replies.R1!.limited;
  const bound = Math.floor(global.burst + RESERVE.burst + (global.rate + RESERVE.rate) * seconds);
  t.diagnostic(`flood: ${flood.sent} forged I1s in ${(flood.sendMs / 1000).toFixed(1)} s; B: R1 sent ${sent}, limited ${limited} over ${seconds.toFixed(1)} s `
    + `(bound global + reserve ${bound}); known peers ${JSON.stringify(b1.knownPeers ?? null)}`);
  assert.ok(sent <= bound, `${sent} R1s within the global and reserve buckets over ${seconds.toFixed(1)} s = ${bound}`);
  assert.ok(limited > 0, 'the flood was refused, counted');
  return b1;
}
