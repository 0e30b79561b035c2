/**
 * What `shim6 resolver` does (cli/commands/resolver.ts registers the command
 * and loads this module only when it runs, so that other commands and --help
 * do not load the resolver, the engine and the data plane). Under systemd
 * (`Type=notify`) it reports READY=1 once the stub answers, STOPPING=1 at stop.
 */
import { badValue } from '../errors.ts';
import { hostPort, Logger, isLogLevel, type LogLevel } from '../../shim/log.ts';
import { UsageError } from '../../shim/errors.ts';
import { checkWorkers, configFromObject, DEFAULT_LISTEN, loadConfigFile, MAX_WORKERS, parseHostPort, readSystemResolvers, resolveConfig, UDP_BACKENDS, type ResolverConfig } from '../../resolver/config.ts';
import { ResolverGroup } from '../../resolver/workers.ts';
import { LoggingSink } from '../../resolver/capability-sink.ts';
import { startControlServer } from '../../shim/daemon/control/server.ts';
import { DEFAULT_CONTROL_SOCKET } from '../../shim/daemon/control/client.ts';
import type { CapabilitySink } from '../../resolver/capability-sink.ts';
import { Engine, cryptoRng, type ReplyLimitConfig } from '../../shim/engine/index.ts';
import { ms } from '../../shim/time.ts';
import { LruCapabilityCache } from '../../shim/cache/engine-cache.ts';
import { EngineDriver } from '../../shim/dataplane/engine-driver.ts';
import { DgramTransport } from '../../shim/dataplane/udp.ts';
import { EngineSink } from '../../shim/daemon/sink.ts';
import { LocatorWatcher } from '../../shim/daemon/locators.ts';
import { orderLocators } from '../../shim/daemon/daemon.ts';
import { ServiceNotifier } from '../../shim/daemon/service-notify.ts';
import { assertHandoverFree, defaultStateDirectory, recover as recoverHandover, ResolvHandover, stubNameservers } from '../../shim/daemon/resolv-handover.ts';

export interface ResolverFlags { listen: string[]; upstream: string[]; config?: string; logLevel?: string; socket?: string; udp?: string; workers?: string; capability: boolean; engine: boolean; shimPort: string; manageResolvConf?: boolean }

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

/** `shim6 resolver` with its parsed flags: runs until SIGINT or SIGTERM. */
export async function run(flags: ResolverFlags): Promise<void> {
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
  const log = new Logger({ level: flags.logLevel && isLogLevel(flags.logLevel) ? flags.logLevel : file.logLevel ?? 'info', component: 'shim6' });
  // A hand-over left by a resolver or daemon killed with SIGKILL: the host's own DNS back before resolv.conf is read.
  const stateDir = defaultStateDirectory();
  recoverHandover(stateDir, log);
  const manage = flags.manageResolvConf === true || file.resolvConf === 'manage';
  const nameservers = manage ? stubNameservers(listen ?? file.listen ?? [DEFAULT_LISTEN], flags.manageResolvConf ? '--manage-resolv-conf' : 'resolvConf') : undefined;
  if (nameservers) assertHandoverFree(stateDir);
  const config = resolveConfig(file, {
    ...(listen ? { listen } : {}), ...(upstreams ? { upstreams } : {}),
    ...(flags.logLevel ? { logLevel: flags.logLevel as LogLevel } : {}),
    ...(flags.socket ? { controlSocket: flags.socket } : {}),
  }, readSystemResolvers());
  const shimPort = Number(flags.shimPort);
  if (!Number.isInteger(shimPort) || shimPort < 0 || shimPort > 65535) badValue('--shim-port', flags.shimPort, 'expected a UDP port 0..65535');
  const notify = ServiceNotifier.fromEnvironment(log);
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
  // The handlers before the ready line: whoever reads it may signal at once, and a signal that
  // came before them met node's default action (exit, nothing closed, the socket file left).
  const stopped = new Promise<void>((resolve) => {
    const stop = (sig: string): void => { log.info('shutting down', { signal: sig }); resolve(); };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
  log.info('resolver ready', {
    listen: resolver.addresses.map((a) => hostPort(a.host, a.port)), upstreams: config.upstreams.map((u) => hostPort(u.host, u.port)), upstreamsFrom: config.upstreamsFrom, udp: resolver.udp, workers: config.workers,
    control: socketPath, engine: engine ? `ulid ${engine.ulid}, UDP ${shimPort}` : 'off (capability outcomes are logged only)',
  });
  // Last: the stub answers, so the host's lookups may go to it (no TUN here: always the file; docs/operations.md).
  let handover: ResolvHandover | undefined;
  if (nameservers) {
    try {
      handover = ResolvHandover.apply({ nameservers, stateDir, log });
    } catch (err) {
      await control.close();
      await resolver.close();
      await engine?.close();
      throw err;
    }
  }
  await notify.ready(`ready: stub ${resolver.addresses.map((a) => hostPort(a.host, a.port)).join(' ')}`);
  await stopped;
  await notify.stopping();
  try { handover?.restore(); } catch (err) { log.error('DNS hand-over not undone', { error: (err as Error).message }); }
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
