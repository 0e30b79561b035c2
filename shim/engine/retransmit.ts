/**
 * The Retransmit timer of an establishing context (RFC 5533 §7.8, §7.12,
 * §7.19): resend the I1, I2 or I2bis with back-off, fall back from I2 to I1
 * after I2_RETRIES_MAX, fail to E-FAILED after I1_RETRIES_MAX; in ESTABLISHED,
 * the I2bis of a recovery off the current pair (recovery.ts); E-FAILED too after I2_CYCLES_MAX
 * I2 cycles (not RFC 5533's bound). Apart from
 * handshake.ts and recovery.ts so neither imports the other's timers.
 */
import type { Millis } from '../time.ts';
import { State } from './states.ts';
import type { Context } from './context.ts';
import type { Core } from './core.ts';
import { failEstablishment, sendI1, sendI2 } from './handshake.ts';
import { onSideRetransmit, resendI2bis } from './recovery.ts';
import { I2_CYCLES_MAX } from '../constants.ts';

/** Retransmission timer in I1-SENT / I2-SENT / I2BIS-SENT (§7.8, §7.12, §7.19). */
export function onRetransmit(core: Core, ctx: Context, now: Millis): void {
  // ESTABLISHED: only an I2bis answering an R1bis off the current pair (recovery.ts) retransmits.
  if (ctx.state === State.ESTABLISHED) return onSideRetransmit(core, ctx, now);
  ctx.retries++;
  const max = ctx.state === State.I1_SENT ? core.timers.i1RetriesMax : ctx.state === State.I2_SENT ? core.timers.i2RetriesMax : core.timers.i2bisRetriesMax;
  // The peer talks to us with our tag (it has it from our R2 to its I1, §7.4, or from our I2) and
  // has not answered the I2 for a whole timeout, resent at each of its packets: a peer that restarted
  // cannot verify its previous instance's validator, and waiting out the cycle (14–42 s under `rfc`)
  // changes nothing. Its R2 to our I1 ends the exchange.
  const over = ctx.retries > max || (ctx.state === State.I2_SENT && ctx.i2Nudged);
  // Each R1 starts an I2 cycle anew: bounded, or a peer that drops every I2 keeps us here forever.
  const exhausted = over && ctx.state === State.I2_SENT && ++ctx.i2Cycles >= I2_CYCLES_MAX;
  const step = core.step(ctx, exhausted ? 'cycles-max' : over ? 'timeout-max' : 'timeout');
  if (step === undefined) return;
  if (ctx.state === State.E_FAILED) return failEstablishment(core, ctx, now, 'no-answer');
  if (over) {
    ctx.retries = 0; // back to I1 (§7.12): a fresh I1 cycle with a fresh nonce
    ctx.i2Nudged = false;
    core.table.setNonce(ctx, core.newNonce());
    return sendI1(core, ctx, now);
  }
  if (ctx.state === State.I1_SENT) sendI1(core, ctx, now);
  else if (ctx.state === State.I2_SENT) sendI2(core, ctx, now);
  else resendI2bis(core, ctx, now);
}
