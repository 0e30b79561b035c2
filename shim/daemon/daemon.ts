/**
 * `shim6 daemon`: joins the stub resolver (resolver/), the engine
 * (shim/engine/) and the data plane (TUN, UDP, routes, engine-driver.ts) on
 * one host, with a control socket for `shim6 status`, local locators watched
 * (locators.ts), capability caches kept in the cache file, a config
 * reload and a clean stop that sends Close to peers and leaves the host as it
 * found it (routes, rules, TUN device and control socket gone).
 *
 * The one composition root: `shim6 daemon` runs all of it, `shim6 resolver`
 * the same daemon with the data plane off (`DaemonOptions.dataPlaneOff`: no
 * TUN, no routes; the engine on its UDP socket only, or no engine at all).
 * Owns the lifetime of all of those; must not know message formats (engine)
 * or DNS wire details (resolver). Signals are the process's business
 * (process.ts): it calls `reload()` on SIGHUP and `stop()` on SIGTERM/SIGINT.
 */
import { existsSync } from 'node:fs';
import { hostPort, Logger } from '../log.ts';
import { prefix64Key, type Ipv6 } from '../wire/ipv6.ts';
import { ms, type Millis } from '../time.ts';
import { bootClock } from '../clock.ts';
import { SHIM6_UDP_PORT } from '../constants.ts';
import { Engine, cryptoRng, MAX_LOCAL_LOCATORS, type CapabilityCache, type EngineEvent, type LocalLocator, type PeerConfig, type Timers } from '../engine/index.ts';
import { LruCapabilityCache } from '../cache/engine-cache.ts';
import { ResolverGroup } from '../../resolver/workers.ts';
import { readSystemResolvers, type ResolverConfig } from '../../resolver/config.ts';
import { LoggingSink, type CapabilitySink } from '../../resolver/capability-sink.ts';
import { startControlServer, type ControlServer } from './control/server.ts';
import { removeRecordedSocket } from './control/socket-file.ts';
import { claimNamespace, INSTANCE_SOCKET, type InstanceClaim } from './instance-lock.ts';
import { memberParams, type HbaParamsFile } from '../wire/hba-params.ts';
import { EnvironmentError } from '../errors.ts';
import { keysNeedingRestart, loadConfig, stubConfig, withOverrides, type ConfigOverrides, type DaemonConfig } from './config.ts';
import { EngineDriver } from '../dataplane/engine-driver.ts';
import type { ContextPath, RouteHook } from '../dataplane/context-paths.ts';
import { LinuxTun } from '../dataplane/tun-linux.ts';
import { DgramTransport, type UdpTransport } from '../dataplane/udp.ts';
import { NativeUdpTransport, plainIpv6Sender } from '../dataplane/udp-native.ts';
import { ENCAPSULATION_OVERHEAD, Routes } from '../dataplane/routes.ts';
import { NftKernelPath, removeStaleTable as removeStaleKernelTable } from '../dataplane/kernel-path.ts';
import { BpfEncap, removeStaleEncap } from '../dataplane/bpf-encap.ts';
import { PROFILES as TIMER_PROFILES } from './config-timers.ts';
import { addressesNotOursYet, LocatorWatcher, readLocalAddresses, REREAD_AFTER_FAILURE_MS, type LocalAddress, type LocatorDiff } from './locators.ts';
import { EngineSink, CacheFileWriter, cacheFileTime, loadCaches, removeStaleCacheTemps, savedContexts, shiftedTimes, SAVED_CONTEXTS_MAX, type CacheFile, type SavedContext } from './sink.ts';
import { inPersistTimer, openConnections, unackedTcpFlows, withOpenedSince, type OpenConnection } from './open-connections.ts';
import { Discovery } from './discovery.ts';
import { NewFlows, removeStaleNewFlowsTable } from '../dataplane/new-flows.ts';
import type { ServiceNotifier } from './service-notify.ts';
import { STATUS_SCHEMA_VERSION } from './status-schema.ts';
import type { MetricsServer } from './metrics/server.ts';
import type { TrafficReading } from './metrics/history.ts';
import { captureMethods, LiveCapture } from './capture.ts';
import { assertHandoverFree, defaultStateDirectory, handoverMethod, recover as recoverHandover, ResolvHandover, stubNameservers } from './resolv-handover.ts';
import { checkHbaMatchesKey, describeCga, generateCgaUlid, loadCgaKey, removeCgaAddress, type CgaKey, type GeneratedUlid } from './cga-identity.ts';
import { spawnSync } from 'node:child_process';
import { DnsPublisher } from './dns-update.ts';
import { chooseRestored, connectionsByLocal, keptUlidsView, peersOfRestored, restoredCheckMs, unusedRestored } from './restored.ts';
import { contextsToSetUpAgain, pairKey, savedAtOf, savedFreshForMs } from './resume-saved.ts';
import { checkHbaMembers, checkStartInputs, identityListRoom, readHba, refusePeersThatAreUs } from './start-checks.ts';

/** Our routing table for peer ULIDs and the preference of our first policy rule (routes.ts). */
const ROUTE_TABLE = 5533;
const RULE_PREF = 5532;

/** A configured peer is primed for this long (seconds), and again on every reload. */
const CONFIGURED_PEER_TTL = 86_400 * 365;
/** How soon after new capability knowledge the caches are written (a SIGKILL loses at most this much). */
const CACHE_SAVE_DELAY_MS = 2000;
/**
 * The engine's positive entries (positiveTtl, 1 h) last while their contexts do, refreshed in
 * memory (docs/engine.md "Knowledge that lasts"): the file is written at least this often, a
 * quarter of the entries' life (cut by capabilityMaxTtl), 5 s to 10 min, so the successor of a
 * daemon killed with SIGKILL finds every peer it was talking to.
 */
export function cacheRefreshMs(capabilityMaxTtlSeconds: number): number {
  return Math.min(600_000, Math.max(5000, (Math.min(3600, capabilityMaxTtlSeconds) * 1000) / 4));
}

/**
 * How often the daemon checks its cache file (a write when it changed, else a touch of its
 * modification time when it names contexts; sink.ts CacheFileWriter): every cacheRefreshMs, or
 * every half idle timeout when that is shorter (at least 5 s), so the file's time stays within
 * the idle timeout of the last check — a successor after SIGKILL sets its contexts up again
 * (resume-saved.ts: the idle timeout + 60 s).
 */
export function cacheCheckMs(capabilityMaxTtlSeconds: number, idleTimeoutMs: number): number {
  return Math.min(cacheRefreshMs(capabilityMaxTtlSeconds), Math.max(5000, idleTimeoutMs / 2));
}

export interface DaemonOptions {
  /** The file to re-read on reload (absent: reload keeps the config). */
  configFile?: string;
  /** The command line's values over the file's (`shim6 daemon --log-level` …), applied again at every reload. */
  overrides?: ConfigOverrides;
  /** Log sink (default stderr). */
  log?: Logger;
  /** The service manager to tell when the daemon is ready, reloading and stopping (service-notify.ts). */
  notify?: ServiceNotifier;
  /** Where the DNS hand-over saves the original (default `$STATE_DIRECTORY`, else /var/lib/shim6). */
  stateDir?: string;
  /**
   * `shim6 resolver`: the data plane off. No TUN, no routes, no locator
   * watcher, no cache file, no configured peers, no reload; the stub runs with
   * `resolver` (that command's own config file and flags), and the engine —
   * unless `engine` is false, or the host has no global IPv6 address (said in
   * a warning) — runs on its UDP socket (node:dgram, `config.port`) bound to
   * the host's global IPv6 addresses at start. Without an engine capability
   * outcomes are only logged. Logs "resolver ready" instead of "daemon ready".
   */
  dataPlaneOff?: { resolver: ResolverConfig; engine: boolean };
}

/** Recent notable events, for `shim6 status` and the lab's timeline. */
export interface DaemonEvent {
  t: number;
  kind: string;
  [k: string]: unknown;
}

export class Daemon {
  readonly events: DaemonEvent[] = [];
  private watcher: LocatorWatcher | undefined;
  private resolver: ResolverGroup | undefined;
  /** The resolver's sink into the engine (undefined without an engine). */
  private engineSink: EngineSink | undefined;
  private control: ControlServer | undefined;
  private metrics: MetricsServer | undefined;
  private readonly capture: LiveCapture;
  private handover: ResolvHandover | undefined;
  private stopped = false;
  /** Set at the start of `stop()`: no route into the TUN from then on. */
  private stopping = false;
  private saveTimer: NodeJS.Timeout | undefined;
  private refreshTimer: NodeJS.Timeout | undefined;
  private cacheWriter: CacheFileWriter | undefined;
  /** The cache file's modification time at start (cacheFileTime): when its contexts were last known live, with its `savedAt`. */
  private savedTouchedAt: number | undefined;
  /** When the daemon started (bootClock: durations, not times of day, are taken from it). */
  private readonly startedAt = bootClock();
  private ulid = '';
  /**
   * ULIDs kept though the host lacks their address (restored.ts), each with the PDS that proves it
   * (undefined: the engine's own): the local addresses of open connections, gone from the host, that
   * were local ULIDs of the previous daemon's contexts; and addresses removed while this daemon ran
   * that were the local ULID of a live context (`keptLive`). They stay among our locators (BROKEN,
   * after the others) and keep their `local` route in table 5534 until no open connection and no
   * context uses them (checked every restoredCheckMs). Our own ULID (`ulid`) is kept too after its
   * address is gone (docs/operations.md "Renumbering"), for the daemon's life.
   */
  private restored = new Map<Ipv6, Uint8Array | undefined>();
  /** Of `restored`, those this daemon kept itself: removed from the host while a live context's local ULID (status `why: context`). */
  private keptLive = new Set<Ipv6>();
  /** A peer of an open connection of each restored ULID, as the last check found (the cache file records it). */
  private restoredPeers = new Map<Ipv6, Ipv6>();
  private restoredTimer: NodeJS.Timeout | undefined;
  /** The open connections of each restored ULID, as the last check counted (status `keptUlids`). */
  private restoredConnections = new Map<Ipv6, number>();
  /** The restored ULIDs' check: its period, and when (bootClock) the next one runs; undefined when none is scheduled. */
  private restoredEveryMs = 0;
  private restoredNextCheckAt: number | undefined;
  /** The host's addresses on our interfaces, as the locator watcher last reported them. */
  private found: LocalAddress[] = [];
  /** The contexts live when the stop began (closing them empties the engine before the caches are saved). */
  private contextsAtStop: SavedContext[] | undefined;
  private cgaKey: CgaKey | undefined;
  /** Entries our Locator List may have beside our PDS and CGA Signature (Identity.listRoom). */
  private listRoom = MAX_LOCAL_LOCATORS;
  private dns: DnsPublisher | undefined;
  /** This network namespace claimed for this daemon (instance-lock.ts); released at the end of teardown. */
  private claim: InstanceClaim | undefined;
  /** Where the control socket is recorded for the next start (socket-file.ts recordSocketFile); undefined without a claim. */
  private controlRecord: string | undefined;
  /** The CGA we generated and put on an interface (no `hba` set); removed on stop. */
  private cgaUlid: (GeneratedUlid & { ifname: string }) | undefined;
  /** The TUN is a persistent device made before the start (`ip tuntap add`): used as it is, and left at the stop. */
  private tunPersistent = false;
  /** The kernel path's counters (docs/dataplane.md "Kernel path"); undefined: every context uses the TUN. */
  private kernel: NftKernelPath | undefined;
  /** The kernel encapsulation after a re-homing (bpf-encap.ts); undefined: re-homed contexts use the TUN. */
  private encap: BpfEncap | undefined;
  private discovery: Discovery | undefined;
  private newFlows: NewFlows | undefined;
  /** A reading of the open connections for the engine's known peers is due on the next turn (refreshKnownPeers). */
  private knownPeersDue = false;

