/**
 * A fixed set of sample messages, one of every Shim6 control message type plus a
 * payload header, for `shim6 pcap --demo`, the tshark test and the benchmark.
 * Deterministic values from the documentation prefix 2001:db8::/32. The first
 * message is the tshark canary of docs/wire.md "pcap" (I1, tag
 * 0x123456789abc, nonce 0x11111111, checksum 0x9e73).
 */
import { IPPROTO_NONE } from '../constants.ts';
import { encodePayloadHeader } from './header.ts';
import { encodeMessage } from './message-codec.ts';
import type { Shim6Message, Shim6Option } from './messages.ts';
import type { PcapPacket } from './pcap.ts';

export const DEMO_A = '2001:db8:a::1';
export const DEMO_A2 = '2001:db8:a2::1';
export const DEMO_B = '2001:db8:b::1';
export const DEMO_B2 = '2001:db8:b2::1';
const TAG_A = 0x123456789abc;
const TAG_B = 0x0bcdef012345;

const seq = (n: number, start: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (start + i) & 0xff);

const locatorOptions = (self: string, other: string, generation: number): Shim6Option[] => [
  { type: 'LocatorList', critical: false, generation, locators: [{ address: self, verificationMethod: 1 }, { address: other, verificationMethod: 1 }] },
  { type: 'LocatorPreferences', critical: false, generation, elementLength: 3, elements: [{ flags: 0, priority: 1, weight: 10 }, { flags: 0x02, priority: 2, weight: 10 }] },
  { type: 'CgaParameterDataStructure', critical: false, pds: seq(61, 0x40) },
];

/** One message of every type, in type order (I1 first: the canary). */
export function demoMessages(): Shim6Message[] {
  const validator: Shim6Option = { type: 'ResponderValidator', critical: false, validator: seq(20, 0xa0) };
  return [
    { type: 'I1', contextTag: TAG_A, initiatorNonce: 0x11111111, options: [] },
    { type: 'R1', initiatorNonce: 0x11111111, responderNonce: 0x22222222, options: [validator] },
    {
      type: 'I2', contextTag: TAG_A, initiatorNonce: 0x33333333, responderNonce: 0x22222222,
      options: [validator, ...locatorOptions(DEMO_A, DEMO_A2, 1), { type: 'KeepaliveTimeout', critical: false, timeoutSeconds: 10 }],
    },
    { type: 'R2', contextTag: TAG_B, initiatorNonce: 0x33333333, options: locatorOptions(DEMO_B, DEMO_B2, 1) },
    { type: 'R1bis', packetContextTag: TAG_B, responderNonce: 0x44444444, options: [validator] },
    {
      type: 'I2bis', contextTag: TAG_A, initiatorNonce: 0x55555555, responderNonce: 0x44444444, packetContextTag: TAG_B,
      options: [validator, { type: 'UlidPair', critical: false, senderUlid: DEMO_A, receiverUlid: DEMO_B }, { type: 'ForkedInstanceIdentifier', critical: false, forkedInstanceId: 0 }],
    },
    { type: 'UpdateRequest', contextTag: TAG_B, requestNonce: 0x66666666, options: locatorOptions(DEMO_A, DEMO_A2, 2) },
    { type: 'UpdateAck', contextTag: TAG_A, requestNonce: 0x66666666, options: [] },
    { type: 'Keepalive', contextTag: TAG_B, options: [] },
    {
      type: 'Probe', contextTag: TAG_B, state: 'InboundOk',
      sent: [{ source: DEMO_A2, destination: DEMO_B2, nonce: 0x77777777, data: 0 }],
      received: [{ source: DEMO_B2, destination: DEMO_A2, nonce: 0x88888888, data: 0 }],
      options: [],
    },
    { type: 'Error', errorCode: 1, pointer: 16, offendingPacket: seq(24, 0), options: [] },
    { type: 'Close', contextTag: TAG_B, nonce: 0x99999999, options: [] },
    { type: 'CloseAck', contextTag: TAG_A, nonce: 0x99999999, options: [] },
  ];
}

/**
 * The demo as pcap packets: every message from A to B (or back, for the
 * responder's messages), then a payload header (Next Header 59, no ULP bytes).
 * Timestamps start at `startMicros` and step by one millisecond.
 */
export function demoPackets(startMicros = 1_700_000_000_000_000): PcapPacket[] {
  const fromB = new Set(['R1', 'R2', 'R1bis', 'UpdateAck', 'Error', 'CloseAck']);
  const packets: PcapPacket[] = demoMessages().map((m, i) => ({
    timestampMicros: startMicros + i * 1000,
    src: fromB.has(m.type) ? DEMO_B : DEMO_A,
    dst: fromB.has(m.type) ? DEMO_A : DEMO_B,
    shim6: encodeMessage(m),
  }));
  packets.push({ timestampMicros: startMicros + packets.length * 1000, src: DEMO_A2, dst: DEMO_B2, shim6: encodePayloadHeader(IPPROTO_NONE, TAG_B) });
  return packets;
}
