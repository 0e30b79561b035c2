/**
 * The resolver's configuration: a YAML or JSON file (validated; every error
 * names the key and the value), command-line overrides, and upstreams from
 * /etc/resolv.conf when none are configured — never the stub's own addresses,
 * and never systemd-resolved's stub when resolved forwards to this stub.
 * Owns defaults of its own (not spec constants). Must not open sockets.
 */
import { readFileSync } from 'node:fs';
import { readBounded } from '../shim/read-bounded.ts';
import net from 'node:net';
import os from 'node:os';
import { describeValue, parseYamlBounded } from '../shim/yaml-text.ts';
import { badValueCode, UsageError } from '../shim/errors.ts';
import { canonicalIpv6, isLinkLocalOctets, isV4MappedOctets, parseIpv6 } from '../shim/wire/ipv6.ts';
import { hostPort, isLogLevel, type LogLevel } from '../shim/log.ts';
import { DEFAULT_CACHE_OPTIONS, type AnswerCacheOptions } from './answer-cache.ts';
import { DEFAULT_UPSTREAM_OPTIONS, type UpstreamAddr, type UpstreamOptions } from './upstream.ts';
import { DEFAULT_LISTENER_OPTIONS, type ListenAddr, type ListenerOptions } from './listener.ts';
import type { UdpBackend } from './udp-socket.ts';
import { DEFAULT_CAPABILITY_OPTIONS, type CapabilityOptions } from './stages/capability.ts';
import { MAX_WORKERS } from './limits.ts';
import { ClientAcl } from './client-acl.ts';
import { PRIVATE_RR_TYPE_MAX, PRIVATE_RR_TYPE_MIN } from '../shim/constants.ts';
import { resolveReplyLimit, type ReplyLimitConfig } from '../shim/engine/reply-limit.ts';

/**
 * Default listen address: 127.0.0.153:53. systemd-resolved owns 127.0.0.53 and
 * 127.0.0.54, so the stub stays out of their way (docs/resolver.md).
 */
export const DEFAULT_LISTEN: ListenAddr = { host: '127.0.0.153', port: 53 };
export const DEFAULT_QUERY_TIMEOUT_MS = 3000;

export interface ResolverConfig {
  listen: ListenAddr[];
  upstreams: UpstreamAddr[];
  /** Where `upstreams` came from: `configured` (flags or config file), or the host file read (systemUpstreams). */
  upstreamsFrom: string;
  queryTimeoutMs: number;
  upstream: UpstreamOptions;
  cache: AnswerCacheOptions;
  capability: CapabilityOptions & { enabled: boolean };
  listener: ListenerOptions;
  /**
   * UDP sockets (udp-socket.ts): `native` (the addon: recvmmsg/sendmmsg
   * batches), `dgram` (Node's), or `auto`: native when the addon is built.
   */
  udp: 'auto' | UdpBackend;
  /**
   * Resolver threads (workers.ts): 1 = everything on the main thread; more =
   * the UDP listener shared by that many threads, spread by question name,
   * each with its share of the cache bounds (native UDP backend only).
   */
  workers: number;
  controlSocket: string | undefined;
  logLevel: LogLevel;
}

/** ECONFIG naming the config key, or EINVALID when `key` is the flag that gave the value (`--workers`). */
function bad(key: string, value: unknown, why: string): never {
  throw new UsageError(badValueCode(key), `${key}: invalid value ${describeValue(value)}: ${why}`, key);
}

/**
 * "ADDR:PORT", "[V6]:PORT", or a bare address (port `defPort`). `minPort`: 1 for an upstream
 * (port 0 is nowhere to send to); a listen address may be 0 (the kernel picks one).
 */
export function parseHostPort(text: unknown, key: string, defPort: number, minPort: 0 | 1 = 0): { host: string; port: number } {
  if (typeof text !== 'string' || text.length === 0) bad(key, text, 'expected "ADDR:PORT"');
  let host = text;
  let port = defPort;
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(text) ?? (/^([^:]+):(\d+)$/.exec(text));
  if (m) {
    host = m[1]!;
    if (m[2] !== undefined) port = Number(m[2]);
  }
  if (!net.isIP(host)) bad(key, text, 'not an IP address');
  if (host.includes('%')) bad(key, text, NO_ZONE);
  if (!Number.isInteger(port) || port < minPort || port > 65535) bad(key, text, `port must be ${minPort}..65535`);
  return { host: net.isIPv6(host) ? canonicalIpv6(host) : host, port };
}

