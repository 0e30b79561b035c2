/**
 * What `shim6 resolver` does (cli/commands/resolver.ts registers the command
 * and loads this module only when it runs, so that other commands and --help
 * do not load the resolver, the engine and the data plane): its flags and
 * config file read, then the daemon with the data plane off
 * (shim/daemon/process.ts, daemon.ts `dataPlaneOff`). Under systemd
 * (`Type=notify`) it reports READY=1 once the stub answers, STOPPING=1 at stop.
 */
import { badValue } from '../errors.ts';
import { Logger, isLogLevel, type LogLevel } from '../../shim/log.ts';
import { UsageError } from '../../shim/errors.ts';
import { checkWorkers, configFromObject, DEFAULT_LISTEN, loadConfigFile, MAX_WORKERS, parseHostPort, readSystemResolvers, resolveConfig, UDP_BACKENDS, type ResolverConfig } from '../../resolver/config.ts';
import { runtimeDefaultControlSocket } from '../../shim/daemon/control/client.ts';
import { defaultConfig, type DaemonConfig } from '../../shim/daemon/config.ts';
import { runDaemon } from '../../shim/daemon/process.ts';
import { ServiceNotifier } from '../../shim/daemon/service-notify.ts';
import { parseMetricsEndpoint } from '../../shim/daemon/metrics/endpoint.ts';
import { assertHandoverFree, defaultStateDirectory, recover as recoverHandover, stubNameservers } from '../../shim/daemon/resolv-handover.ts';

export interface ResolverFlags { listen?: string[]; upstream?: string[]; config?: string; logLevel?: string; socket?: string; udp?: string; workers?: string; capability: boolean; engine: boolean; shimPort: string; manageResolvConf?: boolean; metrics?: string }

/** `--listen` (port 0: the kernel picks one) or `--upstream` (`minPort` 1: port 0 is nowhere to send to). */
function hostPorts(list: string[] | undefined, field: string, minPort: 0 | 1): Array<{ host: string; port: number }> | undefined {
  if (list === undefined || list.length === 0) return undefined;
  return list.map((v) => {
    try {
      return parseHostPort(v, field, 53, minPort);
    } catch (err) {
      if (err instanceof UsageError) badValue(field, v, `expected ADDR:PORT or [V6]:PORT, the port ${minPort}..65535, no zone (%…): a link-local address is unreachable`);
      throw err;
    }
  });
}

/** `shim6 resolver` with its parsed flags: runs until SIGINT or SIGTERM (SIGHUP: nothing to reload, logged). */
export async function run(flags: ResolverFlags): Promise<void> {
  // A hand-over left by a resolver or daemon killed with SIGKILL: the host's own DNS back first,
  // before a flag or the config file can refuse this start and before resolv.conf is read for the
  // upstreams. Only a hand-over whose process is gone is undone.
  const stateDir = defaultStateDirectory();
  recoverHandover(stateDir, new Logger({ level: flags.logLevel !== undefined && isLogLevel(flags.logLevel) ? flags.logLevel : 'info', component: 'shim6' }));
  if (flags.logLevel !== undefined && !isLogLevel(flags.logLevel)) badValue('--log-level', flags.logLevel, 'expected debug, info, warn or error');
  if (flags.udp !== undefined && !UDP_BACKENDS.includes(flags.udp as never)) badValue('--udp', flags.udp, `expected ${UDP_BACKENDS.join(', ')}`);
  const file = flags.config ? loadConfigFile(flags.config) : configFromObject({});
  if (!flags.capability) file.capability.enabled = false;
  if (flags.udp !== undefined) file.udp = flags.udp as ResolverConfig['udp'];
  if (flags.workers !== undefined) {
    if (!/^\d+$/.test(flags.workers)) badValue('--workers', flags.workers, `expected an integer in 1..${MAX_WORKERS}`);
    file.workers = checkWorkers(Number(flags.workers), file.udp, '--workers');
  } else checkWorkers(file.workers, file.udp, 'workers'); // --udp dgram with workers from the file
  const listen = hostPorts(flags.listen, '--listen', 0);
  const upstreams = hostPorts(flags.upstream, '--upstream', 1);
  const metricsAt = flags.metrics !== undefined && flags.metrics !== 'off' ? parseMetricsEndpoint('--metrics', flags.metrics) : undefined;
  // Digits only: Number('') is 0, a random port no peer knows.
  const shimPort = /^\d{1,5}$/.test(flags.shimPort) ? Number(flags.shimPort) : -1;
  if (shimPort < 0 || shimPort > 65535) badValue('--shim-port', flags.shimPort, 'expected a UDP port 0..65535');
  const log = new Logger({ level: flags.logLevel && isLogLevel(flags.logLevel) ? flags.logLevel : file.logLevel ?? 'info', component: 'shim6' });
  // The port-53 check and a live holder, before anything starts.
  const manage = flags.manageResolvConf === true || file.resolvConf === 'manage';
  if (manage) {
    stubNameservers(listen ?? file.listen ?? [DEFAULT_LISTEN], flags.manageResolvConf ? '--manage-resolv-conf' : 'resolvConf');
    assertHandoverFree(stateDir);
  }
  const config = resolveConfig(file, {
    ...(listen ? { listen } : {}), ...(upstreams ? { upstreams } : {}),
    ...(flags.logLevel ? { logLevel: flags.logLevel as LogLevel } : {}),
    ...(flags.socket ? { controlSocket: flags.socket } : {}),
  }, readSystemResolvers());
  // Before anything is bound: a user other than root has no default in root's /run/shim6.
  const controlSocket = config.controlSocket ?? runtimeDefaultControlSocket('shim6 resolver');
  // The daemon with the data plane off (shim/daemon/daemon.ts `dataPlaneOff`): of its config only
  // what the engine and the control socket take; the stub takes `config` whole.
  const daemon: DaemonConfig = {
    ...defaultConfig(),
    port: shimPort, replyLimit: file.replyLimit,
    capabilityMaxTtl: config.capability.maxTtlSeconds, capabilityMaxNegativeTtl: config.capability.maxNegativeTtlSeconds,
    controlSocket, log: { level: config.logLevel, format: 'text' },
    metrics: metricsAt,
    // The DNS hand-over (resolv-handover.ts), done by the daemon once the stub answers: no TUN, so always the file.
    resolvConf: manage ? 'manage' : 'off', listen: config.listen.map((l) => ({ address: l.host, port: l.port })),
  };
  await runDaemon(daemon, { log, notify: ServiceNotifier.fromEnvironment(log), dataPlaneOff: { resolver: config, engine: flags.engine } });
}
