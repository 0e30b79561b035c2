/**
 * `shim6 resolver`: run the local DNS stub in the foreground until SIGINT or
 * SIGTERM, with its control socket for `shim6 status`, and the engine in
 * control-plane-only mode (UDP on every global IPv6 address, no TUN): a valid
 * capability record primes it and it starts the exchange with the peer.
 * With --no-engine, or when the host has no global IPv6 address, capability
 * outcomes are only logged.
 */
import type { Command } from 'commander';
import { badValue } from '../errors.ts';
import { Logger, isLogLevel, type LogLevel } from '../../shim/log.ts';
import { UsageError } from '../../shim/errors.ts';
import { checkWorkers, configFromObject, loadConfigFile, MAX_WORKERS, parseHostPort, readSystemResolvers, resolveConfig, UDP_BACKENDS, type ResolverConfig } from '../../resolver/config.ts';
import { ResolverGroup } from '../../resolver/workers.ts';
import { LoggingSink } from '../../resolver/capability-sink.ts';
import { startControlServer } from '../../shim/daemon/control/server.ts';
import { DEFAULT_CONTROL_SOCKET } from '../../shim/daemon/control/client.ts';
import type { CapabilitySink } from '../../resolver/capability-sink.ts';
import { SHIM6_UDP_PORT } from '../../shim/constants.ts';
import { Engine, cryptoRng, type ReplyLimitConfig } from '../../shim/engine/index.ts';
import { LruCapabilityCache } from '../../shim/cache/engine-cache.ts';
import { ms } from '../../shim/time.ts';
import { EngineDriver } from '../../shim/dataplane/engine-driver.ts';
import { DgramTransport } from '../../shim/dataplane/udp.ts';
import { EngineSink } from '../../shim/daemon/sink.ts';
import { LocatorWatcher } from '../../shim/daemon/locators.ts';
import { orderLocators } from '../../shim/daemon/daemon.ts';

const collect = (v: string, prev: string[]): string[] => [...prev, v];

