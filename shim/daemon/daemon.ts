/**
 * `shim6 daemon`: joins the stub resolver (resolver/), the engine
 * (shim/engine/) and the data plane (TUN, UDP, routes, engine-driver.ts) on
 * one host, with a control socket for `shim6 status`, local locators watched
 * (locators.ts), capability caches kept in the cache file, a config
 * reload and a clean stop that sends Close to peers and leaves the host as it
 * found it (routes, rules, TUN device and control socket gone).
 *
 * Owns the lifetime of all of those; must not know message formats (engine)
 * or DNS wire details (resolver). Signals are the CLI's business: it calls
 * `reload()` on SIGHUP and `stop()` on SIGTERM/SIGINT.
 */
import { readFileSync } from 'node:fs';
import { Logger } from '../log.ts';
import type { Ipv6 } from '../wire/ipv6.ts';
import { ms } from '../time.ts';
import { Engine, cryptoRng, type CapabilityCache, type EngineEvent, type LocalLocator, type Timers } from '../engine/index.ts';
import { LruCapabilityCache } from '../cache/engine-cache.ts';
import { ResolverGroup } from '../../resolver/workers.ts';
import { configFromObject, readSystemResolvers, resolveConfig as resolveResolverConfig } from '../../resolver/config.ts';
import { startControlServer, type ControlServer } from './control/server.ts';
import { parseHbaParams, memberParams, type HbaParamsFile } from '../wire/hba-params.ts';
import { EnvironmentError, UsageError } from '../errors.ts';
import { loadConfig, type DaemonConfig } from './config.ts';
import { EngineDriver } from '../dataplane/engine-driver.ts';
import { LinuxTun } from '../dataplane/tun-linux.ts';
import { DgramTransport, type UdpTransport } from '../dataplane/udp.ts';
import { NativeUdpTransport } from '../dataplane/udp-native.ts';
import { ENCAPSULATION_OVERHEAD, Routes } from '../dataplane/routes.ts';
import { LocatorWatcher, type LocalAddress, type LocatorDiff } from './locators.ts';
import { EngineSink, loadCaches, saveCaches } from './sink.ts';
import { openTcpPeers } from './open-connections.ts';
import { Discovery } from './discovery.ts';
import { NewFlows, removeStaleNewFlowsTable } from '../dataplane/new-flows.ts';
import type { ServiceNotifier } from './service-notify.ts';

/** Our routing table for peer ULIDs and the preference of our first policy rule (routes.ts). */
const ROUTE_TABLE = 5533;
const RULE_PREF = 5532;

/** A configured peer is primed for this long (seconds), and again on every reload. */
const CONFIGURED_PEER_TTL = 86_400 * 365;
/** How soon after new capability knowledge the caches are written (a SIGKILL loses at most this much). */
const CACHE_SAVE_DELAY_MS = 2000;

export interface DaemonOptions {
  /** The file to re-read on reload (absent: reload keeps the config). */
  configFile?: string;
  /** Log sink (default stderr). */
  log?: Logger;
  /** The service manager to tell when the daemon is ready, reloading and stopping (service-notify.ts). */
  notify?: ServiceNotifier;
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
  private control: ControlServer | undefined;
  private stopped = false;
  /** Set at the start of `stop()`: no route into the TUN from then on. */
  private stopping = false;
  private saveTimer: NodeJS.Timeout | undefined;
  private readonly startedAt = Date.now();
  private ulid = '';
  private discovery: Discovery | undefined;
  private newFlows: NewFlows | undefined;

  private constructor(
    private config: DaemonConfig,
    readonly log: Logger,
    readonly engine: Engine,
    readonly driver: EngineDriver<Engine>,
    readonly routes: Routes,
    readonly cache: CapabilityCache,
    private readonly hba: HbaParamsFile | undefined,
    private readonly opts: DaemonOptions,
  ) {}

