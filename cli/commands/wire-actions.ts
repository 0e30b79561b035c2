/**
 * The wire commands' work (`shim6 decode`, `encode`, `pcap`), loaded by
 * wire.ts when one of them runs so that the rest of the command line starts
 * without the codecs.
 */
import { IPPROTO_NONE } from '../../shim/constants.ts';
import { demoPackets } from '../../shim/wire/demo.ts';
import { decodeMessage, decodePayloadHeader, encodeMessage, encodePayloadHeader, isPayloadHeader } from '../../shim/wire/index.ts';
import { decodeCapabilityRecord, encodeCapabilityRecord, type CapabilityRecord } from '../../shim/wire/capability-record.ts';
import { fromHex, fromJson, messageFromJson, toHex, toJson } from '../../shim/wire/json.ts';
import { encodePcap } from '../../shim/wire/pcap.ts';
import { writeOutputFile } from '../output-file.ts';

/** Decode hex bytes: a control message, or a payload header (P bit set). */
export function decodeHexToJson(hex: string): unknown {
  const bytes = fromHex(hex, 'hex');
  if (isPayloadHeader(bytes)) {
    const h = decodePayloadHeader(bytes);
    const json: Record<string, unknown> = { type: 'PayloadHeader', nextHeader: h.nextHeader, contextTag: h.contextTag };
    if (bytes.length > h.headerLength) json.payload = toHex(bytes.subarray(h.headerLength));
    return json;
  }
  return toJson(decodeMessage(bytes));
}

/** Byte fields of the capability record's JSON form (hex strings). */
const RECORD_BYTE_FIELDS = ['digest', 'value'];

/** Decode capability-record RDATA (docs/capability-record.md) to its JSON form. */
export function decodeRecordHexToJson(hex: string): unknown {
  return toJson(decodeCapabilityRecord(fromHex(hex, 'hex')));
}

/** Encode a capability record given in its JSON form to RDATA hex. */
export function encodeRecordJsonToHex(json: string): string {
  return toHex(encodeCapabilityRecord(fromJson(json, RECORD_BYTE_FIELDS) as CapabilityRecord));
}

/** Encode the JSON form to hex; `{"type":"PayloadHeader",nextHeader,contextTag}` gives a payload header. */
export function encodeJsonToHex(json: string): string {
  const msg = messageFromJson(json) as unknown as Record<string, unknown>;
  if (msg.type === 'PayloadHeader') {
    const next = msg.nextHeader === undefined ? IPPROTO_NONE : (msg.nextHeader as number);
    const payload = msg.payload === undefined ? new Uint8Array(0) : fromHex(msg.payload, 'payload');
    return toHex(encodePayloadHeader(next, msg.contextTag as number)) + toHex(payload);
  }
  return toHex(encodeMessage(msg as unknown as Parameters<typeof encodeMessage>[0]));
}

/** `shim6 pcap --demo FILE`: one packet of every message type; returns how many. FILE: 0600, not through a symbolic link. */
export function writeDemoPcap(file: string): number {
  const packets = demoPackets();
  writeOutputFile(file, encodePcap(packets));
  return packets.length;
}