  /** engine/driver/cache are absent when `shim6 resolver` runs without an engine; routes/tun when the data plane is off. */
  private constructor(
    private config: DaemonConfig,
    readonly log: Logger,
    readonly engine: Engine | undefined,
    readonly driver: EngineDriver<Engine> | undefined,
    readonly routes: Routes | undefined,
    readonly cache: CapabilityCache | undefined,
    private readonly hba: HbaParamsFile | undefined,
    private readonly opts: DaemonOptions,
  ) {
    this.capture = new LiveCapture((tap) => { if (driver) driver.tap = tap; }, () => config.port, log.child('capture'));
  }

  /** The data plane runs (TUN, routes, locator watcher, cache file): `shim6 daemon`. */
  private get dataPlane(): boolean {
    return this.opts.dataPlaneOff === undefined;
  }

  /** Start everything; on any failure, undo what was done and rethrow. */
  static async start(config: DaemonConfig, opts: DaemonOptions = {}): Promise<Daemon> {
    if (opts.dataPlaneOff === undefined && process.geteuid?.() !== 0) {
      throw new EnvironmentError('ENOTROOT', 'shim6 daemon needs root (its TUN, routes, rules and nftables tables, /run/shim6); run it as root, or `shim6 resolver` for the stub alone');
    }
    const log = opts.log ?? new Logger({ level: config.log.level, format: config.log.format, component: 'shim6' });
    // A hand-over left by a daemon killed with SIGKILL: the host's own DNS back before anything
    // reads resolv.conf, and before the claim, which may refuse this start. Safe without the claim:
    // only a hand-over whose process is gone (pid and start time) is undone, never a live one's.
    const stateDir = opts.stateDir ?? defaultStateDirectory();
    recoverHandover(stateDir, log);
    // Before anything is looked at or removed as "a crashed daemon's": is a daemon running here?
    const claim = opts.dataPlaneOff === undefined ? await claimNamespace(INSTANCE_SOCKET, { log }) : undefined;
    try {
      return await Daemon.startClaimed(config, opts, log, claim, stateDir);
    } catch (err) {
      claim?.release();
      throw err;
    }
  }

  private static async startClaimed(config: DaemonConfig, opts: DaemonOptions, log: Logger, claim: InstanceClaim | undefined, stateDir: string): Promise<Daemon> {
    const nameservers = config.resolvConf === 'manage' ? stubNameservers(config.listen.map((l) => ({ host: l.address, port: l.port }))) : undefined;
    if (nameservers) assertHandoverFree(stateDir);
    const off = opts.dataPlaneOff;
    // Read before the engine is built: an open connection bound to a ULID of the previous daemon's
    // contexts whose address is gone keeps it (identify: among our locators, BROKEN, with the PDS
    // that proves it, so its contexts carry its own proof, not our ULID's).
    if (!off) {
      const temps = removeStaleCacheTemps(config.cacheFile);
      if (temps.length > 0) log.info('removed the cache file\'s temp files a killed daemon left', { files: temps });
    }
    // The control socket a daemon killed with SIGKILL left at a path no longer configured (the
    // same path is replaced when bound): its very file, once nobody listens on it (socket-file.ts).
    const controlRecord = claim ? claim.lockFile.replace(/\.lock$/, '.control') : undefined;
    const oldControl = controlRecord ? await removeRecordedSocket(controlRecord, config.controlSocket) : undefined;
    if (oldControl?.outcome === 'removed') log.info('removed the control socket a killed daemon left at its former controlSocket', { path: oldControl.path });
    else if (oldControl?.outcome === 'live' || oldControl?.outcome === 'replaced') log.warn('the former controlSocket of a killed daemon left alone: another file stands there, or a process listens on it', { path: oldControl.path, outcome: oldControl.outcome });
    const saved = off ? undefined : loadCaches(config.cacheFile, log);
    const savedTouchedAt = saved ? cacheFileTime(config.cacheFile, saved.file) : undefined;
    const open = off ? [] : openConnections(true);
    const id = identify(config, off, log, { open, saved: savedContexts(saved) });
    if (!off) refusePeersThatAreUs(config, id.host);
    const { engine, cache } = id.locals.length > 0 ? newEngine(config, id.locals, id.hba, id.cgaKey, id.cgaUlid?.params) : { engine: undefined, cache: undefined };
    // The TSIG key and the name are checked before anything is set up (a refusal here left the TUN
    // open, and the process, its error printed, never ended).
    const dns = config.dnsUpdate && !off && id.ulid ? new DnsPublisher(config.dnsUpdate, { ulid: id.ulid, hba: id.hba, cgaUlid: id.cgaKey !== undefined, recordType: config.recordType }, log.child('dns-update')) : undefined;
    const ref: { daemon?: Daemon } = {};
    const plane = openDataPlane(config, off, engine, log, { stopping: () => ref.daemon?.stopping === true, onEvent: (e) => ref.daemon?.onEngineEvent(e) });
    const daemon = new Daemon(config, log, engine, plane.driver, plane.routes, cache, id.hba, opts);
    daemon.claim = claim;
    daemon.controlRecord = controlRecord;
    daemon.dns = dns;
    daemon.ulid = id.ulid;
    daemon.restored = id.restored;
    daemon.found = id.found;
    daemon.cgaKey = id.cgaKey;
    daemon.cgaUlid = id.cgaUlid;
    daemon.listRoom = id.listRoom;
    daemon.kernel = plane.kernel;
    daemon.encap = plane.encap;
    // The kernel decapsulates a payload only to what the engine takes one to (its locators), not to
    // any address of the host: the same set, from the start and at each change (syncLocals).
    if (engine) daemon.syncLocals(engine);
    daemon.savedTouchedAt = savedTouchedAt;
    daemon.tunPersistent = plane.tun?.persistent === true;
    if (daemon.tunPersistent) log.warn('the TUN is a persistent device made before the start: used, and left at the stop with its MTU and up/down state put back (ip tuntap del to remove it)', { tun: plane.tun!.name });
    ref.daemon = daemon;
    let cachesImported: boolean;
    try {
      cachesImported = await daemon.bringUp(id, plane.tun, nameservers, stateDir, saved, open);
    } catch (err) {
      await daemon.teardown(false, false);
      throw err;
    }
    daemon.logReady(id.locals, cachesImported, plane.transport instanceof NativeUdpTransport ? 'native' : 'dgram', plane.tun?.name);
    // The stub answers, the TUN and the UDP sockets are up: units after shim6.service may start.
    await opts.notify?.ready(daemon.statusLine());
    return daemon;
  }

