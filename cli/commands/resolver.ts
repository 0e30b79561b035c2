/**
 * `shim6 resolver`: run the local DNS stub in the foreground until SIGINT or
 * SIGTERM, with its control socket for `shim6 status`. Capability outcomes go
 * to a sink that logs them (the engine is wired in by the daemon once it lands).
 */
import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { badValue } from '../errors.ts';
import { Logger, isLogLevel, type LogLevel } from '../../shim/log.ts';
import { UsageError } from '../../shim/errors.ts';
import { configFromObject, loadConfigFile, parseHostPort, resolveConfig } from '../../resolver/config.ts';
import { Resolver } from '../../resolver/index.ts';
import { LoggingSink } from '../../resolver/capability-sink.ts';
import { startControlServer } from '../../shim/control/server.ts';
import { DEFAULT_CONTROL_SOCKET } from '../../shim/control/client.ts';

const collect = (v: string, prev: string[]): string[] => [...prev, v];

interface ResolverFlags { listen: string[]; upstream: string[]; config?: string; logLevel?: string; socket?: string; capability: boolean; engine: boolean }

function hostPorts(list: string[], field: string): Array<{ host: string; port: number }> | undefined {
  if (list.length === 0) return undefined;
  return list.map((v) => {
    try {
      return parseHostPort(v, field, 53);
    } catch (err) {
      if (err instanceof UsageError) badValue(field, v, 'expected ADDR:PORT or [V6]:PORT');
      throw err;
    }
  });
}

async function run(flags: ResolverFlags): Promise<void> {
  if (flags.logLevel !== undefined && !isLogLevel(flags.logLevel)) badValue('--log-level', flags.logLevel, 'expected debug, info, warn or error');
  const file = flags.config ? loadConfigFile(flags.config) : configFromObject({});
  if (!flags.capability) file.capability.enabled = false;
  let resolvConf = '';
  try { resolvConf = readFileSync('/etc/resolv.conf', 'utf8'); } catch { /* no resolv.conf: upstreams must be configured */ }
  const listen = hostPorts(flags.listen, '--listen');
  const upstreams = hostPorts(flags.upstream, '--upstream');
  const config = resolveConfig(file, {
    ...(listen ? { listen } : {}), ...(upstreams ? { upstreams } : {}),
    ...(flags.logLevel ? { logLevel: flags.logLevel as LogLevel } : {}),
    ...(flags.socket ? { controlSocket: flags.socket } : {}),
  }, resolvConf);
  const log = new Logger({ level: config.logLevel, component: 'shim6' });
  const resolver = await Resolver.start(config, { sink: new LoggingSink(log.child('capability')), log });
  const socketPath = config.controlSocket ?? DEFAULT_CONTROL_SOCKET;
  let control;
  try {
    control = await startControlServer(socketPath, { status: () => ({ resolver: resolver.status(), engine: null }) });
  } catch (err) {
    await resolver.close();
    throw err;
  }
  log.info('resolver ready', { listen: resolver.addresses.map((a) => `${a.host}:${a.port}`), upstreams: config.upstreams.map((u) => `${u.host}:${u.port}`), control: socketPath, engine: 'not wired (logging sink)' });
  await new Promise<void>((resolve) => {
    const stop = (sig: string): void => { log.info('shutting down', { signal: sig }); resolve(); };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
  await control.close();
  await resolver.close();
}

export function register(program: Command): void {
  program.command('resolver')
    .description('run the local DNS stub: forwards and caches, and picks up peers\' shim6 capability records')
    .option('--listen <addr:port>', 'address to listen on, UDP and TCP (repeatable; default 127.0.0.153:53)', collect, [])
    .option('--upstream <addr:port>', 'upstream DNS server (repeatable; default: the config file, else /etc/resolv.conf)', collect, [])
    .option('--config <file>', 'YAML or JSON configuration file (see docs/resolver.md)')
    .option('--log-level <level>', 'debug, info, warn or error')
    .option('--socket <path>', `control socket path (default ${DEFAULT_CONTROL_SOCKET})`)
    .option('--no-capability', 'do not pick up capability records (plain forwarding stub)')
    .option('--no-engine', 'do not run the engine; capability outcomes are only logged')
    .action((opts: ResolverFlags) => run(opts));
}