/**
 * The stub's sockets carry an address and a port, no zone (udp-socket.ts Endpoint; the native
 * addon sends with scope id 0), so a link-local address (fe80::/10) is reachable on no link:
 * every datagram to such an upstream is lost. A zone in an address is refused, a link-local
 * upstream too, and such a nameserver of the host's files is skipped.
 */
const NO_ZONE = 'a zone (%…) is not supported: the stub\'s sockets carry none, so a link-local address is unreachable';
const LINK_LOCAL_UPSTREAM = 'is link-local: the stub\'s sockets carry no zone, so it is unreachable (use its global or ULA address)';

/** Whether `host` (canonical) is an IPv6 link-local address, fe80::/10. */
function isLinkLocal(host: string): boolean {
  return net.isIPv6(host) && isLinkLocalOctets(parseIpv6(host));
}

/** The host's resolver files: the classic one, and systemd-resolved's list of the servers it forwards to. */
export const RESOLV_CONF = '/etc/resolv.conf';
export const RESOLVED_SERVERS = '/run/systemd/resolve/resolv.conf';
/** systemd-resolved's stub listeners: it answers there and forwards to the servers in RESOLVED_SERVERS. */
const RESOLVED_STUBS: readonly string[] = ['127.0.0.53', '127.0.0.54'];

/** The texts of the host's resolver files; undefined when a file is missing or unreadable. */
export interface SystemResolvers { resolvConf?: string | undefined; resolvedServers?: string | undefined }

export function readSystemResolvers(files: { resolvConf: string; resolvedServers: string } = { resolvConf: RESOLV_CONF, resolvedServers: RESOLVED_SERVERS }): SystemResolvers {
  const read = (f: string): string | undefined => { try { return readFileSync(f, 'utf8'); } catch { return undefined; } };
  return { resolvConf: read(files.resolvConf), resolvedServers: read(files.resolvedServers) };
}

/**
 * Upstreams when none are configured: the nameservers of /etc/resolv.conf,
 * minus the stub itself (isStubItself: its listen addresses, and for a wildcard
 * listener loopback and this host's addresses `own`). One case would loop:
 * /etc/resolv.conf names systemd-resolved's stub (127.0.0.53) while resolved
 * forwards to this stub (its servers file names an address the stub answers at,
 * on any port: `DNS=127.0.0.153` in resolved.conf, the setup docs/operations.md
 * describes). Then resolved's stub is replaced by the other servers resolved
 * knows (the links' DNS servers). `from` says where the list came from, for the log.
 */
export function systemUpstreams(sys: SystemResolvers, listen: readonly ListenAddr[], own: readonly string[] = ownAddressesFor(listen)): { upstreams: UpstreamAddr[]; from: string } {
  const etc = upstreamsFromResolvConf(sys.resolvConf ?? '', listen, own);
  const isStub = (a: UpstreamAddr): boolean => a.port === 53 && RESOLVED_STUBS.includes(a.host);
  if (sys.resolvedServers === undefined || !etc.some(isStub)) return { upstreams: etc, from: RESOLV_CONF };
  // resolv.conf has no ports: resolved forwarding to any of our addresses (DNS=127.0.0.153:5353 too) is a loop.
  const isUs = (a: UpstreamAddr): boolean => listen.some((l) => answersAt(l.host, a.host, own));
  const resolvedTargets = upstreamsFromResolvConf(sys.resolvedServers, []);
  if (!resolvedTargets.some(isUs)) return { upstreams: etc, from: RESOLV_CONF };
  const others = resolvedTargets.filter((a) => !isUs(a) && !isStub(a));
  const upstreams = etc.filter((a) => !isStub(a));
  for (const a of others) if (!upstreams.some((u) => u.host === a.host && u.port === a.port)) upstreams.push(a);
  return { upstreams, from: `${RESOLVED_SERVERS} (systemd-resolved forwards to this stub, so not via ${etc.filter(isStub).map((a) => a.host).join(', ')})` };
}