  /**
   * The parts in order, once built: routes and rules, a socket per locator, the saved caches,
   * configured peers, discovery, the stub, the control socket, metrics, the contexts of open
   * connections and saved ones, the locator watcher, and last the DNS hand-over. Whether caches
   * were imported.
   */
  private async bringUp(id: Identity, tun: LinuxTun | undefined, nameservers: string[] | undefined, stateDir: string, saved: CacheFile | undefined, open: readonly OpenConnection[]): Promise<boolean> {
    const { config, log, driver, engine, routes } = this;
    const off = this.opts.dataPlaneOff;
    routes?.removeStaleRules();
    routes?.setup(tun?.linkBefore);
    // A ULID kept from before the restart whose address is gone sends and receives nothing as a
    // locator (BROKEN), and a socket bound to it would fail (EADDRNOTAVAIL with `udp: dgram`).
    const gone = (a: Ipv6): boolean => id.restored.has(a) && !id.found.some((f) => f.address === a);
    // An address on a link that is down may be tentative (keep_addr_on_down: the kernel runs DAD
    // again when the link comes back), and a socket cannot be bound to it yet (`udp: dgram`): it
    // is bound when it comes up (onLocators).
    const down = (a: Ipv6): boolean => id.found.some((f) => f.address === a && !f.up);
    for (const l of driver ? id.locals : []) {
      if (gone(l.address)) continue;
      if (!down(l.address)) await driver!.bindLocator(l.address);
      else await driver!.bindLocator(l.address).catch((err: Error) => log.warn('cannot bind a locator whose link is down: bound when it comes up', { address: l.address, error: err.message }));
    }
    if (driver) this.keepLocal(...id.locals.map((l) => l.address));
    if (saved) {
      this.command((e, now) => {
        // The file is input from disk: the cache validates it whole and refuses it whole (CacheDataError).
        try { e.importCaches(now, shiftedTimes(saved, now - Date.now())); } catch (err) {
          log.warn('ignoring invalid cache file', { file: config.cacheFile, code: (err as { code?: string }).code, error: (err as Error).message });
        }
      });
    }
    this.primeConfiguredPeers();
    if (!off) {
      this.startDiscovery();
      this.refreshTimer = setInterval(() => this.saveCachesSoon(), cacheCheckMs(config.capabilityMaxTtl, this.idleTimeoutMs()));
      this.refreshTimer.unref();
    }
    await this.startResolver(nameservers !== undefined && tun !== undefined && handoverMethod(tun.name) === 'resolved');
    this.control = await startControlServer(config.controlSocket, {
      status: () => this.status(),
      flush: async () => ({ resolver: (await this.resolver?.flush()) ?? null }),
      ...captureMethods(this.capture),
    }, { log: log.child('control'), ...(this.controlRecord !== undefined ? { record: this.controlRecord } : {}) });
    if (config.metrics) {
      const { startMetricsServer } = await import('./metrics/server.ts');
      this.metrics = await startMetricsServer(config.metrics, { status: () => this.status(), ...(engine ? { traffic: () => this.traffic(engine) } : {}) }, { log: log.child('metrics') });
    }
    if (!off) {
      // The contexts of open connections and saved ones only now, once the start's heavier work is
      // done: a context established while this process still loads the stub and the metrics is
      // one whose peer's packets wait (measured under load: 590 ms from established to ready),
      // and the peer's prompt (its TCP back in RTO since we died) would reach a host that cannot
      // carry it yet.
      // The socket tables again: a connection first opened after the scan at the start (read before
      // the engine, which needs it) and before discovery watched new flows is in neither.
      const unknown = this.protectOpenConnections(id, withOpenedSince(open, openConnections(true)));
      this.setUpSavedContexts(id, saved);
      this.discoverOpenConnections(unknown);
      // The TUN's events (an address added and removed at each route-cache flush) change no locator.
      // A failed reading keeps the set as it was (the watcher reads again shortly): warned at the first failure, then every 30th.
      this.watcher = new LocatorWatcher(config.interfaces, (now, diff) => this.onLocators(now, diff), undefined, tun ? [config.tun.name] : [], id.found, (error, failures) => {
        if (failures === 1 || failures % 30 === 0) this.log.warn('cannot read the local addresses: locators unchanged, reading again', { error, failures, retryMs: REREAD_AFTER_FAILURE_MS });
      });
      this.watcher.start();
      this.publishLocators(id.locals);
      // Links already down at start: explore away from them at once.
      for (const a of id.found) if (!a.up) this.command((e, now) => e.localLocatorDown(now, a.address));
    }
    // Last: the stub answers, so the host's lookups may go to it (no TUN: always the file; resolv-handover.ts).
    if (nameservers) this.handover = ResolvHandover.apply({ nameservers, link: tun?.name, stateDir, log });
    return saved !== undefined;
  }

  /** The ready line: `resolver ready` with the data plane off (what `shim6 resolver` always logged), else `daemon ready`. */
  private logReady(locals: readonly LocalLocator[], cachesImported: boolean, udp: 'native' | 'dgram', tun: string | undefined): void {
    const rc = this.opts.dataPlaneOff?.resolver;
    if (rc) {
      this.log.info('resolver ready', {
        listen: this.stubAddresses(), upstreams: rc.upstreams.map((u) => hostPort(u.host, u.port)), upstreamsFrom: rc.upstreamsFrom, udp: this.resolver?.udp, workers: rc.workers,
        control: this.config.controlSocket, engine: this.engine ? `ulid ${this.ulid}, UDP ${this.config.port}` : 'off (capability outcomes are logged only)',
      });
      return;
    }
    this.log.info('daemon ready', {
      ulid: this.ulid, locators: locals.map((l) => l.address), tun, mtu: this.routes?.tunMtu, port: this.config.port,
      resolver: this.stubAddresses(), control: this.config.controlSocket,
      profile: this.config.timers.profile, cachesImported, udp, dataPath: this.kernel ? 'kernel' : 'tun',
      discovery: this.newFlows ? this.config.discovery : 'off',
      ...(this.cgaKey ? { cga: describeCga(this.cgaKey, this.config.cga!.sec, this.cgaUlid ? 'cga' : 'hba-member') } : {}),
    });
  }

  /** Plain-JSON status for the control socket. */
  async status(): Promise<Record<string, unknown>> {
    const engineStatus = this.driver && this.engine ? this.withPaths(this.engine.status(this.driver.now())) : null;
    // The DNS name that primed each context's peer (the resolver's entry goes with the record's TTL).
    const sink = this.engineSink;
    const primedNames = sink === undefined ? undefined : (engineStatus?.contexts ?? []).flatMap((c) => {
      const name = sink.nameOf(c.peerUlid);
      return name === undefined ? [] : [{ name, ulid: c.peerUlid }];
    });
    const daemon = this.routes ? {
      pid: process.pid, uptimeSeconds: this.uptimeSeconds(), tun: this.config.tun.name, tunPersistent: this.tunPersistent,
      port: this.config.port, profile: this.config.timers.profile, routed: this.routes.routed(),
      locators: this.watcher?.current ?? [], stats: this.driver?.stats, events: this.events.slice(-20),
    } : {
      // shim6 resolver: every key of the schema (docs/status.md), those of the data plane empty, the engine's null without one.
      pid: process.pid, uptimeSeconds: this.uptimeSeconds(), dataPlane: false, tun: null, tunPersistent: null, routed: [], locators: [],
      port: this.driver ? this.config.port : null, profile: this.driver ? this.config.timers.profile : null,
      stats: this.driver?.stats ?? null, events: this.events.slice(-20),
    };
    return {
      schemaVersion: STATUS_SCHEMA_VERSION,
      daemon: {
        ...daemon, ...(this.routes ? { dataPath: this.kernel ? 'kernel' : 'tun' } : {}),
        ...(this.kernel ? { kernelEncapsulation: this.encap ? { links: this.encap.links(), packets: this.encap.stats() ?? null } : 'unavailable' } : {}),
        ...(this.kernel && this.driver ? { kernelPath: { reader: this.kernel.readerKind, everyMs: kernelPollMs(this.config), ...this.driver.kernelPolling() } } : {}), peers: this.config.peers.map((p) => ({ name: p.name ?? null, ulid: p.ulid })),
        ...(primedNames ? { primedNames } : {}),
        ...(this.routes ? { keptUlids: this.keptUlids() } : {}),
        ...(this.cgaKey ? { cga: describeCga(this.cgaKey, this.config.cga!.sec, this.cgaUlid ? 'cga' : 'hba-member') } : {}),
      },
      engine: engineStatus,
      ...(this.dns ? { dnsUpdate: this.dns.status() } : {}),
      resolver: (await this.resolver?.status()) ?? null,
      discovery: this.discovery && this.newFlows ? { mode: this.config.discovery, ...this.discovery.status(), flowsLost: this.newFlows.lost } : null,
    };
  }

  /**
   * The ULIDs kept among our locators though the host lacks their address (status `keptUlids`,
   * restored.ts keptUlidsView): those kept from before the restart or for live contexts, and our own ULID once its
   * address is gone; each flagged as the Locator List we send flags it.
   */
  private keptUlids(): ReturnType<typeof keptUlidsView> {
    const present = (a: Ipv6): boolean => this.found.some((f) => f.address === a);
    if (this.restored.size === 0 && (this.ulid === '' || present(this.ulid))) return [];
    return keptUlidsView({
      restored: this.restored.keys(), live: this.keptLive, ulid: this.ulid, present,
      locals: orderLocators(this.found, this.hba, this.cgaUlid?.address, this.ulid, this.restored, this.listRoom),
      connections: this.restoredConnections, contexts: this.engine?.traffic() ?? [],
      now: bootClock(), nextCheckAt: this.restoredNextCheckAt,
    });
  }

  /**
   * Each established context's data path (`path: kernel|encap|tun`, docs/dataplane.md "Kernel path")
   * beside the engine's view of it; its traffic counts what the kernel carried off the TUN too.
   * Matched by the ULID pair, as the kernel's counters are keyed: another context with the same
   * peer (from another local ULID: one that never got established, say) is not this one, and shows
   * only its own traffic.
   */
  private withPaths(st: ReturnType<Engine['status']>): ReturnType<Engine['status']> {
    const paths = this.pathsByPair();
    return {
      ...st,
      contexts: st.contexts.map((c) => {
        const p = paths.get(pairKey(c.localUlid, c.peerUlid));
        if (p === undefined) return c;
        const k = p.kernel, t = c.traffic;
        return { ...c, path: p.path, ...(k && t ? { traffic: { ...t, packetsIn: t.packetsIn + k.packetsIn, bytesIn: t.bytesIn + k.bytesIn, packetsOut: t.packetsOut + k.packetsOut, bytesOut: t.bytesOut + k.bytesOut } } : {}) };
      }),
    };
  }

  /** The driver's established contexts by ULID pair (`local peer`), the key of the kernel's counters. */
  private pathsByPair(): Map<string, ContextPath> {
    return new Map((this.driver?.paths() ?? []).map((p) => [pairKey(p.localUlid, p.peerUlid), p]));
  }