interface ResolverFlags { listen: string[]; upstream: string[]; config?: string; logLevel?: string; socket?: string; udp?: string; workers?: string; capability: boolean; engine: boolean; shimPort: string }

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
  if (flags.udp !== undefined && !UDP_BACKENDS.includes(flags.udp as never)) badValue('--udp', flags.udp, `expected ${UDP_BACKENDS.join(', ')}`);
  const file = flags.config ? loadConfigFile(flags.config) : configFromObject({});
  if (!flags.capability) file.capability.enabled = false;
  if (flags.udp !== undefined) file.udp = flags.udp as ResolverConfig['udp'];
  if (flags.workers !== undefined) {
    if (!/^\d+$/.test(flags.workers)) badValue('--workers', flags.workers, `expected an integer in 1..${MAX_WORKERS}`);
    file.workers = checkWorkers(Number(flags.workers), file.udp, '--workers');
  } else checkWorkers(file.workers, file.udp, 'workers'); // --udp dgram with workers from the file
  const listen = hostPorts(flags.listen, '--listen');
  const upstreams = hostPorts(flags.upstream, '--upstream');
  const config = resolveConfig(file, {
    ...(listen ? { listen } : {}), ...(upstreams ? { upstreams } : {}),
    ...(flags.logLevel ? { logLevel: flags.logLevel as LogLevel } : {}),
    ...(flags.socket ? { controlSocket: flags.socket } : {}),
  }, readSystemResolvers());
  const shimPort = Number(flags.shimPort);
  if (!Number.isInteger(shimPort) || shimPort < 0 || shimPort > 65535) badValue('--shim-port', flags.shimPort, 'expected a UDP port 0..65535');
  const log = new Logger({ level: config.logLevel, component: 'shim6' });
  const engine = flags.engine ? await startEngine(log, shimPort, file.replyLimit, config.capability) : undefined;
  const sink = engine?.sink ?? new LoggingSink(log.child('capability'));
  let resolver: ResolverGroup;
  try {
    resolver = await ResolverGroup.start(config, { sink, log });
  } catch (err) {
    await engine?.close();
    throw err;
  }
  const socketPath = config.controlSocket ?? DEFAULT_CONTROL_SOCKET;
  let control;
  try {
    control = await startControlServer(socketPath, {
      status: async () => ({ resolver: await resolver.status(), engine: engine?.status() ?? null }),
      flush: async () => ({ resolver: await resolver.flush() }),
    }, { log: log.child('control') });
  } catch (err) {
    await resolver.close();
    await engine?.close();
    throw err;
  }
  log.info('resolver ready', {
    listen: resolver.addresses.map((a) => `${a.host}:${a.port}`), upstreams: config.upstreams.map((u) => `${u.host}:${u.port}`), upstreamsFrom: config.upstreamsFrom, udp: resolver.udp, workers: config.workers,
    control: socketPath, engine: engine ? `ulid ${engine.ulid}, UDP ${shimPort}` : 'off (capability outcomes are logged only)',
  });
  await new Promise<void>((resolve) => {
    const stop = (sig: string): void => { log.info('shutting down', { signal: sig }); resolve(); };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
  await control.close();
  await resolver.close();
  await engine?.close();
}

interface RunningEngine { sink: CapabilitySink; ulid: string; status(): unknown; close(): Promise<void> }

/**
 * The engine without a TUN (EngineDriver's control-plane-only mode) on every
 * global IPv6 address of the host, its stateless replies limited by the config
 * file's `replyLimit`; undefined (and said so) when there is none.
 */
async function startEngine(log: Logger, port: number, replyLimit: ReplyLimitConfig, caps: { maxTtlSeconds: number; maxNegativeTtlSeconds: number }): Promise<RunningEngine | undefined> {
  const locals = orderLocators(new LocatorWatcher([], () => undefined).current, undefined);
  if (locals.length === 0) {
    log.warn('no global IPv6 address: engine not started, capability outcomes are logged only');
    return undefined;
  }
  // The engine's caches have the stub's capability caps (capability.maxTtlSeconds, maxNegativeTtlSeconds).
  const cache = new LruCapabilityCache({ positive: { maxTtl: ms(caps.maxTtlSeconds * 1000) }, negative: { maxTtl: ms(caps.maxNegativeTtlSeconds * 1000) } });
  const engine = new Engine({ localLocators: locals, localUlid: locals[0]!.address, replyLimit }, cryptoRng(), { cache });
  const driver = new EngineDriver<Engine>({
    engine, transport: new DgramTransport({ port }), peerPort: port, logger: log.child('engine'),
    onEvent: (e) => log.info('engine event', { ...e }),
  });
  try {
    for (const l of locals) await driver.bindLocator(l.address);
  } catch (err) {
    await driver.close();
    throw err;
  }
  return {
    sink: new EngineSink((fn) => driver.command(fn), log.child('capability')),
    ulid: locals[0]!.address,
    status: () => engine.status(driver.now()),
    close: () => driver.close(),
  };
}

export function register(program: Command): void {
  program.command('resolver')
    .description('run the local DNS stub: forwards and caches, and picks up peers\' shim6 capability records')
    .option('--listen <addr:port>', 'address to listen on, UDP and TCP (repeatable; default 127.0.0.153:53)', collect, [])
    .option('--upstream <addr:port>', 'upstream DNS server (repeatable; default: the config file, else /etc/resolv.conf)', collect, [])
    .option('--config <file>', 'YAML or JSON configuration file (see docs/resolver.md)')
    .option('--log-level <level>', 'debug, info, warn or error')
    .option('--socket <path>', `control socket path (default ${DEFAULT_CONTROL_SOCKET})`)
    .option('--udp <backend>', 'UDP sockets: auto, native (the addon\'s recvmmsg/sendmmsg batches) or dgram (node:dgram); overrides the config key udp (default auto: native when the addon is built)')
    .option('--workers <n>', `resolver threads sharing the UDP listener, spread by question name (1..${MAX_WORKERS}; native UDP only); overrides the config key workers (default 1)`)
    .option('--no-capability', 'do not pick up capability records (plain forwarding stub)')
    .option('--no-engine', 'do not run the engine; capability outcomes are only logged')
    .option('--shim-port <port>', 'UDP port of the engine (Shim6 over UDP, DESIGN.md §3)', String(SHIM6_UDP_PORT))
    .action((opts: ResolverFlags) => run(opts));
}