/**
 * Nameservers of a resolv.conf text, minus the stub itself (isStubItself; `own`: this host's
 * addresses) and minus link-local ones (`fe80::1%eth0`: the stub cannot send to a zone, NO_ZONE).
 */
export function upstreamsFromResolvConf(text: string, listen: readonly ListenAddr[], own: readonly string[] = ownAddressesFor(listen)): UpstreamAddr[] {
  const out: UpstreamAddr[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (!m) continue;
    const host = m[1]!.split('%')[0]!;
    if (!net.isIP(host)) continue;
    const addr = { host: net.isIPv6(host) ? canonicalIpv6(host) : host, port: 53 };
    if (isStubItself(addr, listen, own)) continue; // never forward to ourselves
    if (isLinkLocal(addr.host)) continue; // unreachable without its zone
    out.push(addr);
  }
  return out;
}

/**
 * This host's addresses, IPv4 and IPv6 (every interface's, zone ids dropped): a wildcard
 * listener answers at each of them. Read once per configuration (resolveConfig).
 */
function hostAddresses(): string[] {
  const out: string[] = [];
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) {
      const host = a.address.split('%')[0]!;
      if (net.isIPv4(host)) out.push(host);
      else if (net.isIPv6(host)) out.push(canonicalIpv6(host));
    }
  }
  return out;
}

const isWildcard = (host: string): boolean => host === '0.0.0.0' || host === '::';

/** The host's addresses when a listener is a wildcard (only then are they needed), else none. */
function ownAddressesFor(listen: readonly ListenAddr[]): string[] {
  return listen.some((l) => isWildcard(unmapped(l.host))) ? hostAddresses() : [];
}

/** An IPv4-mapped IPv6 address (::ffff:a.b.c.d) as the IPv4 address it stands for; others as they are. */
function unmapped(host: string): string {
  if (!net.isIPv6(host)) return host;
  const b = parseIpv6(host);
  return isV4MappedOctets(b) ? `${b[12]}.${b[13]}.${b[14]}.${b[15]}` : host;
}

/**
 * Whether the stub listening on `listenHost` answers datagrams sent to `host` (the two in
 * canonical form): the same address; or a wildcard listener — 0.0.0.0 takes 127.0.0.0/8 and
 * every IPv4 address of this host (`own`), and [::] takes ::1 and every IPv6 address of this
 * host, and the IPv4 ones too (the stub binds [::] dual-stack: udp-socket.ts, TCP). A datagram
 * sent to 0.0.0.0 or :: goes to 127.0.0.1 or ::1 (Linux), so such an upstream is loopback.
 */
function answersAt(listenHost: string, host: string, own: readonly string[]): boolean {
  const l = unmapped(listenHost);
  let h = unmapped(host);
  if (h === '0.0.0.0') h = '127.0.0.1';
  else if (h === '::') h = '::1';
  if (l === h) return true;
  if (!isWildcard(l)) return false;
  if (net.isIPv4(h)) return h.startsWith('127.') || own.includes(h);
  return l === '::' && (h === '::1' || own.includes(h));
}

/**
 * Whether upstream `u` is the stub itself: one of its listen addresses on `u`'s port answers at
 * `u`'s address (answersAt: a wildcard listener covers loopback and this host's addresses `own`).
 * Forwarding there, the stub would ask itself, and the question would wait on its own miss.
 */
export function isStubItself(u: UpstreamAddr, listen: readonly ListenAddr[], own: readonly string[]): boolean {
  return listen.some((l) => l.port === u.port && answersAt(l.host, u.host, own));
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function num(o: Obj, key: string, path: string, def: number, min: number, max: number, integer = true): number {
  const v = o[key];
  if (v === undefined) return def;
  if (typeof v !== 'number' || !Number.isFinite(v) || (integer && !Number.isInteger(v)) || v < min || v > max) {
    bad(`${path}.${key}`, v, `expected ${integer ? 'an integer' : 'a number'} in ${min}..${max}`);
  }
  return v;
}

function bool(o: Obj, key: string, path: string, def: boolean): boolean {
  const v = o[key];
  if (v === undefined) return def;
  if (typeof v !== 'boolean') bad(`${path}.${key}`, v, 'expected true or false');
  return v;
}

function section(o: Obj, key: string, allowed: readonly string[]): Obj {
  const v = o[key];
  if (v === undefined) return {};
  if (!isObj(v)) bad(key, v, 'expected a mapping');
  for (const k of Object.keys(v)) if (!allowed.includes(k)) bad(`${key}.${k}`, v[k], `unknown key (known: ${allowed.join(', ')})`);
  return v;
}

function addrList(o: Obj, key: string, defPort: number, minPort: 0 | 1): ListenAddr[] | undefined {
  const v = o[key];
  if (v === undefined) return undefined;
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list) || list.length === 0) bad(key, v, 'expected a non-empty list of "ADDR:PORT"');
  return list.map((x, i) => parseHostPort(x, `${key}[${i}]`, defPort, minPort));
}