  /** Start everything; on any failure, undo what was done and rethrow. */
  static async start(config: DaemonConfig, opts: DaemonOptions = {}): Promise<Daemon> {
    const log = opts.log ?? new Logger({ level: config.log.level, format: config.log.format, component: 'shim6' });
    const hba = config.hba ? readHba(config.hba) : undefined;
    const found = new LocatorWatcher(config.interfaces, () => undefined).current;
    const locals = orderLocators(found, hba);
    if (locals.length === 0) throw new EnvironmentError('ENOLOCATOR', `no global IPv6 address found${config.interfaces.length ? ` on ${config.interfaces.join(', ')}` : ''}`);
    const ulid = locals[0]!.address;
    const cgaParams = hba?.members.find((m) => m.address === ulid);
    const cache = new LruCapabilityCache({ positive: { maxTtl: ms(config.capabilityMaxTtl * 1000) }, negative: { maxTtl: ms(config.capabilityMaxNegativeTtl * 1000) } });
    const engine = new Engine({
      localLocators: locals, localUlid: ulid, ...(cgaParams ? { cgaParams: memberParams(cgaParams) } : {}),
      profile: config.timers.profile, timers: config.timers.overrides as Partial<Timers>,
      peers: config.peers.map((p) => ({ ulid: p.ulid, mode: p.mode, locators: p.locators.map((l) => l.address) })),
      defaultMode: config.discovery,
      replyLimit: config.replyLimit, maxContexts: config.maxContexts, maxContextsPerPrefix: config.maxContextsPerPrefix,
    }, cryptoRng(), { cache });
    const routes = new Routes({ tun: config.tun.name, port: config.port, pathMtu: config.tun.mtu + ENCAPSULATION_OVERHEAD, table: ROUTE_TABLE, rulePref: RULE_PREF });
    const tun = LinuxTun.open({ name: config.tun.name, mtu: routes.tunMtu });
    const transport = openTransport(config, config.tun.mtu + ENCAPSULATION_OVERHEAD, log);
    const sinkRef: { daemon?: Daemon } = {};
    // While stopping, no new route into the TUN (a context the stop races with must not pull traffic into a daemon going away).
    const routeHook = {
      contextUp: (local: Ipv6, peer: Ipv6) => { if (!sinkRef.daemon?.stopping) routes.contextUp(local, peer); },
      contextDown: (peer: Ipv6) => routes.contextDown(peer),
    };
    const driver = new EngineDriver<Engine>({
      engine, transport, tun, peerPort: config.port, routes: routeHook, logger: log.child('engine'),
      onEvent: (e) => sinkRef.daemon?.onEngineEvent(e),
    });
    const daemon = new Daemon(config, log, engine, driver, routes, cache, hba, opts);
    daemon.ulid = ulid;
    sinkRef.daemon = daemon;
    const saved = loadCaches(config.cacheFile, log);
    try {
      routes.removeStaleRules();
      routes.setup();
      for (const l of locals) {
        await driver.bindLocator(l.address);
        daemon.keepLocal(l.address);
      }
      if (saved) {
        driver.command((e, now) => {
          // The file is input from disk: the cache validates it whole and refuses it whole (CacheDataError).
          try { e.importCaches(now, saved); } catch (err) {
            log.warn('ignoring invalid cache file', { file: config.cacheFile, code: (err as { code?: string }).code, error: (err as Error).message });
          }
        });
      }
      daemon.primeConfiguredPeers();
      daemon.protectOpenConnections();
      daemon.startDiscovery();
      await daemon.startResolver();
      daemon.control = await startControlServer(config.controlSocket, {
        status: () => daemon.status(),
        flush: async () => ({ resolver: (await daemon.resolver?.flush()) ?? null }),
      }, { log: log.child('control') });
      daemon.watcher = new LocatorWatcher(config.interfaces, (now, diff) => daemon.onLocators(now, diff));
      daemon.watcher.start();
      // Links already down at start: explore away from them at once.
      for (const a of found) if (!a.up) driver.command((e, now) => e.localLocatorDown(now, a.address));
    } catch (err) {
      await daemon.teardown(false);
      throw err;
    }
    log.info('daemon ready', {
      ulid, locators: locals.map((l) => l.address), tun: tun.name, mtu: routes.tunMtu, port: config.port,
      resolver: daemon.resolver?.addresses.map((a) => `${a.host}:${a.port}`) ?? [], control: config.controlSocket,
      profile: config.timers.profile, cachesImported: saved !== undefined,
      udp: transport instanceof NativeUdpTransport ? 'native' : 'dgram',
      discovery: daemon.newFlows ? config.discovery : 'off',
    });
    // The stub answers, the TUN and the UDP sockets are up: units after shim6.service may start.
    await opts.notify?.ready(daemon.statusLine());
    return daemon;
  }