  /**
   * Each context's payload octets for the status page's plots: the engine's (the TUN) and what the
   * kernel carried on its own path (on the kernel path, the default, nearly all of it).
   */
  private traffic(engine: Engine): TrafficReading[] {
    const paths = this.pathsByPair();
    return engine.traffic().map((r) => {
      const k = paths.get(pairKey(r.localUlid, r.peerUlid))?.kernel;
      return { peerUlid: r.peerUlid, contextTag: r.contextTag, bytesIn: r.bytesIn + (k?.bytesIn ?? 0), bytesOut: r.bytesOut + (k?.bytesOut ?? 0) };
    });
  }

  /** SIGHUP: re-read the config file; apply what can change live (peers, cacheFile, log.level). */
  async reload(): Promise<void> {
    // A SIGHUP after the SIGTERM: nothing to prime into an engine being closed, and after
    // STOPPING=1 the service manager is told nothing more.
    if (this.stopping || this.stopped) { this.log.info('reload: the daemon is stopping; nothing reloaded'); return; }
    await this.opts.notify?.reloading();
    try {
      this.reloadConfig();
    } finally {
      await this.opts.notify?.ready(this.statusLine());
    }
  }

  private uptimeSeconds(): number {
    return Math.floor((bootClock() - this.startedAt) / 1000);
  }

  /** Where the stub listens, as ADDR:PORT. */
  private stubAddresses(): string[] {
    return this.resolver?.addresses.map((a) => hostPort(a.host, a.port)) ?? [];
  }

  /** One line for `systemctl status`: where the stub listens, the TUN, our ULID. */
  private statusLine(): string {
    const stub = this.stubAddresses().join(' ') || 'off';
    if (!this.dataPlane) return `ready: stub ${stub}`;
    return `ready: stub ${stub}, TUN ${this.config.tun.name}, ULID ${this.ulid}`;
  }

  /** Run `fn` on the engine at the driver's clock; false without an engine. */
  /** The kernel decapsulation's own addresses made the engine's locators (bpf-encap.ts `setLocals`). */
  private syncLocals(engine: Engine): void {
    this.encap?.setLocals(engine.localAddresses());
  }

  private command(fn: (engine: Engine, now: Millis) => boolean | void): boolean {
    return this.driver?.command(fn) === true;
  }

  private reloadConfig(): void {
    if (!this.dataPlane) { this.log.info('reload: shim6 resolver reads its configuration at start only; restart it to apply changes'); return; }
    if (!this.opts.configFile) { this.log.info('reload: no config file, nothing to do'); return; }
    let next: DaemonConfig;
    try {
      next = withOverrides(loadConfig(this.opts.configFile), this.opts.overrides ?? {});
      // What the start refuses, refused here too (start-checks.ts, as --check-config): the files
      // the config names (hba, cga.key, dnsUpdate.key) even where their keys wait for a restart,
      // which would otherwise fail (the next boot's) with a config this reload took; a peer that is
      // this host (its addresses now, the CGA ULID among them); the stub's upstreams.
      checkStartInputs(next, readLocalAddresses, this.opts.stateDir ?? defaultStateDirectory());
    } catch (err) {
      this.log.error('reload: config rejected, keeping the running one', { error: (err as Error).message });
      return;
    }
    const restartNeeded = keysNeedingRestart(this.config, next);
    // Peers added and taken out apply in the engine (a peer taken out: what only the configuration
    // said of it goes too, else kept a day, and saved); a kept peer keeps the mode it runs with
    // (a change waits for a restart, and is named at every reload until then).
    const kept = new Set(next.peers.map((p) => p.ulid));
    const removed = this.config.peers.filter((p) => !kept.has(p.ulid)).map((p) => p.ulid);
    const modes = new Map(this.config.peers.map((p) => [p.ulid, p.mode]));
    const peers = next.peers.map((p) => ({ ...p, mode: modes.get(p.ulid) ?? p.mode }));
    this.command((e, now) => { e.setPeers(now, enginePeers(peers)); });
    const level = next.log.level !== this.config.log.level ? { logLevel: next.log.level } : {};
    if (level.logLevel) {
      this.log.setLevel(level.logLevel); // every logger of the main thread shares it
      this.resolver?.setLogLevel(level.logLevel);
    }
    this.config = { ...this.config, peers, cacheFile: next.cacheFile, log: { ...this.config.log, level: next.log.level } };
    this.primeConfiguredPeers();
    this.saveCaches();
    const gone = removed.length > 0 ? { peersRemoved: removed } : {};
    // Written at warn when a key waits for a restart, so a reload to `log.level: warn` or `error` still shows it.
    if (restartNeeded.length === 0) this.log.info('reloaded', { peers: next.peers.length, ...gone, ...level });
    else this.log.warn('reloaded', { peers: next.peers.length, ...gone, ...level, restartNeeded, note: 'these keys take effect at the next restart' });
  }

  /**
   * SIGTERM: Close every context (docs/wire.md "Close and CloseAck") and wait for the Close
   * Acks (bounded by the profile's close timeout × retries, at most 3 s),
   * save the caches, then remove routes, rules, the TUN and the sockets.
   */
  async stop(): Promise<void> {
    if (this.stopped || this.stopping) return;
    this.stopping = true;
    await this.opts.notify?.stopping();
    // The host's DNS back first, while the stub answers: before the wait for the Close Acks, in
    // which a second signal ends the process at once.
    this.giveDnsBack();
    const engine = this.engine;
    // Traffic goes back to plain IPv6 at once, not into a daemon going away (a restart's gap is
    // plain IPv6, and the next daemon protects the open connections again, protectOpenConnections, and
    // sets up again the other contexts saved here, setUpSavedContexts: a UDP server's peers).
    this.newFlows?.close();
    const routed = this.routes?.routed() ?? [];
    await Promise.all(routed.map((peer) => this.routes?.contextDown(peer)));
    if (routed.length > 0) await this.routes?.flushRouteCache();
    const open = engine?.contextCount ?? 0;
    if (engine) this.contextsAtStop = liveContexts(engine);
    if (engine && open > 0) {
      this.command((e, now) => e.close(now));
      const deadline = bootClock() + 3000;
      while (engine.contextCount > 0 && bootClock() < deadline) await new Promise((r) => setTimeout(r, 20));
      this.log.info('contexts closed', { closed: open - engine.contextCount, left: engine.contextCount });
    }
    await this.teardown(true);
  }

