/**
 * Context states and their transitions: RFC 5533 Appendix B as ONE table, plus
 * our coordinated teardown (CLOSING, types 60/61;
 * docs/wire.md "Close and CloseAck"). The handlers never assign `ctx.state`
 * themselves: they ask `transition(state, trigger)` and apply the row, so this
 * table is the single source of truth and a test walks it. This module knows
 * nothing about messages, timers or contexts' contents.
 */

/** RFC 5533 §6.2 context states, plus CLOSING (our Close / CloseAck extension). */
export const State = {
  IDLE: 'IDLE',
  I1_SENT: 'I1-SENT',
  I2_SENT: 'I2-SENT',
  I2BIS_SENT: 'I2BIS-SENT',
  ESTABLISHED: 'ESTABLISHED',
  E_FAILED: 'E-FAILED',
  NO_SUPPORT: 'NO-SUPPORT',
  CLOSING: 'CLOSING',
} as const;
export type State = (typeof State)[keyof typeof State];

/** What happened to the context (Appendix B "Trigger" column). */
export type Trigger =
  | 'heuristic'           // prime() / encapsulate() / node configuration decides to set up a context
  | 'recv-I1'             // I1 for this ULID pair (ESTABLISHED: CT(peer) differs; else from where the context's packets go)
  | 'recv-I1-ct-match'    // ESTABLISHED only: retransmitted I1 with our CT(peer) (R2 was lost), from where the context's packets go
  | 'recv-I1-stateless'   // I1 for this ULID pair from an address the context's packets do not go to, or within the R2 gap (handshake.ts answersI1There)
  | 'recv-R1'             // R1 whose Initiator Nonce matches
  | 'recv-R1-probe'       // R1 answering a host-based independent probe: capability known, stop
  | 'recv-I2'             // I2 with a valid validator (and, for existing contexts, a verified source locator)
  | 'recv-I2bis'          // I2bis with a valid validator
  | 'recv-R2'             // R2 whose Initiator Nonce and locator pair match
  | 'recv-R1bis'          // R1bis for our CT(peer) and current locator pair
  | 'recv-payload'        // payload header or other control message (Update, Keepalive, Probe)
  | 'timeout'             // retransmission timer, counter still ≤ max
  | 'timeout-max'         // retransmission timer, counter > max
  | 'cycles-max'          // I2-SENT: the I2 cycle ran out I2_CYCLES_MAX times (not RFC 5533's: bounds §7.12's fall back)
  | 'icmp-no-support'     // ICMPv6 Parameter Problem / port unreachable for our I1 (RFC 5533 §7.8)
  | 'icmp-unreachable'    // ICMPv6 destination unreachable for our I1, and the peer has no other locator (icmp.ts)
  | 'holddown-expired'    // NO_R1_HOLDDOWN_TIME / ICMP_HOLDDOWN_TIME elapsed
  | 'idle-gc'             // implementation heuristic: quiescent for the idle timeout (RFC 5533 §9)
  | 'peer-gone'           // proven Port Unreachables for peerGoneTimeout, nothing heard: the peer's daemon is gone (icmp.ts)
  | 'close'               // local close(): coordinated removal (Close)
  | 'recv-Close'          // peer's Close for this context (answered with CloseAck)
  | 'recv-CloseAck';      // peer acknowledged our Close

/** The message a transition sends ('' = none). */
export type Send = '' | 'I1' | 'R1' | 'I2' | 'R2' | 'R1bis' | 'I2bis' | 'Close' | 'CloseAck';

/** One row of the table. `note` quotes the RFC action. */
export interface Transition {
  readonly from: State;
  readonly trigger: Trigger;
  readonly to: State;
  readonly send: Send;
  readonly note: string;
}

const S = State;
const row = (from: State, trigger: Trigger, send: Send, to: State, note: string): Transition => ({ from, trigger, to, send, note });

/**
 * RFC 5533 Appendix B. Rows for IDLE describe what the dispatcher does when no
 * context exists (IDLE contexts are not objects). E-FAILED and NO-SUPPORT
 * "process any packet as in IDLE": their rows for I1/I2/I2bis/payload mirror IDLE's.
 */