const TOP_KEYS = ['listen', 'allow', 'upstreams', 'queryTimeoutMs', 'udp', 'workers', 'upstream', 'cache', 'capability', 'tcp', 'control', 'log', 'replyLimit', 'resolvConf'];
/** Values of the `udp` key (and of `shim6 resolver --udp`). */
export const UDP_BACKENDS = ['auto', 'native', 'dgram'] as const;
/** Most resolver threads (`workers`); defined in limits.ts, which the CLI loads without the resolver. */
export { MAX_WORKERS };

/** `workers` (config key or `--workers`) must be 1..MAX_WORKERS, and more than 1 cannot run on dgram sockets. */
export function checkWorkers(workers: unknown, udp: ResolverConfig['udp'], key: string): number {
  if (typeof workers !== 'number' || !Number.isInteger(workers) || workers < 1 || workers > MAX_WORKERS) bad(key, workers, `expected an integer in 1..${MAX_WORKERS}`);
  if (workers > 1 && udp === 'dgram') bad(key, workers, 'more than one worker needs the native UDP backend (udp: auto or native), not dgram');
  return workers;
}

/**
 * What a config file holds for `shim6 resolver` besides the stub's own
 * settings: `replyLimit`, the rate limits of the engine it runs (the daemon's
 * key of the same name; `off` for benchmarks and closed labs). The stub
 * itself never reads it.
 */
export interface EngineFileConfig {
  replyLimit: ReplyLimitConfig;
  /** The DNS hand-over of `shim6 resolver` (shim/daemon/resolv-handover.ts): `manage` or `off` (default). */
  resolvConf: 'manage' | 'off';
}

