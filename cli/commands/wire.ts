/**
 * `shim6 decode`, `shim6 encode`, `shim6 pcap`: the wire codecs for people. Bytes
 * are hex on the command line; messages are the JSON form of shim/wire/json.ts.
 * Malformed input ends with exit 1 and the WireError code (cli/errors.ts).
 * The codecs load when a command runs (wire-actions.ts).
 */
import type { Command } from 'commander';
import { badValue } from '../errors.ts';

export function register(program: Command): void {
  program
    .command('decode')
    .description('decode a Shim6 message (hex, starting at the Shim6 header) and print it as JSON')
    .argument('<hex>', 'the bytes in hex (spaces, colons and a 0x prefix are allowed)')
    .option('--record', 'the bytes are capability-record RDATA (TYPE65300, docs/capability-record.md)')
    .action(async (hex: string, opts: { record?: boolean }) => {
      const { decodeHexToJson, decodeRecordHexToJson } = await import('./wire-actions.ts');
      const json = opts.record === true ? decodeRecordHexToJson(hex) : decodeHexToJson(hex);
      process.stdout.write(JSON.stringify(json, null, 2) + '\n');
    });

  program
    .command('encode')
    .description('encode a Shim6 message given as JSON (as `shim6 decode` prints it) and print the hex')
    .argument('<json>', 'the message, e.g. \'{"type":"I1","contextTag":1,"initiatorNonce":2,"options":[]}\'; bytes as hex strings')
    .option('--record', 'the JSON is a capability record (as `shim6 decode --record` prints it); prints its RDATA')
    .action(async (json: string, opts: { record?: boolean }) => {
      const { encodeJsonToHex, encodeRecordJsonToHex } = await import('./wire-actions.ts');
      process.stdout.write((opts.record === true ? encodeRecordJsonToHex(json) : encodeJsonToHex(json)) + '\n');
    });

  program
    .command('pcap')
    .description('write Shim6 packets as a pcap of native IPv6 packets (Next Header 140, LINKTYPE_RAW)')
    .argument('<file>', 'the pcap file to write')
    .option('--demo', 'write one packet of every message type, plus a payload header')
    .action(async (file: string, opts: { demo?: boolean }) => {
      if (opts.demo !== true) badValue('--demo', opts.demo, 'only --demo is available: live capture is written by the daemon');
      const { writeDemoPcap } = await import('./wire-actions.ts');
      process.stdout.write(`wrote ${writeDemoPcap(file)} packets to ${file}\n`);
    });
}