  /** Plain-JSON status for the control socket. */
  async status(): Promise<Record<string, unknown>> {
    return {
      daemon: {
        pid: process.pid, uptimeSeconds: Math.floor((Date.now() - this.startedAt) / 1000), tun: this.config.tun.name,
        port: this.config.port, profile: this.config.timers.profile, routed: this.routes.routed(),
        locators: this.watcher?.current ?? [], stats: this.driver.stats, events: this.events.slice(-20),
      },
      engine: this.engine.status(this.driver.now()),
      resolver: (await this.resolver?.status()) ?? null,
      discovery: this.discovery && this.newFlows ? { mode: this.config.discovery, ...this.discovery.status(), flowsLost: this.newFlows.lost } : null,
    };
  }

  /** SIGHUP: re-read the config file; apply what can change live (peers, log level is fixed per process). */
  async reload(): Promise<void> {
    await this.opts.notify?.reloading();
    try {
      this.reloadConfig();
    } finally {
      await this.opts.notify?.ready(this.statusLine());
    }
  }

  /** One line for `systemctl status`: where the stub listens, the TUN, our ULID. */
  private statusLine(): string {
    const stub = this.resolver?.addresses.map((a) => `${a.host}:${a.port}`).join(' ') || 'off';
    return `ready: stub ${stub}, TUN ${this.config.tun.name}, ULID ${this.ulid}`;
  }

  private reloadConfig(): void {
    if (!this.opts.configFile) { this.log.info('reload: no config file, nothing to do'); return; }
    let next: DaemonConfig;
    try {
      next = loadConfig(this.opts.configFile);
    } catch (err) {
      this.log.error('reload: config rejected, keeping the running one', { error: (err as Error).message });
      return;
    }
    const restartNeeded: string[] = (['tun', 'port', 'listen', 'upstreams', 'controlSocket', 'timers', 'hba', 'interfaces', 'capabilityMaxTtl', 'capabilityMaxNegativeTtl', 'discovery'] as const)
      .filter((k) => JSON.stringify(next[k]) !== JSON.stringify(this.config[k]));
    // The engine's per-peer modes are fixed at start too.
    const modes = (c: DaemonConfig): string => JSON.stringify(c.peers.map((p) => [p.ulid, p.mode]));
    if (modes(next) !== modes(this.config)) restartNeeded.push('peers[].mode');
    this.config = { ...this.config, peers: next.peers, cacheFile: next.cacheFile };
    this.primeConfiguredPeers();
    this.saveCaches();
    this.log.info('reloaded', { peers: next.peers.length, ...(restartNeeded.length ? { restartNeeded } : {}) });
  }