/** Validate a parsed config document (from YAML or JSON). */
export function configFromObject(doc: unknown): Partial<ResolverConfig> & Pick<ResolverConfig, 'upstream' | 'cache' | 'capability' | 'listener' | 'queryTimeoutMs' | 'udp' | 'workers'> & EngineFileConfig {
  const o: Obj = doc === null || doc === undefined ? {} : isObj(doc) ? doc : bad('(top level)', doc, 'expected a mapping');
  for (const k of Object.keys(o)) if (!TOP_KEYS.includes(k)) bad(k, o[k], `unknown key (known: ${TOP_KEYS.join(', ')})`);
  const up = section(o, 'upstream', ['attemptTimeoutMs', 'minAttemptTimeoutMs', 'failThreshold', 'holdDownMs', 'socketCount', 'socketUses', 'maxInflight', 'randomizeCase']);
  const ca = section(o, 'cache', ['maxEntries', 'maxBytes', 'maxTtlSeconds', 'maxNegativeTtlSeconds', 'staleMaxSeconds']);
  const cp = section(o, 'capability', ['enabled', 'rrType', 'txtFallback', 'waitMaxMs', 'waitMinMs', 'waitFraction', 'maxEntries', 'defaultNegativeTtl', 'errorTtlSeconds', 'maxTtlSeconds', 'maxNegativeTtlSeconds']);
  const tcp = section(o, 'tcp', ['idleMs', 'maxConnections', 'maxConnectionsPerClient', 'maxInflight', 'maxUnsentBytes', 'messageTimeoutMs']);
  const ctl = section(o, 'control', ['socket']);
  const lg = section(o, 'log', ['level']);
  if (ctl.socket !== undefined && (typeof ctl.socket !== 'string' || ctl.socket === '')) bad('control.socket', ctl.socket, 'expected a path');
  if (lg.level !== undefined && (typeof lg.level !== 'string' || !isLogLevel(lg.level))) bad('log.level', lg.level, 'expected debug, info, warn or error');
  const udp = o.udp ?? 'auto';
  if (!UDP_BACKENDS.includes(udp as never)) bad('udp', udp, `expected ${UDP_BACKENDS.join(', ')}`);
  const d = DEFAULT_UPSTREAM_OPTIONS, c = DEFAULT_CACHE_OPTIONS, k = DEFAULT_CAPABILITY_OPTIONS, l = DEFAULT_LISTENER_OPTIONS.tcp;
  const listen = addrList(o, 'listen', 53, 0);
  const upstreams = addrList(o, 'upstreams', 53, 1);
  const resolvConf = o.resolvConf ?? 'off';
  if (resolvConf !== 'manage' && resolvConf !== 'off') bad('resolvConf', resolvConf, 'expected manage or off');
  const replyLimit = resolveReplyLimit(o.replyLimit);
  if ('error' in replyLimit) bad('replyLimit', o.replyLimit, replyLimit.error);
  const out = {
    queryTimeoutMs: num(o, 'queryTimeoutMs', '', DEFAULT_QUERY_TIMEOUT_MS, 10, 60_000),
    udp: udp as ResolverConfig['udp'],
    workers: checkWorkers(o.workers ?? 1, udp as ResolverConfig['udp'], 'workers'),
    upstream: {
      attemptTimeoutMs: num(up, 'attemptTimeoutMs', 'upstream', d.attemptTimeoutMs, 10, 30_000),
      minAttemptTimeoutMs: num(up, 'minAttemptTimeoutMs', 'upstream', d.minAttemptTimeoutMs, 1, 30_000),
      failThreshold: num(up, 'failThreshold', 'upstream', d.failThreshold, 1, 100),
      holdDownMs: num(up, 'holdDownMs', 'upstream', d.holdDownMs, 0, 3_600_000),
      socketCount: num(up, 'socketCount', 'upstream', d.socketCount, 1, 1024),
      socketUses: num(up, 'socketUses', 'upstream', d.socketUses, 1, 1_000_000),
      maxInflight: num(up, 'maxInflight', 'upstream', d.maxInflight, 1, 1_000_000),
      randomizeCase: bool(up, 'randomizeCase', 'upstream', d.randomizeCase),
    },
    cache: {
      maxEntries: num(ca, 'maxEntries', 'cache', c.maxEntries, 1, 10_000_000),
      maxBytes: num(ca, 'maxBytes', 'cache', c.maxBytes, 1024, 8 * 1024 ** 3),
      maxTtlSeconds: num(ca, 'maxTtlSeconds', 'cache', c.maxTtlSeconds, 1, 604_800),
      maxNegativeTtlSeconds: num(ca, 'maxNegativeTtlSeconds', 'cache', c.maxNegativeTtlSeconds, 0, 86_400),
      staleMaxSeconds: num(ca, 'staleMaxSeconds', 'cache', c.staleMaxSeconds, 0, 604_800),
    },
    capability: {
      enabled: bool(cp, 'enabled', 'capability', true),
      rrType: num(cp, 'rrType', 'capability', k.rrType, PRIVATE_RR_TYPE_MIN, PRIVATE_RR_TYPE_MAX),
      txtFallback: bool(cp, 'txtFallback', 'capability', k.txtFallback),
      waitMaxMs: num(cp, 'waitMaxMs', 'capability', k.waitMaxMs, 0, 10_000, false),
      waitMinMs: num(cp, 'waitMinMs', 'capability', k.waitMinMs, 0, 10_000, false),
      waitFraction: num(cp, 'waitFraction', 'capability', k.waitFraction, 0, 10, false),
      maxEntries: num(cp, 'maxEntries', 'capability', k.maxEntries, 1, 10_000_000),
      defaultNegativeTtl: num(cp, 'defaultNegativeTtl', 'capability', k.defaultNegativeTtl, 0, 86_400),
      errorTtlSeconds: num(cp, 'errorTtlSeconds', 'capability', k.errorTtlSeconds, 0, 3600),
      maxTtlSeconds: num(cp, 'maxTtlSeconds', 'capability', k.maxTtlSeconds, 1, 604_800),
      maxNegativeTtlSeconds: num(cp, 'maxNegativeTtlSeconds', 'capability', k.maxNegativeTtlSeconds, 1, 86_400),
    },
    listener: {
      allow: ClientAcl.parse(o.allow, 'allow').text,
      tcp: {
        idleMs: num(tcp, 'idleMs', 'tcp', l.idleMs, 100, 3_600_000),
        maxConnections: num(tcp, 'maxConnections', 'tcp', l.maxConnections, 1, 100_000),
        maxPerClient: num(tcp, 'maxConnectionsPerClient', 'tcp', l.maxPerClient, 1, 100_000),
        maxInflight: num(tcp, 'maxInflight', 'tcp', l.maxInflight, 1, 10_000),
        maxUnsentBytes: num(tcp, 'maxUnsentBytes', 'tcp', l.maxUnsentBytes, 1024, 16 * 1024 * 1024),
        messageTimeoutMs: num(tcp, 'messageTimeoutMs', 'tcp', l.messageTimeoutMs, 100, 3_600_000),
      },
    },
    ...(listen ? { listen } : {}),
    ...(upstreams ? { upstreams } : {}),
    ...(typeof ctl.socket === 'string' ? { controlSocket: ctl.socket } : {}),
    ...(typeof lg.level === 'string' && isLogLevel(lg.level) ? { logLevel: lg.level } : {}),
    replyLimit: replyLimit.value,
    resolvConf: resolvConf as EngineFileConfig['resolvConf'],
  };
  return out;
}