  /** Undo everything; `ran`: the daemon was up (a stop, not a failed start: that one ends with its error, not `stopped`). */
  private async teardown(save: boolean, ran = true): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.saveTimer !== undefined) clearTimeout(this.saveTimer);
    if (this.refreshTimer !== undefined) clearInterval(this.refreshTimer);
    if (this.restoredTimer !== undefined) clearInterval(this.restoredTimer);
    // The host's DNS back first, while the stub still answers (a stop did it already).
    this.giveDnsBack();
    this.watcher?.stop();
    this.capture.stop();
    this.dns?.stop();
    this.newFlows?.close();
    if (save) this.saveCaches(true);
    await this.control?.close();
    await this.metrics?.close();
    await this.resolver?.close();
    this.routes?.close();
    await this.driver?.close();
    this.kernel?.close();
    this.encap?.close();
    const cgaLeft = this.cgaUlid ? removeCgaAddress(this.cgaUlid.address) : [];
    if (cgaLeft.length > 0) this.log.warn('CGA ULID not removed', { address: this.cgaUlid!.address, errors: cgaLeft });
    const removed = this.tunPersistent ? `routes${this.kernel ? ', rules and kernel path counters' : ' and rules'} removed; the persistent TUN ${this.config.tun.name} left` : `routes, rules${this.kernel ? ', kernel path counters' : ''} and TUN removed`;
    if (ran) this.log.info(this.routes ? `stopped: ${removed}` : 'stopped');
    this.claim?.release();
  }

  /** Undo the DNS hand-over (resolvConf: manage), once; a failure is logged (the next start tries again). */
  private giveDnsBack(): void {
    const handover = this.handover;
    this.handover = undefined;
    try { handover?.restore(); } catch (err) { this.log.error('DNS hand-over not undone', { error: (err as Error).message }); }
  }

  /** Write the cache file (`final`: the stop's write, made even when nothing but its time changed). */
  private saveCaches(final = false): void {
    if (!this.dataPlane || !this.engine || !this.driver) return; // shim6 resolver keeps no cache file
    try {
      const contexts = withRestored(this.contextsAtStop ?? liveContexts(this.engine), this.restoredPeers);
      const file = this.config.cacheFile;
      // Skips a write that changes nothing but expiry times still two refreshes away (sink.ts).
      if (this.cacheWriter?.file !== file) this.cacheWriter = new CacheFileWriter(file, 2 * cacheRefreshMs(this.config.capabilityMaxTtl));
      // The file's times are wall-clock (sink.ts shiftedTimes): the engine's clock is not, after a suspend or a clock step.
      const now = this.driver.now();
      const wall = Date.now();
      this.cacheWriter.save(wall, { ...shiftedTimes(this.engine.exportCaches(now), wall - now), contexts, savedAt: wall }, final);
    } catch (err) {
      this.log.warn('could not save caches', { file: this.config.cacheFile, error: (err as Error).message });
    }
  }

  /**
   * After a start (a restart, even after kill -9): each open connection (TCP, connected UDP) whose
   * peer the caches or configuration know to run shim6 gets a context now, between the connection's
   * own local address and its peer, so it is protected before its link fails (issue: protection must
   * survive restarts). A local address that is no locator of ours but was the local ULID of a context
   * the previous daemon saved (its address removed: renumbering) is kept as the running daemon keeps
   * its ULID — among our locators, BROKEN, with its `local` route — so the context can carry it; a
   * local address that is neither is left alone (logged).
   * Returns the peers it could not protect (unknown to the caches: discoverOpenConnections).
   */
  private protectOpenConnections(id: Identity, conns: readonly OpenConnection[]): Ipv6[] {
    const ours = new Set(id.locals.map((l) => l.address));
    if (this.restored.size > 0) {
      const ulids = [...this.restored.keys()];
      this.keepLocal(...ulids);
      this.restoredPeers = peersOfRestored(ulids, conns);
      this.restoredConnections = connectionsByLocal(conns, ulids);
      this.log.info('ULIDs kept from before the restart', { ulids, why: 'their address is gone; open connections use them', checkMs: this.checkKeptUlids() });
    }
    const alone: OpenConnection[] = [];
    const usable = conns.filter((c) => ours.has(c.local) || (alone.push(c), false));
    if (alone.length > 0) {
      this.log.info('open connections left alone: their local address is no locator or ULID of ours', { connections: alone.slice(0, 16).map((c) => ({ local: c.local, peer: c.peer, proto: c.proto })), count: alone.length });
    }
    // A peer may have brought its context back already (R1bis/I2bis while we started: on the kernel
    // path the connection kept flowing natively while we were down): protected too.
    const have = new Set(this.engine ? this.engine.traffic().map((c) => pairKey(c.localUlid, c.peerUlid)) : []);
    const done = usable.filter((c) => have.has(pairKey(c.local, c.peer)) || this.command((e, now) => e.protect(now, c.peer, c.local)));
    if (done.length > 0) {
      const peers = [...new Set(done.map((c) => c.peer))];
      const ulids = [...new Set(done.map((c) => c.local))];
      this.log.info('open connections protected again', { peers, ulids, connections: done.length });
    }
    const protectedPairs = new Set(done.map((c) => pairKey(c.local, c.peer)));
    // Their TCP sat in RTO back-off while no daemon carried it: prompted as each context comes up,
    // whether protected now or after discovery (discoverOpenConnections); those in TCP's persist
    // timer (nothing in flight to retransmit) kicked instead.
    const usablePairs = new Set(usable.map((c) => pairKey(c.local, c.peer)));
    if (usablePairs.size > 0) this.driver?.promptAfterRestart(unackedTcpFlows().filter((f) => usablePairs.has(pairKey(f.local, f.peer))));
    return [...new Set(usable.filter((c) => !protectedPairs.has(pairKey(c.local, c.peer))).map((c) => c.peer))];
  }

  /**
   * After a start: the contexts the previous daemon saved (the cache file's `contexts`) that no open
   * connection brought back get a context again (resume-saved.ts): the peer of a socket the socket
   * tables do not show — a UDP server answering with sendto — was told Close by our stop and sends
   * plain IPv6 again; the new context brings its route back. Only pairs whose local ULID is ours
   * now, from a file no older than the idle timeout + a margin; at most SAVED_CONTEXTS_MAX. A pair
   * nobody uses idles out by the idle timer. Logged once.
   */
  private setUpSavedContexts(id: Identity, saved: CacheFile | undefined): void {
    const engine = this.engine;
    const driver = this.driver;
    const pairs = savedContexts(saved);
    if (!engine || !driver || pairs.length === 0) return;
    const ours = new Set([...id.locals.map((l) => l.address), id.ulid]);
    const have = new Set(engine.traffic().map((c) => pairKey(c.localUlid, c.peerUlid)));
    const idleTimeoutMs = this.idleTimeoutMs();
    const choice = contextsToSetUpAgain(pairs, {
      savedAt: savedAtOf(saved), touchedAt: this.savedTouchedAt, now: Date.now(), idleTimeoutMs,
      isOurs: (u) => ours.has(u), covered: (l, p) => have.has(pairKey(l, p)),
    });
    if (choice.stale !== undefined) {
      this.log.info('saved contexts not set up again: the cache file is too old', { pairs: pairs.length, why: choice.stale, ageMs: choice.ageMs, freshForMs: savedFreshForMs(idleTimeoutMs) });
      return;
    }
    const started = choice.pairs.filter((c) => this.command((e, now) => e.protect(now, c.peerUlid, c.localUlid)));
    if (started.length === 0 && choice.pairs.length === 0) return;
    this.log.info('saved contexts set up again', {
      count: started.length, peers: [...new Set(started.map((c) => c.peerUlid))].slice(0, 16),
      notStarted: choice.pairs.length - started.length, covered: choice.covered, notOurs: choice.notOurs, over: choice.over, ageMs: choice.ageMs,
    });
  }

  /** The check of the kept ULIDs (checkRestored) runs from now on, if it did not already; its period. */
  private checkKeptUlids(): number {
    if (this.restoredTimer === undefined) {
      this.restoredEveryMs = restoredCheckMs(this.idleTimeoutMs());
      this.restoredNextCheckAt = bootClock() + this.restoredEveryMs;
      this.restoredTimer = setInterval(() => this.checkRestored(), this.restoredEveryMs);
      this.restoredTimer.unref();
    }
    return this.restoredEveryMs;
  }

  /**
   * Addresses just removed from the host that are the local ULID of a live context (any state; not
   * our own ULID, kept anyway) are kept as the ULIDs from before a restart are (restored.ts): among
   * our locators, BROKEN, with the proof they had (`before`: our locators before the removal), their
   * `local` route kept, so the peer's packets to them are still delivered; released by the same
   * check once no open connection and no context uses them. Returns those kept.
   */
  private keepUlidsInUse(removed: readonly Ipv6[], before: readonly LocalLocator[]): Ipv6[] {
    const engine = this.engine;
    if (!engine || removed.length === 0) return [];
    const used = new Set(engine.traffic().map((c) => c.localUlid));
    const keep = removed.filter((a) => a !== this.ulid && !this.restored.has(a) && used.has(a));
    if (keep.length === 0) return [];
    for (const a of keep) {
      this.restored.set(a, before.find((l) => l.address === a)?.cgaParams);
      this.keptLive.add(a);
    }
    this.log.info('ULIDs kept after their address was removed', { ulids: keep, why: 'live contexts use them', checkMs: this.checkKeptUlids() });
    return keep;
  }

  /**
   * The kept ULIDs (from before the restart, or removed while contexts used them) that no open
   * connection and no context uses any more are released (restored.ts): out of our locators (the
   * engine stops announcing them: a new generation, Update Requests), their `local` route gone
   * unless the host has the address again, and out of the cache file at its next write. The timer
   * stops with the last of them.
   */
  private checkRestored(): void {
    if (this.stopping || !this.engine || !this.driver || !this.routes || this.restored.size === 0) return;
    this.restoredNextCheckAt = bootClock() + this.restoredEveryMs;
    let open: OpenConnection[];
    try { open = openConnections(); } catch (err) {
      this.log.warn('cannot read the open connections: ULIDs from before the restart stay kept', { error: (err as Error).message });
      return;
    }
    const engine = this.engine;
    const unused = unusedRestored(this.restored.keys(), open, engine.traffic()).filter((u) => u !== this.ulid);
    this.restoredPeers = peersOfRestored(this.restored.keys(), open);
    this.restoredConnections = connectionsByLocal(open, this.restored.keys());
    if (unused.length > 0) {
      const live = unused.filter((u) => this.keptLive.has(u));
      for (const u of unused) {
        this.restored.delete(u);
        this.restoredPeers.delete(u);
        this.keptLive.delete(u);
        if (!this.found.some((a) => a.address === u)) this.routes.dropLocal(u); // else a locator as any other
      }
      const locals = orderLocators(this.found, this.hba, this.cgaUlid?.address, this.ulid, this.restored, this.listRoom);
      this.command((e, t) => { e.setLocalLocators(t, locals); this.syncLocals(e); });
      const why = 'no open connection or context uses them';
      const restart = unused.filter((u) => !live.includes(u));
      if (restart.length > 0) this.log.info('ULIDs from before the restart released', { ulids: restart, why, left: this.restored.size });
      if (live.length > 0) this.log.info('ULIDs kept after their address was removed released', { ulids: live, why, left: this.restored.size });
      this.saveCachesSoon();
    }
    if (this.restored.size === 0 && this.restoredTimer !== undefined) {
      clearInterval(this.restoredTimer);
      this.restoredTimer = undefined;
      this.restoredNextCheckAt = undefined;
    }
  }

  /**
   * Peers of open connections the caches do not know (the cache file was lost, unreadable or
   * never written): with host-based discovery on, each is discovered as a new flow would be,
   * within discovery's bounds (discovery.ts), so protection comes back without the file.
   */
  private discoverOpenConnections(peers: readonly Ipv6[]): void {
    if (this.discovery === undefined || peers.length === 0 || this.ulid === '') return;
    const started = this.discovery.openConnections(this.ulid, peers);
    this.log.info('open connections of unknown peers: discovery', { peers: peers.length, started });
  }

  /**
   * Host-based discovery (discovery.ts) of new outgoing flows, unless
   * `discovery: off` and no peer asks for it. A table a crashed daemon left
   * is removed first, whatever the mode. When the host refuses (no nftables,
   * the log group taken) the daemon runs on without it and says so.
   */
  private startDiscovery(): void {
    const wanted = this.config.discovery !== 'off' || this.config.peers.some((p) => p.mode === 'integrated' || p.mode === 'independent');
    const driver = this.driver;
    if (!wanted || !driver) {
      if (removeStaleNewFlowsTable()) this.log.info('removed the new-flows table a previous daemon left');
      return;
    }
    const discovery = new Discovery((fn) => driver.command(fn), this.log.child('discovery'));
    try {
      this.newFlows = NewFlows.open({ tun: this.config.tun.name, port: this.config.port }, (f) => discovery.onFlow(f));
      this.discovery = discovery;
    } catch (err) {
      this.log.warn('host-based discovery unavailable: peers are found through DNS and configuration only', { code: (err as { code?: string }).code, error: (err as Error).message });
    }
  }

  /** The contexts' idle timeout (ms): the profile's, or the configuration's override. */
  private idleTimeoutMs(): number {
    return this.config.timers.overrides.idleTimeout ?? TIMER_PROFILES[this.config.timers.profile].idleTimeout;
  }

  /** Save the caches soon (debounced): a daemon killed with SIGKILL still finds what it learnt. */
  private saveCachesSoon(): void {
    if (this.saveTimer !== undefined || this.stopped || !this.dataPlane) return;
    this.saveTimer = setTimeout(() => { this.saveTimer = undefined; if (!this.stopped) this.saveCaches(); }, CACHE_SAVE_DELAY_MS);
    this.saveTimer.unref();
  }

  private primeConfiguredPeers(): void {
    for (const p of this.config.peers) {
      if (p.mode !== 'configured') continue;
      const locators = p.locators.map((l) => ({ address: l.address, flags: l.flags, priority: l.priority, weight: l.weight }));
      this.command((e, now) => e.prime(now, { ulid: p.ulid, locators, ttl: CONFIGURED_PEER_TTL, source: 'configured', port: p.port }));
    }
  }

  /**
   * The stub: `shim6 resolver`'s own configuration, or one made of the daemon config's keys (none when `listen` is empty).
   * `viaResolved`: systemd-resolved will forward to this stub (the hand-over), so never forward back to it.
   */
  private async startResolver(viaResolved = false): Promise<void> {
    let rc = this.opts.dataPlaneOff?.resolver;
    if (rc === undefined) {
      const sys = readSystemResolvers();
      if (viaResolved) sys.resolvedServers = `${sys.resolvedServers ?? ''}\n${this.config.listen.map((l) => `nameserver ${l.address}`).join('\n')}\n`;
      rc = stubConfig(this.config, sys);
      if (rc === undefined) return;
      this.log.info('resolver upstreams', { upstreams: rc.upstreams.map((u) => hostPort(u.host, u.port)), from: rc.upstreamsFrom });
    }
    this.engineSink = this.driver ? new EngineSink((fn) => this.command(fn), this.log.child('capability')) : undefined;
    const sink: CapabilitySink = this.engineSink ?? new LoggingSink(this.log.child('capability'));
    this.resolver = await ResolverGroup.start(rc, { sink, log: this.log });
  }

  /** routes.keepLocals, with a warning for each address `ip` refused. */
  private keepLocal(...addresses: Ipv6[]): void {
    for (const address of this.routes?.keepLocals(addresses) ?? []) this.log.warn('cannot add local route', { address });
  }

  private onEngineEvent(e: EngineEvent): void {
    if (!this.dataPlane) this.log.info('engine event', { ...e });
    // The engine's own rhythm (at most one per KNOWN_PEERS_INTERVAL_MS, only under a flood): not one of the status's events.
    if (e.kind === 'limit-pressure') {
      this.refreshKnownPeers();
      return;
    }
    // The driver has just routed the peer's ULID into the TUN; sockets that
    // connected before (the app's SYN raced the handshake) still hold a cached
    // route via the physical link. Invalidate every cached IPv6 route.
    if (e.kind === 'context-established' || e.kind === 'context-initiated') void this.routes?.flushRouteCache();
    if (e.kind === 'context-established' || e.kind === 'peer-supported' || e.kind === 'peer-unsupported') this.saveCachesSoon();
    this.discovery?.onEvent(e);
    const { kind, ...rest } = e;
    this.events.push({ t: Date.now(), kind, ...rest });
    if (this.events.length > 200) this.events.splice(0, this.events.length - 200);
  }

  /**
   * The engine refuses replies, verifications or probe answers for want of host-wide tokens (event
   * `limit-pressure`: at most one per KNOWN_PEERS_INTERVAL_MS while refusals go on, none when
   * nothing floods the host, so the socket tables are read only then): the peers of the host's open
   * connections (established TCP, connected UDP: open-connections.ts) become its known peers, which
   * the known peers' reserve answers (docs/security.md "Known peers"). On the next turn, not inside
   * the driver's event dispatch.
   */
  private refreshKnownPeers(): void {
    if (this.knownPeersDue) return;
    this.knownPeersDue = true;
    setImmediate(() => {
      this.knownPeersDue = false;
      const driver = this.driver;
      if (this.stopped || driver === undefined) return;
      const peers = new Set(openConnections().map((c) => c.peer));
      const kept = driver.command((e, now) => e.setKnownPeers(now, peers));
      this.log.debug('known peers from open connections', { peers: peers.size, kept });
    });
  }

  /** DNS follows the host: the usable locators (not BROKEN: down or deprecated) to the publisher. */
  private publishLocators(locals: readonly LocalLocator[]): void {
    this.dns?.update(locals.filter((l) => ((l.flags ?? 0) & 0x01) === 0).map((l) => l.address));
  }

  /**
   * Our generated CGA ULID is gone from the host (a network manager flushed the interface's
   * addresses, or deleted the link and made it anew): put back on the interface of an address on
   * its prefix that is up, when there is one — now, or when the prefix comes back. Without it the
   * applications' new connections go from the host's other addresses, ULIDs no PDS proves: their
   * contexts carry no Locator List and never re-home. The reading that follows finds it.
   */
  private putBackCgaUlid(now: readonly LocalAddress[]): void {
    const u = this.cgaUlid;
    if (u === undefined || this.stopping || now.some((a) => a.address === u.address)) return;
    const home = now.find((a) => a.up && prefix64Key(a.address) === prefix64Key(u.address));
    if (home === undefined) return;
    const refused = putCgaUlid(u.address, home.ifname);
    if (refused === undefined) {
      u.ifname = home.ifname;
      this.log.info('CGA ULID put back', { address: u.address, dev: home.ifname, why: 'it was removed from the host while its prefix is there' });
    } else {
      this.log.warn('cannot put the CGA ULID back', { address: u.address, dev: home.ifname, error: refused });
    }
  }

  /** Addresses or links changed: a new locator set for the engine; a link down = explore now. */
  private onLocators(now: LocalAddress[], diff: LocatorDiff): void {
    const driver = this.driver;
    if (!driver || !this.routes) return;
    this.log.info('local locators changed', { ...diff });
    this.putBackCgaUlid(now);
    this.keepLocal(...diff.added);
    // The ULID stays deliverable after its address is gone: it names the host in every context (and the
    // sockets bound to it), while the packets travel between the locators that are left (so do the
    // ULIDs a restart kept for the connections bound to them, and any other local ULID of a live
    // context: a discovered flow's source, a privacy address, a second prefix).
    const before = orderLocators(this.found, this.hba, this.cgaUlid?.address, this.ulid, this.restored, this.listRoom);
    this.found = now;
    this.keepUlidsInUse(diff.removed, before);
    for (const a of diff.removed) if (a !== this.ulid && !this.restored.has(a)) this.routes.dropLocal(a);
    // Bound again as it comes up too: a socket could not be bound to it while its link was down
    // (tentative); one already bound stays as it is.
    for (const a of [...diff.added, ...diff.cameUp]) void driver.bindLocator(a).catch((err: Error) => this.log.warn('cannot bind new locator', { address: a, error: err.message }));
    const locals = orderLocators(now, this.hba, this.cgaUlid?.address, this.ulid, this.restored, this.listRoom);
    if (locals.length === this.listRoom && now.some((a) => !locals.some((l) => l.address === a.address))) {
      this.log.warn('more addresses than a Locator List holds: announcing the first', { addresses: now.length, announced: locals.length, bound: this.listRoom });
    }
    // One new set, one generation and one Update Request per peer, also for a link down (its
    // addresses flagged BROKEN: the contexts on them explore at once, `local-locator-down`).
    this.command((e, t) => { e.setLocalLocators(t, locals, diff.wentDown); this.syncLocals(e); });
    this.publishLocators(locals);
    for (const a of diff.removed) void driver.unbindLocator(a);
  }
}