  /**
   * SIGTERM: Close every context (seed §6 extension) and wait for the Close
   * Acks (bounded by the profile's close timeout × retries, at most 3 s),
   * save the caches, then remove routes, rules, the TUN and the sockets.
   */
  async stop(): Promise<void> {
    if (this.stopped || this.stopping) return;
    this.stopping = true;
    await this.opts.notify?.stopping();
    // Traffic goes back to plain IPv6 at once, not into a daemon going away (a restart's gap is
    // plain IPv6, and the next daemon protects the open connections again: protectOpenConnections).
    this.newFlows?.close();
    const routed = this.routes.routed();
    for (const peer of routed) this.routes.contextDown(peer);
    if (routed.length > 0) this.routes.flushRouteCache();
    const open = this.engine.contextCount;
    if (open > 0) {
      this.driver.command((e, now) => e.close(now));
      const deadline = Date.now() + 3000;
      while (this.engine.contextCount > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      this.log.info('contexts closed', { closed: open - this.engine.contextCount, left: this.engine.contextCount });
    }
    await this.teardown(true);
  }

  private async teardown(save: boolean): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.saveTimer !== undefined) clearTimeout(this.saveTimer);
    this.watcher?.stop();
    this.newFlows?.close();
    if (save) this.saveCaches();
    await this.control?.close();
    await this.resolver?.close();
    this.routes.close();
    await this.driver.close();
    this.log.info('stopped: routes, rules and TUN removed');
  }

  private saveCaches(): void {
    try {
      saveCaches(this.config.cacheFile, this.engine.exportCaches(this.driver.now()));
    } catch (err) {
      this.log.warn('could not save caches', { file: this.config.cacheFile, error: (err as Error).message });
    }
  }

  /**
   * After a start (a restart, even after kill -9): the peers of TCP
   * connections that are already open and that the caches or configuration
   * know to run shim6 get a context now, so those connections are protected
   * before their link fails (issue: protection must survive restarts).
   */
  private protectOpenConnections(): void {
    const peers = openTcpPeers();
    const protectedPeers = peers.filter((p) => this.driver.command((e, now) => e.protect(now, p)));
    if (protectedPeers.length > 0) this.log.info('open connections protected again', { peers: protectedPeers });
  }

  /**
   * Host-based discovery (discovery.ts) of new outgoing flows, unless
   * `discovery: off` and no peer asks for it. A table a crashed daemon left
   * is removed first, whatever the mode. When the host refuses (no nftables,
   * the log group taken) the daemon runs on without it and says so.
   */
  private startDiscovery(): void {
    if (removeStaleNewFlowsTable()) this.log.info('removed the new-flows table a previous daemon left');
    const wanted = this.config.discovery !== 'off' || this.config.peers.some((p) => p.mode === 'integrated' || p.mode === 'independent');
    if (!wanted) return;
    const discovery = new Discovery((fn) => this.driver.command(fn), this.log.child('discovery'));
    try {
      this.newFlows = NewFlows.open({ tun: this.config.tun.name, port: this.config.port }, (f) => discovery.onFlow(f));
      this.discovery = discovery;
    } catch (err) {
      this.log.warn('host-based discovery unavailable: peers are found through DNS and configuration only', { code: (err as { code?: string }).code, error: (err as Error).message });
    }
  }

  /** Save the caches soon (debounced): a daemon killed with SIGKILL still finds what it learnt. */
  private saveCachesSoon(): void {
    if (this.saveTimer !== undefined || this.stopped) return;
    this.saveTimer = setTimeout(() => { this.saveTimer = undefined; if (!this.stopped) this.saveCaches(); }, CACHE_SAVE_DELAY_MS);
    this.saveTimer.unref();
  }

  private primeConfiguredPeers(): void {
    for (const p of this.config.peers) {
      if (p.mode !== 'configured') continue;
      const locators = p.locators.map((l) => ({ address: l.address, flags: l.flags, priority: l.priority, weight: l.weight }));
      this.driver.command((e, now) => e.prime(now, { ulid: p.ulid, locators, ttl: CONFIGURED_PEER_TTL, source: 'configured', port: p.port }));
    }
  }

  private async startResolver(): Promise<void> {
    if (this.config.listen.length === 0) return;
    const file = configFromObject({
      capability: { rrType: this.config.recordType, txtFallback: this.config.txtFallback, maxTtlSeconds: this.config.capabilityMaxTtl, maxNegativeTtlSeconds: this.config.capabilityMaxNegativeTtl },
      workers: this.config.resolverWorkers,
    });
    const rc = resolveResolverConfig(file, {
      listen: this.config.listen.map((l) => ({ host: l.address, port: l.port })),
      ...(this.config.upstreams.length ? { upstreams: this.config.upstreams.map((u) => ({ host: u.address, port: u.port })) } : {}),
      logLevel: this.config.log.level,
    }, readSystemResolvers());
    this.log.info('resolver upstreams', { upstreams: rc.upstreams.map((u) => `${u.host}:${u.port}`), from: rc.upstreamsFrom });
    const sink = new EngineSink((fn) => this.driver.command(fn), this.log.child('capability'));
    this.resolver = await ResolverGroup.start(rc, { sink, log: this.log });
  }

  /** routes.keepLocal, with a warning when `ip` refused. */
  private keepLocal(address: Ipv6): void {
    if (!this.routes.keepLocal(address)) this.log.warn('cannot add local route', { address });
  }

  private onEngineEvent(e: EngineEvent): void {
    // The driver has just routed the peer's ULID into the TUN; sockets that
    // connected before (the app's SYN raced the handshake) still hold a cached
    // route via the physical link. Invalidate every cached IPv6 route.
    if (e.kind === 'context-established' || e.kind === 'context-initiated') this.routes.flushRouteCache();
    if (e.kind === 'context-established' || e.kind === 'peer-supported' || e.kind === 'peer-unsupported') this.saveCachesSoon();
    this.discovery?.onEvent(e);
    const { kind, ...rest } = e;
    this.events.push({ t: Date.now(), kind, ...rest });
    if (this.events.length > 200) this.events.splice(0, this.events.length - 200);
  }

  /** Addresses or links changed: a new locator set for the engine; a link down = explore now. */
  private onLocators(now: LocalAddress[], diff: LocatorDiff): void {
    this.log.info('local locators changed', { ...diff });
    for (const a of diff.added) this.keepLocal(a);
    for (const a of diff.removed) this.routes.dropLocal(a);
    for (const a of diff.added) void this.driver.bindLocator(a).catch((err: Error) => this.log.warn('cannot bind new locator', { address: a, error: err.message }));
    const locals = orderLocators(now, this.hba);
    if (diff.added.length || diff.removed.length || diff.cameUp.length) {
      this.driver.command((e, t) => e.setLocalLocators(t, locals));
    }
    for (const a of diff.wentDown) this.driver.command((e, t) => e.localLocatorDown(t, a));
    for (const a of diff.removed) void this.driver.unbindLocator(a);
  }
}

