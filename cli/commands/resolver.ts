/**
 * `shim6 resolver`: run the local DNS stub in the foreground until SIGINT or
 * SIGTERM, with its control socket for `shim6 status`, and the engine in
 * control-plane-only mode (UDP on every global IPv6 address, no TUN): a valid
 * capability record primes it and it starts the exchange with the peer.
 * With --no-engine, or when the host has no global IPv6 address, capability
 * outcomes are only logged.
 */
import type { Command } from 'commander';
import type { ResolverFlags } from './resolver-run.ts';
import { DEFAULT_CONTROL_SOCKET_HELP } from '../../shim/daemon/control/client.ts';
import { SHIM6_UDP_PORT } from '../../shim/constants.ts';
import { MAX_WORKERS } from '../../resolver/limits.ts';
import { socketPath } from '../control-command.ts';
import { pathFlag } from '../errors.ts';

// No commander default for the repeatable flags: it would print `(default: [])` beside the real default in --help.
const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

export function register(program: Command): void {
  program.command('resolver')
    .description('run the local DNS stub: forwards and caches, and picks up peers\' shim6 capability records')
    .option('--listen <addr:port>', 'address to listen on, UDP and TCP (repeatable; default 127.0.0.153:53)', collect)
    .option('--upstream <addr:port>', 'upstream DNS server (repeatable; default: the config file, else /etc/resolv.conf)', collect)
    .option('--config <file>', 'YAML or JSON configuration file (see docs/resolver.md)', pathFlag('--config', 'the path of a configuration file'))
    .option('--log-level <level>', 'debug, info, warn or error')
    .option('--socket <path>', `control socket path (default ${DEFAULT_CONTROL_SOCKET_HELP})`, socketPath)
    .option('--udp <backend>', 'UDP sockets: auto, native (the addon\'s recvmmsg/sendmmsg batches) or dgram (node:dgram); overrides the config key udp (default auto: native when the addon is built)')
    .option('--workers <n>', `resolver threads sharing the UDP listener, spread by question name (1..${MAX_WORKERS}; native UDP only); overrides the config key workers (default 1)`)
    .option('--no-capability', 'do not pick up capability records (plain forwarding stub)')
    .option('--no-engine', 'do not run the engine; capability outcomes are only logged')
    .option('--manage-resolv-conf', 'point the host\'s /etc/resolv.conf at the stub while running and restore it on stop (config key resolvConf: manage; docs/operations.md "DNS hand-over")')
    .option('--metrics <addr:port>', 'serve Prometheus /metrics and the status page / on ADDR:PORT or [V6]:PORT, e.g. [::1]:9533 (default off)')
    .option('--shim-port <port>', 'UDP port of the engine (Shim6 over UDP, docs/wire.md "Transports")', String(SHIM6_UDP_PORT))
    .action(async (opts: ResolverFlags) => (await import('./resolver-run.ts')).run(opts));
}