/** Who this host is: its HBA set or CGA key, its addresses, its locators in order (the first is the ULID). */
interface Identity {
  hba: HbaParamsFile | undefined;
  cgaKey: CgaKey | undefined;
  /** The CGA ULID generated and put on an interface (a CGA key without an HBA set). */
  cgaUlid: (GeneratedUlid & { ifname: string }) | undefined;
  found: LocalAddress[];
  /** Every global address of the host, on any interface (`found` is those on `interfaces`). */
  host: LocalAddress[];
  locals: LocalLocator[];
  ulid: Ipv6 | '';
  /**
   * Local addresses of open connections, no longer ours, that were local ULIDs of the previous
   * daemon's contexts and that we can prove (restored.ts), each with its PDS: kept (BROKEN, last) among `locals`.
   */
  restored: Map<Ipv6, Uint8Array>;
  /** Entries our Locator List may have (identityListRoom): `locals` holds at most as many. */
  listRoom: number;
}

/**
 * Read the HBA set and the CGA key (checked against each other), find the host's addresses and
 * order them as locators. The data plane needs at least one (ENOLOCATOR); `shim6 resolver` runs
 * without an engine when there is none.
 */
function identify(config: DaemonConfig, off: DaemonOptions['dataPlaneOff'], log: Logger, before: { open: readonly OpenConnection[]; saved: readonly SavedContext[] } = { open: [], saved: [] }): Identity {
  const hba = config.hba ? readHba(config.hba) : undefined;
  const cgaKey = config.cga && !off ? loadCgaKey(config.cga.key) : undefined;
  if (cgaKey && hba) checkHbaMatchesKey(hba, config.hba!, cgaKey);
  if (hba) checkHbaMembers(hba, config.hba!, cgaKey);
  // One `ip addr` for both: the configured interfaces' addresses, and every address (configured peers are checked against it).
  const onInterfaces = (all: LocalAddress[]): LocalAddress[] => (config.interfaces.length === 0 ? all : all.filter((a) => config.interfaces.includes(a.ifname)));
  // A reading that fails (`ip` refused or timed out) is the start's error (ENOLOCATOR, saying why);
  // `shim6 resolver` runs on without an engine, as with no address.
  const read = (): LocalAddress[] => {
    try { return readLocalAddresses(); } catch (err) {
      if (!off) throw err;
      log.warn('cannot read the local addresses', { error: (err as Error).message });
      return [];
    }
  };
  let host = off?.engine === false ? [] : read();
  let found = onInterfaces(host);
  // A CGA key without an HBA set: our ULID is a CGA of the key on the first address's prefix.
  const cgaUlid = cgaKey && !hba && found.length > 0 ? addCgaUlid(cgaKey, config.cga!.sec, found[0]!, log) : undefined;
  if (cgaUlid) { host = read(); found = onInterfaces(host); }
  const restored = keptFromBefore(restoredUlids(before.open, found, before.saved), before.open, hba, cgaKey, config.cga?.sec, log);
  const listRoom = identityListRoom(hba, cgaKey, cgaUlid?.params);
  if (listRoom < MAX_LOCAL_LOCATORS) {
    log.warn('the CGA identity leaves room for fewer locators than a Locator List holds: a host with more addresses announces the first', { room: listRoom, bound: MAX_LOCAL_LOCATORS, ...(cgaKey ? { keyBits: cgaKey.bits } : {}), ...(hba ? { hbaPrefixes: hba.members.length } : {}) });
  }
  const locals = orderLocators(found, hba, cgaUlid?.address, undefined, restored, listRoom);
  if (locals.length === 0 && !off) {
    // A typo in `interfaces` is the usual cause: name the links that do not exist.
    const missing = config.interfaces.filter((dev) => !existsSync(`/sys/class/net/${dev}`));
    // Or the addresses are there, their DAD not done (a start right after they were added, or their link down).
    const pending = addressesNotOursYet(config.interfaces);
    const why = [...(missing.length ? [`no such interface: ${missing.join(', ')}`] : []), ...pending.slice(0, 4), ...(pending.length > 4 ? [`${pending.length - 4} more`] : [])];
    throw new EnvironmentError('ENOLOCATOR', `no global IPv6 address found${config.interfaces.length ? ` on ${config.interfaces.join(', ')}` : ''}${why.length ? ` (${why.join('; ')})` : ''}`);
  }
  if (locals.length === 0 && off?.engine) log.warn('no global IPv6 address: engine not started, capability outcomes are logged only');
  return { hba, cgaKey, cgaUlid, found, host, locals, ulid: locals[0]?.address ?? '', restored, listRoom };
}