/** Read and validate a config file (YAML, of which JSON is a subset). */
export function loadConfigFile(file: string): ReturnType<typeof configFromObject> {
  let text: string;
  try {
    text = readBounded(file, '', 'config');
  } catch (err) {
    throw new UsageError('ECONFIG', `--config: cannot read ${JSON.stringify(file)}: ${(err as Error).message}`, '--config');
  }
  let doc: unknown;
  try {
    doc = parseYamlBounded(text);
  } catch (err) {
    throw new UsageError('ECONFIG', `--config: ${file} is not YAML/JSON: ${(err as Error).message}`, '--config');
  }
  return configFromObject(doc);
}

/**
 * The full configuration: file, then flags, then the host's resolv.conf (systemUpstreams) for
 * upstreams if still none. An upstream that is the stub itself (isStubItself) is refused. `own`:
 * this host's addresses, read here once when a listener is a wildcard (hostAddresses).
 */
export function resolveConfig(file: ReturnType<typeof configFromObject>, flags: { listen?: ListenAddr[]; upstreams?: UpstreamAddr[]; logLevel?: LogLevel; controlSocket?: string }, system: SystemResolvers = {}, own?: readonly string[]): ResolverConfig {
  const listen = flags.listen ?? file.listen ?? [DEFAULT_LISTEN];
  const ours = own ?? ownAddressesFor(listen);
  let upstreams = flags.upstreams ?? file.upstreams;
  let upstreamsFrom = 'configured';
  if (!upstreams) ({ upstreams, from: upstreamsFrom } = systemUpstreams(system, listen, ours));
  if (upstreams.length === 0) throw new UsageError('ECONFIG', `upstreams: none configured and none usable in ${upstreamsFrom}`, 'upstreams');
  // An IPv4-mapped address is asked at its IPv4 address: the pool's IPv6 sockets are IPv6-only (upstream.ts).
  upstreams = upstreams.map((u) => ({ host: unmapped(u.host), port: u.port }));
  for (const u of upstreams) {
    if (isStubItself(u, listen, ours)) bad(flags.upstreams ? '--upstream' : 'upstreams', hostPort(u.host, u.port), 'is the stub itself');
    if (isLinkLocal(u.host)) bad(flags.upstreams ? '--upstream' : 'upstreams', hostPort(u.host, u.port), LINK_LOCAL_UPSTREAM);
  }
  return {
    listen, upstreams, upstreamsFrom,
    queryTimeoutMs: file.queryTimeoutMs,
    upstream: file.upstream, cache: file.cache, capability: file.capability, listener: file.listener, udp: file.udp, workers: file.workers,
    controlSocket: flags.controlSocket ?? file.controlSocket,
    logLevel: flags.logLevel ?? file.logLevel ?? 'info',
  };
}
