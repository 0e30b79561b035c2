/**
 * `shim6 decode`, `shim6 encode`, `shim6 pcap`: the wire codecs for people. Bytes
 * are hex on the command line; messages are the JSON form of shim/wire/json.ts.
 * Malformed input ends with exit 1 and the WireError code (cli/errors.ts).
 * The codecs load when a command runs (wire-actions.ts).
 */
import type { Command } from 'commander';
import { badValue } from '../errors.ts';
import { socketPath } from '../control-command.ts';
import { UsageError } from '../../shim/errors.ts';
import { DEFAULT_CONTROL_SOCKET_HELP, runtimeDefaultControlSocket } from '../../shim/daemon/control/client.ts';
import { DEFAULT_CAPTURE_BYTES, DEFAULT_CAPTURE_SECONDS, MAX_CAPTURE_BYTES, MAX_CAPTURE_SECONDS } from '../../shim/daemon/capture-limits.ts';

/** The options only `pcap --live` takes: commander's key, the flag. */
const LIVE_ONLY: ReadonlyArray<readonly [string, string]> = [['seconds', '--seconds'], ['payload', '--payload'], ['maxBytes', '--max-bytes'], ['socket', '--socket']];

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
    .description('write Shim6 packets to a pcap: --demo (native IPv6, Next Header 140), or --live from the running daemon (UDP 5533 as sent and received; contrib/wireshark/shim6-udp.lua decodes it)')
    .argument('[file]', 'the pcap file to write')
    .option('--demo', 'write one packet of every message type, plus a payload header')
    .option('--stop', 'end the capture the running daemon is making (another client\'s) now; its command still writes what was captured')
    .option('--live', 'capture the control messages the running daemon sends and receives (control socket)')
    .option('--seconds <n>', `with --live: how long to capture (1..${MAX_CAPTURE_SECONDS}; Ctrl-C ends it early)`, String(DEFAULT_CAPTURE_SECONDS))
    .option('--payload', 'with --live: also the payload headers, with the first octets of what they carry')
    .option('--max-bytes <n>', `with --live: largest file (octets, up to ${MAX_CAPTURE_BYTES}); the capture ends when reached`, String(DEFAULT_CAPTURE_BYTES))
    .option('--socket <path>', `with --live or --stop: control socket path (default ${DEFAULT_CONTROL_SOCKET_HELP})`, socketPath)
    .action(async (file: string | undefined, opts: { demo?: boolean; stop?: boolean; live?: boolean; seconds: string; payload?: boolean; maxBytes: string; socket?: string }, cmd: Command) => {
      if (opts.stop === true) {
        // It ends another client's capture: a capture of one's own (--live, --demo, FILE and their flags) does not go with it.
        const own = [...(opts.live === true ? ['--live'] : []), ...(opts.demo === true ? ['--demo'] : []), ...(file !== undefined ? ['FILE'] : []),
          ...LIVE_ONLY.filter(([key, flag]) => flag !== '--socket' && cmd.getOptionValueSource(key) === 'cli').map(([, flag]) => flag)];
        if (own.length > 0) throw new UsageError('EINVALID', `pcap --stop: ${own.join(', ')} ${own.length === 1 ? 'goes' : 'go'} without --stop (it ends the running capture and writes no file)`, own[0]);
        const { controlRequest } = await import('../../shim/daemon/control/client.ts');
        const r = await controlRequest(opts.socket ?? runtimeDefaultControlSocket('shim6 pcap'), 'capture-stop') as { stopped?: boolean };
        process.stdout.write(r.stopped === true ? 'stopped the running capture\n' : 'no capture was running\n');
        return;
      }
      // The flags given that only --live takes (--seconds and --max-bytes have defaults: given, or not).
      const liveOnly = LIVE_ONLY.filter(([key]) => cmd.getOptionValueSource(key) === 'cli').map(([, flag]) => flag);
      if (opts.demo === true && opts.live === true) throw new UsageError('EINVALID', 'pcap: --demo and --live together: give one of them', '--live');
      if (opts.demo !== true && opts.live !== true) {
        throw new UsageError('EMISSING', liveOnly.length > 0
          ? `pcap: ${liveOnly.join(', ')} ${liveOnly.length === 1 ? 'goes' : 'go'} with --live, which is missing (shim6 pcap --live FILE ${liveOnly[0]} …)`
          : 'pcap: neither --demo nor --live: --demo FILE writes one packet of every message type, --live FILE captures from the running daemon (--stop ends a capture)', '--live');
      }
      if (opts.demo === true && liveOnly.length > 0) throw new UsageError('EINVALID', `pcap --demo: ${liveOnly.join(', ')} ${liveOnly.length === 1 ? 'goes' : 'go'} with --live only`, liveOnly[0]);
      const mode = opts.live === true ? '--live' : '--demo';
      if (file === undefined) throw new UsageError('EMISSING', `pcap ${mode}: the file to write is required (shim6 pcap ${mode} FILE)`, '<file>');
      if (opts.live === true) {
        const int = (flag: string, v: string, max: number): number => {
          if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > max) badValue(flag, v, `expected an integer in 1..${max}`);
          return Number(v);
        };
        const seconds = int('--seconds', opts.seconds, MAX_CAPTURE_SECONDS);
        const maxBytes = int('--max-bytes', opts.maxBytes, MAX_CAPTURE_BYTES);
        const { liveCapture } = await import('./pcap-live.ts');
        const r = await liveCapture(file, { socket: opts.socket ?? runtimeDefaultControlSocket('shim6 pcap'), seconds, maxBytes, payload: opts.payload === true });
        const why = r.ended === 'max-bytes' ? ' (stopped at --max-bytes)' : r.ended === 'stopped' ? ' (stopped early)' : '';
        process.stdout.write(`wrote ${r.packets} packets (${r.bytes} octets) to ${file}${why}\n`);
        return;
      }
      const { writeDemoPcap } = await import('./wire-actions.ts');
      process.stdout.write(`wrote ${writeDemoPcap(file)} packets to ${file}\n`);
    });
}