/** The data plane around the engine: routes, the kernel path, the TUN, the UDP transport, the driver. */
interface DataPlane {
  routes: Routes | undefined;
  kernel: NftKernelPath | undefined;
  /** The kernel encapsulation after a re-homing (bpf-encap.ts), with the kernel path only. */
  encap: BpfEncap | undefined;
  tun: LinuxTun | undefined;
  transport: UdpTransport | undefined;
  driver: EngineDriver<Engine> | undefined;
}

/**
 * Build the data plane (nothing routed yet: `bringUp` does that). With the data plane off, only
 * the engine's UDP socket (node:dgram with the kernel's default buffers, as `shim6 resolver`
 * always had: its floods bench measures that). While the daemon stops (`stopping`), no new route
 * into the TUN: a context the stop races with must not pull traffic into a daemon going away.
 */
function openDataPlane(config: DaemonConfig, off: DaemonOptions['dataPlaneOff'], engine: Engine | undefined, log: Logger,
  daemon: { stopping: () => boolean; onEvent: (e: EngineEvent) => void }): DataPlane {
  const routes = off ? undefined : new Routes({ tun: config.tun.name, port: config.port, pathMtu: config.tun.mtu + ENCAPSULATION_OVERHEAD, table: ROUTE_TABLE, rulePref: RULE_PREF });
  const kernel = routes ? openKernelPath(config, log) : undefined;
  const encap = kernel && config.encapsulation === 'kernel' ? openEncap(config, log) : undefined;
  // A crashed daemon's tc programs would go on encapsulating with its maps: removed by name whatever the data path now.
  if (routes && !encap) {
    try {
      if (removeStaleEncap()) log.info('removed the kernel encapsulation a previous daemon left');
    } catch (err) {
      // Another user's directory where our pins go, or a read-only /sys (the unit's ProtectKernelTunables): not ours to force.
      log.warn('cannot remove what a previous daemon\'s kernel encapsulation left', { error: (err as Error).message });
    }
  }
  let tun: LinuxTun | undefined;
  try { tun = routes ? LinuxTun.open({ name: config.tun.name, mtu: routes.tunMtu }) : undefined; } catch (err) { kernel?.close(); encap?.close(); throw err; }
  const transport = !engine ? undefined : off ? new DgramTransport({ port: config.port }) : openTransport(config, config.tun.mtu + ENCAPSULATION_OVERHEAD, log);
  const routeHook: RouteHook | undefined = routes ? {
    contextUp: (local, peer) => (daemon.stopping() ? undefined : routes.contextUp(local, peer)),
    contextDown: (peer) => routes.contextDown(peer),
    flushRouteCache: () => routes.flushRouteCache(),
    switchPath: (local, peer, path, pair) => (path !== 'kernel' && daemon.stopping() ? Promise.resolve() : routes.switchPath(local, peer, path, pair)),
  } : undefined;
  const driver = engine && transport ? new EngineDriver<Engine>({
    engine, transport, ...(tun && routeHook ? { tun, routes: routeHook } : {}), peerPort: config.port, logger: log.child('engine'), inPersistTimer,
    onEvent: daemon.onEvent, ...(off ? {} : { sendPlain: plainIpv6Sender() }),
    ...(kernel ? { kernel, kernelPollMs: kernelPollMs(config) } : {}), ...(encap && routes ? { encap, encapMtu: routes.tunMtu } : {}),
  }) : undefined;
  return { routes, kernel, encap, tun, transport, driver };
}

/** The engine over the host's locators (the first is the ULID), with its capability cache, as the config says. */
function newEngine(config: DaemonConfig, locals: LocalLocator[], hba: HbaParamsFile | undefined, cgaKey?: CgaKey, cgaUlidParams?: Uint8Array): { engine: Engine; cache: CapabilityCache } {
  const ulid = locals[0]!.address;
  const member = hba?.members.find((m) => m.address === ulid);
  const cgaParams = member ? memberParams(member) : cgaUlidParams;
  const cache = new LruCapabilityCache({ positive: { maxTtl: ms(config.capabilityMaxTtl * 1000) }, negative: { maxTtl: ms(config.capabilityMaxNegativeTtl * 1000) } });
  const engine = new Engine({
    localLocators: locals, localUlid: ulid, ...(cgaParams ? { cgaParams } : {}), ...(cgaKey && cgaParams ? { cgaKey: cgaKey.key } : {}),
    profile: config.timers.profile, timers: config.timers.overrides as Partial<Timers>,
    peers: enginePeers(config.peers),
    defaultMode: config.discovery,
    replyLimit: config.replyLimit, verifyLimit: config.verifyLimit, ...(config.probeReplyLimit !== undefined ? { probeReplyLimit: config.probeReplyLimit } : {}), maxContexts: config.maxContexts, maxContextsPerPrefix: config.maxContextsPerPrefix,
    icmpDeliverAll: config.icmpDeliverAll,
  }, cryptoRng(), { cache });
  return { engine, cache };
}

/** The configuration's peers as the engine knows them (at start, and after a reload: Engine.setPeers). */
/** The engine's peers, at start and at each reload: a peer's port where discovery reaches it (a configured peer's prime carries it: primeConfiguredPeers). */
function enginePeers(peers: DaemonConfig['peers']): PeerConfig[] {
  return peers.map((p) => ({ ulid: p.ulid, mode: p.mode, locators: p.locators.map((l) => l.address), ...(p.port !== SHIM6_UDP_PORT ? { port: p.port } : {}) }));
}

/**
 * The kernel path (config `dataPath`): its nftables counters, or undefined for the TUN
 * path — chosen, or (auto) because the host refused them, which is said once. `kernel`
 * that cannot be had is EnvironmentError EKERNELPATH.
 */
export function openKernelPath(config: DaemonConfig, log: Logger): NftKernelPath | undefined {
  if (config.dataPath === 'tun') {
    // The table a daemon killed on the kernel path left (open() removes it otherwise): its counters
    // and its log rule would stay on every packet of the host for good.
    if (removeStaleKernelTable({ port: config.port })) log.info('removed the kernel path table a previous daemon left');
    return undefined;
  }
  try {
    const k = NftKernelPath.open({ port: config.port, tripwire: { group: KERNEL_WAKE_GROUP, quietMs: kernelQuietMs(config) } });
    if (k.tripwireError !== undefined) log.warn('kernel path: no wake-up from the kernel, its counters are read on a fixed clock while a context is on it, traffic or not', { error: k.tripwireError, everyMs: kernelPollMs(config) });
    return k;
  } catch (err) {
    if (config.dataPath === 'kernel') throw err;
    log.warn('kernel path unavailable, every context uses the TUN path', { error: (err as Error).message });
    return undefined;
  }
}

/**
 * The kernel encapsulation after a re-homing (bpf-encap.ts), with the kernel path: tc
 * programs built with clang and loaded with bpftool. Where they cannot be had (no clang,
 * bpftool or BPF), re-homed contexts use the TUN path, which is said once.
 */
export function openEncap(config: DaemonConfig, log: Logger): BpfEncap | undefined {
  try {
    // Its per-context maps hold as many contexts as the engine may have (bounded: ENCAP_MAX_CONTEXTS).
    return BpfEncap.open({ port: config.port, skipLinks: [config.tun.name], tun: config.tun.name, maxContexts: config.maxContexts });
  } catch (err) {
    log.warn('kernel encapsulation unavailable, re-homed contexts use the TUN path', { error: (err as Error).message });
    return undefined;
  }
}

/** How often the kernel path's counters are read: a third of the Send Timeout, 20 ms to 1 s. */
export function kernelPollMs(config: DaemonConfig): number {
  const send = config.timers.overrides.sendTimeout ?? TIMER_PROFILES[config.timers.profile].sendTimeout;
  return Math.min(1000, Math.max(20, Math.floor(send / 3)));
}

