/**
 * Context confusion (RFC 5533 §7.6, §7.15): removal of a stale context whose
 * CT(peer) the peer has reused for another ULID pair or FII. Called whenever
 * CT(peer) is set (I2, I2bis, R2).
 */
import { State } from './states.ts';
import type { Context } from './context.ts';
import type { Core } from './core.ts';

/**
 * §7.15: after CT(peer) of `ctx` was set, any other ESTABLISHED / I2BIS-SENT
 * context with the same CT(peer), an overlapping Ls(peer) and another ULID
 * pair or FII is stale — the peer lost it and reused the tag. Remove it.
 */
export function checkConfusion(core: Core, ctx: Context): void {
  const same = core.table.byPeerTag.get(ctx.ctPeer);
  if (same === undefined || same.length < 2) return;
  for (const other of [...same]) {
    if (other === ctx || (other.state !== State.ESTABLISHED && other.state !== State.I2BIS_SENT)) continue;
    if (!other.peer.some((l) => ctx.peerLocator(l.address) !== undefined)) continue;
    if (other.localUlid === ctx.localUlid && other.peerUlid === ctx.peerUlid && other.fii === ctx.fii) continue;
    core.removeContext(other);
    core.emit({ kind: 'context-closed', localUlid: other.localUlid, peerUlid: other.peerUlid, contextTag: other.ctLocal, reason: 'confusion', resumable: false });
  }
}
