/**
 * `shim6 decode`, `shim6 encode`, `shim6 pcap`: the wire codecs for people. Bytes
 * are hex on the command line; messages are the JSON form of shim/wire/json.ts.
 * Malformed input ends with exit 1 and the WireError code (cli/errors.ts).
 */
import type { Command } from 'commander';
import { writeFileSync } from 'node:fs';
import { IPPROTO_NONE } from '../../shim/constants.ts';
import { demoPackets } from '../../shim/wire/demo.ts';
import { decodeMessage, decodePayloadHeader, encodeMessage, encodePayloadHeader, isPayloadHeader } from '../../shim/wire/index.ts';
import { decodeCapabilityRecord, encodeCapabilityRecord, type CapabilityRecord } from '../../shim/wire/capability-record.ts';
import { fromHex, fromJson, messageFromJson, toHex, toJson } from '../../shim/wire/json.ts';
import { encodePcap } from '../../shim/wire/pcap.ts';
import { badValue } from '../errors.ts';

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

/** Decode capability-record RDATA (DESIGN.md §2) to its JSON form. */
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

export function register(program: Command): void {
  program
    .command('decode')
    .description('decode a Shim6 message (hex, starting at the Shim6 header) and print it as JSON')
    .argument('<hex>', 'the bytes in hex (spaces, colons and a 0x prefix are allowed)')
    .option('--record', 'the bytes are capability-record RDATA (TYPE65300, DESIGN.md §2)')
    .action((hex: string, opts: { record?: boolean }) => {
      const json = opts.record === true ? decodeRecordHexToJson(hex) : decodeHexToJson(hex);
      process.stdout.write(JSON.stringify(json, null, 2) + '\n');
    });

  program
    .command('encode')
    .description('encode a Shim6 message given as JSON (as `shim6 decode` prints it) and print the hex')
    .argument('<json>', 'the message, e.g. \'{"type":"I1","contextTag":1,"initiatorNonce":2,"options":[]}\'; bytes as hex strings')
    .option('--record', 'the JSON is a capability record (as `shim6 decode --record` prints it); prints its RDATA')
    .action((json: string, opts: { record?: boolean }) => {
      process.stdout.write((opts.record === true ? encodeRecordJsonToHex(json) : encodeJsonToHex(json)) + '\n');
    });

  program
    .command('pcap')
    .description('write Shim6 packets as a pcap of native IPv6 packets (Next Header 140, LINKTYPE_RAW)')
    .argument('<file>', 'the pcap file to write')
    .option('--demo', 'write one packet of every message type, plus a payload header')
    .action((file: string, opts: { demo?: boolean }) => {
      if (opts.demo !== true) badValue('--demo', opts.demo, 'only --demo is available: live capture is written by the daemon');
      const packets = demoPackets();
      writeFileSync(file, encodePcap(packets));
      process.stdout.write(`wrote ${packets.length} packets to ${file}\n`);
    });
}