/** The NFLOG group of the kernel path's tripwire (discovery's new flows use 5533). */
export const KERNEL_WAKE_GROUP = 5534;

/**
 * After how long without a counted packet the kernel path's readings stop until the tripwire's next
 * packet (docs/dataplane.md "Kernel path", "Idle"): three readings, 100 ms to 1 s (150 ms in the fast
 * profile, 1 s in rfc, whose readings are 1 s apart: they stop at the second reading that saw nothing).
 * Shorter costs a log message a quiet time while packets flow; longer, readings after each
 * heartbeat of an otherwise idle connection (3 s in rfc: five readings per heartbeat, one a second
 * with a heartbeat every 5 s, as without the tripwire).
 */
export function kernelQuietMs(config: DaemonConfig): number {
  return Math.min(1000, Math.max(100, 3 * kernelPollMs(config)));
}

/**
 * The encapsulation's UDP transport: the native batched socket (≈6× the
 * throughput of dgram, docs/dataplane.md), or Node's dgram when configured so
 * or when the addon is not built (then with a warning that says so).
 */
export function openTransport(config: DaemonConfig, pathMtu: number, log: Logger): UdpTransport {
  if (config.udp !== 'dgram') {
    try {
      return new NativeUdpTransport({ port: config.port, bufferSize: 4 << 20, maxDatagram: pathMtu });
    } catch (e) {
      // Asked for by name, its absence is a warning; with auto, a fact.
      log[config.udp === 'native' ? 'warn' : 'info']('native UDP transport unavailable, using dgram', { error: (e as Error).message });
    }
  }
  return new DgramTransport({ port: config.port, bufferSize: 4 << 20 });
}

/** Put our CGA ULID on `ifname` (no DAD); already there is fine. Returns why `ip` refused, if it did. */
function putCgaUlid(address: Ipv6, ifname: string): string | undefined {
  const r = spawnSync('ip', ['-6', 'addr', 'add', `${address}/64`, 'dev', ifname, 'nodad'], { encoding: 'utf8', timeout: 5000 });
  return r.status === 0 || /File exists/.test(String(r.stderr)) ? undefined : String(r.stderr || r.error?.message).trim();
}

/**
 * Generate our CGA ULID on `on`'s prefix and put it on `on`'s interface (no
 * DAD: RFC 3972 §4's collision count stays 0; the address is ours by its key).
 * Already there (a restart after a crash): kept.
 */
function addCgaUlid(key: CgaKey, sec: 0 | 1, on: LocalAddress, log: Logger): GeneratedUlid & { ifname: string } {
  const g = generateCgaUlid(key, on.address, sec);
  const refused = putCgaUlid(g.address, on.ifname);
  if (refused !== undefined) throw new EnvironmentError('ECGA_ADDRESS', `cannot add our CGA ${g.address} to ${on.ifname}: ${refused}`);
  log.info('CGA ULID', { address: g.address, prefix: g.prefix, dev: on.ifname, sec });
  return { ...g, ifname: on.ifname };
}

/**
 * The engine's local locator list: HBA members present on the host first (in
 * prefix-vector order, so the first is the ULID), then other addresses;
 * addresses on links that are down are flagged BROKEN (RFC 5533 §5.15.3).
 * Deprecated addresses (preferred lifetime 0, RFC 4862 §5.5.4) are flagged
 * BROKEN too while a preferred address is up: announced so that peers stop
 * sending there and our contexts move off them while they still work (a
 * removed address leaves the list). With no preferred address up they are what
 * the host has, and stay usable (not BROKEN). A
 * ULID in `keep` (the running daemon's own) stays in the list (BROKEN) when its
 * address is gone: it names us in every context, and packets to it are still
 * ours (routes.keepLocal). The ULIDs kept from before a restart (`restored`,
 * restored.ts) come last, BROKEN unless the host has the address again, never
 * the ULID of a new daemon. Each HBA member, and each restored ULID, carries
 * its own PDS (LocalLocator.cgaParams): the proof its contexts send.
 * At most `room` in all (MAX_LOCAL_LOCATORS, or fewer when our PDS and CGA
 * Signature leave less room: identityListRoom): a host with more addresses
 * announces the first ones in this order (the kept ULIDs always).
 */
export function orderLocators(found: readonly LocalAddress[], hba: HbaParamsFile | undefined, ulid?: Ipv6, keep?: Ipv6 | readonly Ipv6[], restored?: ReadonlyMap<Ipv6, Uint8Array | undefined>, room = MAX_LOCAL_LOCATORS): LocalLocator[] {
  const members = ulid !== undefined ? [ulid] : hba?.members.map((m) => m.address) ?? [];
  for (const k of keep === undefined ? [] : typeof keep === 'string' ? [keep] : keep) {
    if (k !== '' && !found.some((a) => a.address === k)) found = [...found, { address: k, ifname: '', up: false }];
  }
  const rank = (a: Ipv6): number => {
    const i = members.indexOf(a);
    return i < 0 ? members.length : i;
  };
  const all = [...found]
    .filter((a, i, every) => every.findIndex((b) => b.address === a.address) === i)
    // Usable before down ones (a link down at start), preferred before deprecated: without an HBA set the first is the ULID.
    .sort((x, y) => rank(x.address) - rank(y.address) || Number(!x.up) - Number(!y.up) || Number(x.deprecated === true) - Number(y.deprecated === true));
  const gone = [...(restored?.keys() ?? [])].filter((u) => !all.some((a) => a.address === u));
  // At most `room` in all (what a peer keeps, what a message holds): the kept ULIDs stay (contexts
  // name them), the host's addresses are cut from the end of that order.
  const present = all.slice(0, Math.max(1, room - gone.length));
  const params = (a: Ipv6): Uint8Array | undefined => {
    const m = hba?.members.find((x) => x.address === a);
    return restored?.get(a) ?? (m !== undefined && typeof m.params === 'string' && m.params !== '' ? memberParams(m) : undefined);
  };
  // A deprecated address is withdrawn only while a preferred one is up to take over (RFC 4862 §5.5.4).
  const preferred = all.some((a) => a.up && a.deprecated !== true);
  return [...present.map((a) => ({ address: a.address, flags: a.up && (a.deprecated !== true || !preferred) ? 0 : 0x01 })), ...gone.map((address) => ({ address, flags: 0x01 }))]
    .map((l, i) => {
      const p = params(l.address);
      return { address: l.address, flags: l.flags, priority: i, weight: 0, ...(p !== undefined ? { cgaParams: p } : {}) };
    });
}

/**
 * Of the candidate ULIDs from before the restart, those we can prove, with their PDS: a member of
 * our HBA set (its own parameters), or — a CGA key without an HBA set — the CGA our key makes on
 * the candidate's prefix (cga-identity.ts: the same modifier after a restart), when it is that
 * address. At most MAX_RESTORED_ULIDS (restored.ts), the most used first; the rest are logged and
 * left alone, as a local address that is no ULID of ours is.
 */
export function keptFromBefore(candidates: readonly Ipv6[], open: readonly OpenConnection[], hba: HbaParamsFile | undefined, cgaKey: CgaKey | undefined, sec: 0 | 1 | undefined, log: Logger): Map<Ipv6, Uint8Array> {
  if (candidates.length === 0) return new Map();
  const proofOf = (u: Ipv6): Uint8Array | undefined => {
    const m = hba?.members.find((x) => x.address === u);
    if (m !== undefined) return memberParams(m);
    if (cgaKey === undefined || hba !== undefined || sec === undefined) return undefined;
    const g = generateCgaUlid(cgaKey, u, sec);
    return g.address === u ? g.params : undefined;
  };
  const choice = chooseRestored(candidates, open, proofOf);
  if (choice.unproven.length > 0) {
    log.warn('ULIDs from before the restart not kept: no proof of them (not in our HBA set, not a CGA of our key)', { ulids: choice.unproven });
  }
  if (choice.over.length > 0) log.warn('ULIDs from before the restart not kept: over the bound', { ulids: choice.over, bound: choice.kept.size });
  return choice.kept;
}

/** The cache file's contexts, and a ULID pair for each kept ULID no live context has (an idle connection's). */
export function withRestored(contexts: SavedContext[], peers: ReadonlyMap<Ipv6, Ipv6>): SavedContext[] {
  const have = new Set(contexts.map((c) => c.localUlid));
  const more = [...peers].filter(([u]) => !have.has(u)).map(([localUlid, peerUlid]) => ({ localUlid, peerUlid }));
  return more.length === 0 ? contexts : [...more, ...contexts].slice(0, SAVED_CONTEXTS_MAX);
}

/**
 * The local addresses of open connections that are no address of ours (`found`) but were the local
 * ULID of a context the previous daemon saved: the ULIDs a restart keeps (each once).
 */
export function restoredUlids(open: readonly OpenConnection[], found: readonly LocalAddress[], saved: readonly SavedContext[]): Ipv6[] {
  const ours = new Set(found.map((a) => a.address));
  const were = new Set(saved.map((c) => c.localUlid));
  return [...new Set(open.filter((c) => !ours.has(c.local) && were.has(c.local)).map((c) => c.local))];
}

/**
 * The ULID pairs of the engine's contexts for the cache file: each pair once, every local ULID in
 * it before a second pair of any (a bound that cuts keeps the ULIDs), at most SAVED_CONTEXTS_MAX.
 */
export function liveContexts(engine: Pick<Engine, 'traffic'>): SavedContext[] {
  const seen = new Set<string>();
  const ulids = new Set<Ipv6>();
  const first: SavedContext[] = [];
  const rest: SavedContext[] = [];
  for (const c of engine.traffic()) {
    const key = pairKey(c.localUlid, c.peerUlid);
    if (seen.has(key)) continue;
    seen.add(key);
    (ulids.has(c.localUlid) ? rest : first).push({ localUlid: c.localUlid, peerUlid: c.peerUlid });
    ulids.add(c.localUlid);
  }
  return [...first, ...rest].slice(0, SAVED_CONTEXTS_MAX);
}