/**
 * The encapsulation's UDP transport: the native batched socket (≈6× the
 * throughput of dgram, docs/dataplane.md), or Node's dgram when configured so
 * or when the addon is not built (then with a warning that says so).
 */
export function openTransport(config: DaemonConfig, pathMtu: number, log: Logger): UdpTransport {
  if (config.udp === 'native') {
    try {
      return new NativeUdpTransport({ port: config.port, bufferSize: 4 << 20, maxDatagram: pathMtu });
    } catch (e) {
      log.warn('native UDP transport unavailable, using dgram', { error: (e as Error).message });
    }
  }
  return new DgramTransport({ port: config.port, bufferSize: 4 << 20 });
}

function readHba(file: string): HbaParamsFile {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError('ECONFIG', `hba: cannot read ${JSON.stringify(file)}: ${(err as Error).message}`, 'hba');
  }
  return parseHbaParams(text, file);
}

/**
 * The engine's local locator list: HBA members present on the host first (in
 * prefix-vector order, so the first is the ULID), then other addresses;
 * addresses on links that are down are flagged BROKEN (RFC 5533 §5.15.3).
 */
export function orderLocators(found: readonly LocalAddress[], hba: HbaParamsFile | undefined): LocalLocator[] {
  const members = hba?.members.map((m) => m.address) ?? [];
  const rank = (a: Ipv6): number => {
    const i = members.indexOf(a);
    return i < 0 ? members.length : i;
  };
  return [...found]
    .filter((a, i, all) => all.findIndex((b) => b.address === a.address) === i)
    .sort((x, y) => rank(x.address) - rank(y.address))
    .map((a, i) => ({ address: a.address, flags: a.up ? 0 : 0x01, priority: i, weight: 0 }));
}