export const TRANSITIONS: readonly Transition[] = [
  row(S.IDLE, 'recv-I1', 'R1', S.IDLE, 'Send R1 and stay in IDLE (no state: §7.10)'),
  row(S.IDLE, 'heuristic', 'I1', S.I1_SENT, 'Send I1 and move to I1-SENT'),
  row(S.IDLE, 'recv-I2', 'R2', S.ESTABLISHED, 'Verify validator and RESP nonce, send R2, ESTABLISHED'),
  row(S.IDLE, 'recv-I2bis', 'R2', S.ESTABLISHED, 'Verify validator and RESP nonce, send R2, ESTABLISHED'),
  row(S.IDLE, 'recv-payload', 'R1bis', S.IDLE, 'Send R1bis and stay in IDLE (§7.17)'),

  row(S.I1_SENT, 'recv-R1', 'I2', S.I2_SENT, 'Verify INIT nonce, send I2, I2-SENT'),
  row(S.I1_SENT, 'recv-R1-probe', '', S.IDLE, 'Independent capability probe answered: forget the context'),
  row(S.I1_SENT, 'recv-I1', 'R2', S.I1_SENT, 'Crossing I1s (§7.4): send R2, stay'),
  row(S.I1_SENT, 'recv-I1-stateless', 'R1', S.I1_SENT, 'Not from the peer as we know it (§7.9 read with §16): send R1 as in IDLE, stay'),
  row(S.I1_SENT, 'recv-R2', '', S.ESTABLISHED, 'Verify INIT nonce, ESTABLISHED'),
  row(S.I1_SENT, 'recv-I2', 'R2', S.ESTABLISHED, 'Send R2, ESTABLISHED'),
  row(S.I1_SENT, 'recv-I2bis', 'R2', S.ESTABLISHED, 'Send R2, ESTABLISHED'),
  row(S.I1_SENT, 'timeout', 'I1', S.I1_SENT, 'counter ≤ I1_RETRIES_MAX: send I1'),
  row(S.I1_SENT, 'timeout-max', '', S.E_FAILED, 'counter > I1_RETRIES_MAX: E-FAILED'),
  row(S.I1_SENT, 'icmp-no-support', '', S.NO_SUPPORT, 'ICMP unrecognised next header for our I1 (§7.8)'),
  row(S.I1_SENT, 'icmp-unreachable', '', S.E_FAILED, 'ICMP unreachable for our I1, no other peer locator: as if no R1 came (§7.8)'),
  row(S.I1_SENT, 'recv-payload', '', S.I1_SENT, 'Discard and stay in I1-SENT'),
  row(S.I1_SENT, 'close', '', S.IDLE, 'Nothing established yet: drop the context'),

  row(S.I2_SENT, 'recv-R2', '', S.ESTABLISHED, 'Verify INIT nonce, ESTABLISHED'),
  row(S.I2_SENT, 'recv-I1', 'R2', S.I2_SENT, 'Send R2, stay; and once per I2 cycle an I1 with the I2\'s nonce, which a restarted peer answers with R2 (not RFC 5533\'s table: handshake.ts sendI1InI2Cycle)'),
  row(S.I2_SENT, 'recv-I1-stateless', 'R1', S.I2_SENT, 'Not from the peer as we know it: send R1 as in IDLE, stay'),
  row(S.I2_SENT, 'recv-I2', 'R2', S.I2_SENT, 'Send R2, stay'),
  row(S.I2_SENT, 'recv-I2bis', 'R2', S.I2_SENT, 'Send R2, stay'),
  row(S.I2_SENT, 'recv-R1', '', S.I2_SENT, 'Discard and stay'),
  row(S.I2_SENT, 'timeout', 'I2', S.I2_SENT, 'counter ≤ I2_RETRIES_MAX: send I2'),
  row(S.I2_SENT, 'timeout-max', 'I1', S.I1_SENT, 'counter > I2_RETRIES_MAX, or the peer sent us payload or control with our tag during the cycle: fall back to I1 (§7.12)'),
  row(S.I2_SENT, 'cycles-max', '', S.E_FAILED, 'the I2 cycle ran out I2_CYCLES_MAX times (the peer answers I1, never I2): E-FAILED (not RFC 5533\'s bound)'),
  row(S.I2_SENT, 'recv-payload', 'I2', S.I2_SENT, 'Accept and send I2 (R2 probably lost)'),
  row(S.I2_SENT, 'close', '', S.IDLE, 'Nothing established yet: drop the context'),

  row(S.I2BIS_SENT, 'recv-R2', '', S.ESTABLISHED, 'Verify INIT nonce, ESTABLISHED'),
  row(S.I2BIS_SENT, 'recv-I1', 'R2', S.I2BIS_SENT, 'Send R2, stay'),
  row(S.I2BIS_SENT, 'recv-I1-stateless', 'R1', S.I2BIS_SENT, 'Not from the peer as we know it: send R1 as in IDLE, stay'),
  row(S.I2BIS_SENT, 'recv-I2', 'R2', S.I2BIS_SENT, 'Send R2, stay'),
  row(S.I2BIS_SENT, 'recv-I2bis', 'R2', S.I2BIS_SENT, 'Send R2, stay'),
  row(S.I2BIS_SENT, 'recv-R1', '', S.I2BIS_SENT, 'Discard and stay'),
  row(S.I2BIS_SENT, 'timeout', 'I2bis', S.I2BIS_SENT, 'counter ≤ I2BIS_RETRIES_MAX: send I2bis'),
  row(S.I2BIS_SENT, 'timeout-max', 'I1', S.I1_SENT, 'counter > I2BIS_RETRIES_MAX: fall back to I1 (§7.19)'),
  row(S.I2BIS_SENT, 'recv-payload', 'I2bis', S.I2BIS_SENT, 'Accept and send I2bis (R2 probably lost)'),
  row(S.I2BIS_SENT, 'close', 'Close', S.CLOSING, 'Coordinated removal (Close, our extension)'),

  row(S.ESTABLISHED, 'recv-I1', 'R1', S.ESTABLISHED, 'CT(peer) differs: peer lost state, send R1 (§7.9)'),
  row(S.ESTABLISHED, 'recv-I1-ct-match', 'R2', S.ESTABLISHED, 'CT(peer) matches: R2 was lost, send R2'),
  row(S.ESTABLISHED, 'recv-I1-stateless', 'R1', S.ESTABLISHED, 'Locator not in the set we send to (§7.9 read with §16): send R1'),
  row(S.ESTABLISHED, 'recv-I2', 'R2', S.ESTABLISHED, 'Send R2, update CT(peer)/Ls(peer)'),
  row(S.ESTABLISHED, 'recv-I2bis', 'R2', S.ESTABLISHED, 'Send R2, update CT(peer)/Ls(peer)'),
  row(S.ESTABLISHED, 'recv-R2', '', S.ESTABLISHED, 'Discard (reply to a retransmitted I2)'),
  row(S.ESTABLISHED, 'recv-R1', '', S.ESTABLISHED, 'Discard'),
  row(S.ESTABLISHED, 'recv-R1bis', 'I2bis', S.I2BIS_SENT, 'Peer lost the context: send I2bis (§7.18)'),
  row(S.ESTABLISHED, 'recv-payload', '', S.ESTABLISHED, 'Process'),
  row(S.ESTABLISHED, 'idle-gc', '', S.IDLE, 'Quiescent: discard state (§9)'),
  row(S.ESTABLISHED, 'peer-gone', '', S.IDLE, 'The peer\'s UDP port closed for peerGoneTimeout, nothing heard: its shim6 is gone, discard state (§9 unilateral teardown; not RFC 5533\'s trigger)'),
  row(S.ESTABLISHED, 'close', 'Close', S.CLOSING, 'Coordinated removal (Close, our extension)'),
  row(S.ESTABLISHED, 'recv-Close', 'CloseAck', S.IDLE, 'Peer removes the context (Close): acknowledge and remove'),

  row(S.CLOSING, 'recv-CloseAck', '', S.IDLE, 'Peer removed its state: remove ours'),
  row(S.CLOSING, 'recv-Close', 'CloseAck', S.IDLE, 'Crossing Close messages'),
  row(S.CLOSING, 'timeout', 'Close', S.CLOSING, 'Retransmit Close'),
  row(S.CLOSING, 'timeout-max', '', S.IDLE, 'No CloseAck: remove unilaterally (§9 still applies at the peer)'),
  row(S.CLOSING, 'recv-payload', '', S.CLOSING, 'Discard: the context is going away'),

  row(S.E_FAILED, 'holddown-expired', '', S.IDLE, 'NO_R1_HOLDDOWN_TIME elapsed'),
  row(S.E_FAILED, 'recv-I1', 'R1', S.E_FAILED, 'Process as in IDLE'),
  row(S.E_FAILED, 'recv-I2', 'R2', S.ESTABLISHED, 'Process as in IDLE'),
  row(S.E_FAILED, 'recv-I2bis', 'R2', S.ESTABLISHED, 'Process as in IDLE'),
  row(S.E_FAILED, 'recv-payload', 'R1bis', S.E_FAILED, 'Process as in IDLE'),
  row(S.NO_SUPPORT, 'holddown-expired', '', S.IDLE, 'ICMP_HOLDDOWN_TIME elapsed'),
  row(S.NO_SUPPORT, 'recv-I1', 'R1', S.NO_SUPPORT, 'Process as in IDLE'),
  row(S.NO_SUPPORT, 'recv-I2', 'R2', S.ESTABLISHED, 'Process as in IDLE'),
  row(S.NO_SUPPORT, 'recv-I2bis', 'R2', S.ESTABLISHED, 'Process as in IDLE'),
  row(S.NO_SUPPORT, 'recv-payload', 'R1bis', S.NO_SUPPORT, 'Process as in IDLE'),
];

const INDEX = new Map<string, Transition>(TRANSITIONS.map((t) => [`${t.from}|${t.trigger}`, t]));

/**
 * The row for (state, trigger), or undefined when the trigger is not handled in
 * that state (the dispatcher then drops the message: Appendix B "N/A").
 */
export function transition(from: State, trigger: Trigger): Transition | undefined {
  return INDEX.get(`${from}|${trigger}`);
}

/**
 * E-FAILED and NO-SUPPORT "process any packet as in IDLE" (RFC 5533 Appendix B): the context is
 * only a hold-down, so a packet for it is handled as if there were none (an I1 gets an R1, an
 * I2 makes a new context, a payload or a message naming its tag gets an R1bis).
 */
export function asIdle(state: State): boolean {
  return state === S.E_FAILED || state === S.NO_SUPPORT;
}

/** States in which CT(peer) and Ls(peer) are known, so payload may be sent (RFC 5533 §11). */
export function hasPeerTag(state: State): boolean {
  return state === S.ESTABLISHED || state === S.I2BIS_SENT || state === S.CLOSING;
}
