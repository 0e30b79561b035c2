/**
 * The daemon's configuration file (YAML or JSON): parsing, validation and
 * defaults. Owns the shape of `DaemonConfig` and the meaning of every key
 * (docs/configuration.md lists them). Every invalid input is a `UsageError`
 * (code `ECONFIG`) whose `field` is the dotted key path and whose message names
 * the value. It does not know the engine's internals: timer values are handed
 * over as plain milliseconds by `timerValues()`.
 */
import { readBounded } from '../read-bounded.ts';
import path from 'node:path';
import { describeValue, parseJsonText, parseYamlBounded } from '../yaml-text.ts';
import { UsageError } from '../errors.ts';
import { canonicalIpv6, isIpv6, locatorProblem, type Ipv6 } from '../wire/ipv6.ts';
import { CAPABILITY_RR_TYPE, PRIVATE_RR_TYPE_MAX, PRIVATE_RR_TYPE_MIN, SHIM6_UDP_PORT, VALIDATOR_MIN_LIFETIME } from '../constants.ts';
import { isLogLevel, type LogLevel } from '../log.ts';
import { TIMER_KEYS, PROFILES, isCountKey, type TimerKey, type TimerProfileName } from './config-timers.ts';
import { MIN_PEER_GONE_TIMEOUT } from '../engine/config.ts';
import { configFromObject, DEFAULT_LISTEN, MAX_WORKERS, resolveConfig as resolveStubConfig, type ResolverConfig, type SystemResolvers } from '../../resolver/config.ts';
import { ClientAcl } from '../../resolver/client-acl.ts';
import { parseMetricsEndpoint } from './metrics/endpoint.ts';
import { DEFAULT_REPLY_LIMIT, DEFAULT_VERIFY_LIMIT, defaultProbeReplyLimit, resolveProbeReplyLimit, resolveReplyLimit, type ProbeReplyLimitInput, type ReplyLimitConfig } from '../engine/reply-limit.ts';
import { parseServer } from '../../zone-tools/dns-transport.ts';
import type { DnsUpdateConfig } from './dns-update.ts';
import { stubNameservers } from './resolv-handover.ts';
import { socketPathProblem } from './control/socket-file.ts';
import { networkNamespaceName } from './netns-name.ts';
import { rootControlSocket } from './control/client.ts';

export { TIMER_KEYS, PROFILES, type TimerKey, type TimerProfileName } from './config-timers.ts';

/** A `host:port` pair the stub listens on or forwards to. */
export interface Endpoint {
  address: string;
  port: number;
}

/** One of a configured peer's locators (RFC 5533 §5.15.3 preferences). */
export interface PeerLocator {
  address: Ipv6;
  priority: number;
  weight: number;
  flags: number;
}

/**
 * How the daemon learns whether a peer runs shim6
 * (docs/engine.md "Capability detection"): `configured` (node configuration: a
 * context at start), `integrated` or `independent` (host-based discovery, when
 * traffic starts), `off` (never a context).
 */
export type PeerMode = 'configured' | 'integrated' | 'independent' | 'off';
/** Discovery of peers with no record and no `peers` entry. */
export type DiscoveryMode = 'integrated' | 'independent' | 'off';

/** A `peers` entry: by default a peer known to run shim6 by node configuration. */
export interface PeerConfig {
  name: string | undefined;
  ulid: Ipv6;
  locators: PeerLocator[];
  port: number;
  mode: PeerMode;
}

export interface DaemonConfig {
  /** Where the stub resolver listens (UDP and TCP). */
  listen: Endpoint[];
  /** Prefixes of clients that may ask a stub listening on a non-loopback address (loopback always may). */
  allow: string[];
  /** Upstream recursive resolvers the stub forwards to. */
  upstreams: Endpoint[];
  /** Private RR type of the capability record (docs/capability-record.md). */
  recordType: number;
  /** Query the `_shim6` TXT fallback after a NODATA. */
  txtFallback: boolean;
  /** Threads of the stub resolver (resolver/workers.ts): its `workers` key. */
  resolverWorkers: number;
  /**
   * Longest life (s) of capability knowledge: a found record (the stub's
   * `capability.maxTtlSeconds`, and the engine's positive cache) and a negative
   * one (`capability.maxNegativeTtlSeconds`, the engine's negative cache).
   */
  capabilityMaxTtl: number;
  capabilityMaxNegativeTtl: number;
  peers: PeerConfig[];
  timers: { profile: TimerProfileName; overrides: Partial<Record<TimerKey, number>> };
  tun: { name: string; mtu: number };
  /** UDP port of the encapsulation (docs/wire.md "Transports"). */
  port: number;
  /**
   * UDP transport of the encapsulation: `native` (the addon's batched
   * recvmmsg/sendmmsg socket, udp-native.ts; falls back to `dgram` with a
   * warning when the addon is not built), `dgram` (Node's sockets, udp.ts), or
   * `auto` (as the resolver's key: native when the addon is built, else dgram, said once at info).
   */
  udp: 'native' | 'dgram' | 'auto';
  /**
   * Path of the application's packets while a context is on its ULID pair
   * (docs/dataplane.md "Kernel path"): `kernel` (the kernel's own route, packets
   * counted by nftables; start fails with EKERNELPATH if the table is refused),
   * `tun` (every context through the TUN and the daemon), `auto` (the default:
   * kernel when nftables accepts the table, else tun with one warning).
   */
  dataPath: 'auto' | 'kernel' | 'tun';
  /**
   * Where a re-homed context's packets are encapsulated on the kernel path: `kernel` (tc programs,
   * docs/dataplane.md "Kernel encapsulation"; the default, used with dataPath kernel or auto;
   * without clang, bpftool or BPF the TUN, said once) or `tun` (through the TUN and the daemon).
   * Set explicitly, `kernel` needs dataPath kernel or auto.
   */
  encapsulation: 'tun' | 'kernel';
  /** Interfaces whose addresses are local locators; empty = every global IPv6 address. */
  interfaces: string[];
  log: { level: LogLevel; format: 'text' | 'json' };
  cacheFile: string;
  controlSocket: string;
  /** HBA parameters file (`shim6 zone hba --out`): our locators' proof of ownership; absent = ULID only. */
  hba: string | undefined;
  /** Rate limits of the engine's stateless replies (R1, R1bis, Error): per source /64 and global, or `off`. */
  replyLimit: ReplyLimitConfig;
  /**
   * Rate limits of the Probes sent in answer to a peer's Probe, per context, global and the known
   * peers' reserve, or `off`;
   * undefined: the engine's defaults from the timers (defaultProbeReplyLimit). Parts left out take those.
   */
  probeReplyLimit: ProbeReplyLimitInput | undefined;
  /** Rate limits of the CGA Signature verifications peers' messages may cost: per source /64 and global, or `off`. */
  verifyLimit: ReplyLimitConfig;
  /** Contexts peers may make with this host, overall and per /64 of the peer ULID (memory bound). */
  maxContexts: number;
  maxContextsPerPrefix: number;
  /**
   * The DNS hand-over (resolv-handover.ts): `manage` points the host at the
   * stub while the daemon runs (systemd-resolved per-link on the TUN, else
   * /etc/resolv.conf) and restores the original on stop; `off` leaves it.
   */
  resolvConf: 'manage' | 'off';
  /** Where `/metrics` (Prometheus) and the status page listen (`ADDR:PORT`, `[V6]:PORT`); absent: off. */
  metrics: { address: string; port: number } | undefined;
  /** Give applications also the ICMPv6 errors Shim6 acted on (RFC 5533 §8's option). */
  icmpDeliverAll: boolean;
  /**
   * CGA identity (RFC 5533 §5.15.4–5): the RSA private key file that signs our
   * Locator Lists, so locators outside the HBA set are accepted; `sec` is the
   * Sec of a CGA ULID generated when no `hba` set is given. Absent: HBA only.
   */
  cga: { key: string; sec: 0 | 1 } | undefined;
  /** Publish our capability record (and AAAA) by RFC 2136 on every locator set change (dns-update.ts). */
  dnsUpdate: DnsUpdateConfig | undefined;
  /**
   * Host-based discovery (docs/configuration.md `discovery`) of peers with no
   * capability knowledge, from new outgoing flows (shim/dataplane/new-flows.ts):
   * `integrated` (the I1 exchange is the probe), `independent` (the probe pair
   * first), `off`.
   */
  discovery: DiscoveryMode;
}

/**
 * The default `cacheFile`: /var/lib/shim6/caches.json, and in a named network namespace other than
 * the host's /var/lib/shim6/netns/<name>/caches.json, since the daemons of several namespaces share
 * /var/lib and the file holds each one's saved contexts (netns-name.ts).
 */
export function defaultCacheFile(namespace = networkNamespaceName()): string {
  return namespace === undefined ? '/var/lib/shim6/caches.json' : path.join('/var/lib/shim6/netns', namespace, 'caches.json');
}

/** Defaults that work on a single host: documented in docs/configuration.md. */
export function defaultConfig(): DaemonConfig {
  return {
    listen: [{ address: DEFAULT_LISTEN.host, port: DEFAULT_LISTEN.port }],
    allow: [],
    upstreams: [],
    recordType: CAPABILITY_RR_TYPE,
    txtFallback: false,
    resolverWorkers: 1,
    capabilityMaxTtl: 86_400,
    capabilityMaxNegativeTtl: 3_600,
    peers: [],
    timers: { profile: 'rfc', overrides: {} },
    tun: { name: 'shim6', mtu: 1400 },
    port: SHIM6_UDP_PORT,
    udp: 'native',
    // The kernel path where the host has it: nothing through user space while nothing fails. A
    // peer on either path takes what it sends (test/e2e/kernel-path.test.ts: one host on each
    // path); CI reruns the tests that matter on the TUN path (test/e2e/on-tun-path/).
    dataPath: 'auto',
    // Only used with dataPath kernel or auto (docs/dataplane.md "Kernel encapsulation").
    encapsulation: 'kernel',
    interfaces: [],
    log: { level: 'info', format: 'text' },
    cacheFile: defaultCacheFile(),
    controlSocket: rootControlSocket(),
    hba: undefined,
    replyLimit: DEFAULT_REPLY_LIMIT,
    probeReplyLimit: undefined,
    verifyLimit: DEFAULT_VERIFY_LIMIT,
    maxContexts: 50_000,
    maxContextsPerPrefix: 1_000,
    resolvConf: 'off',
    metrics: undefined,
    icmpDeliverAll: false,
    cga: undefined,
    dnsUpdate: undefined,
    discovery: 'integrated',
  };
}

const TOP_KEYS = ['listen', 'allow', 'upstreams', 'recordType', 'txtFallback', 'resolverWorkers', 'capabilityMaxTtl', 'capabilityMaxNegativeTtl', 'peers', 'timers', 'tun', 'port', 'udp', 'dataPath', 'encapsulation', 'interfaces', 'log', 'cacheFile', 'controlSocket', 'hba', 'replyLimit', 'probeReplyLimit', 'verifyLimit', 'maxContexts', 'maxContextsPerPrefix', 'icmpDeliverAll', 'resolvConf', 'metrics', 'cga', 'dnsUpdate', 'discovery'] as const;

/** Throw the one config error: names the key path and the value. */
export function configError(field: string, value: unknown, why: string): never {
  // A key left out of an object that needs it: `missing`, not `invalid value undefined`.
  throw new UsageError('ECONFIG', value === undefined ? `${field}: missing: ${why}` : `${field}: invalid value ${describeValue(value)}: ${why}`, field);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function rejectUnknown(obj: Record<string, unknown>, allowed: readonly string[], prefix: string): void {
  for (const k of Object.keys(obj)) {
    if (!allowed.includes(k)) configError(prefix ? `${prefix}.${k}` : k, obj[k], `unknown key (known: ${allowed.join(', ')})`);
  }
}

function int(field: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) configError(field, v, `expected an integer in ${min}..${max}`);
  return v;
}

function str(field: string, v: unknown, pattern?: RegExp, what = 'a non-empty string'): string {
  if (typeof v !== 'string' || v.length === 0 || (pattern && !pattern.test(v))) configError(field, v, `expected ${what}`);
  return v;
}

function bool(field: string, v: unknown): boolean {
  if (typeof v !== 'boolean') configError(field, v, 'expected true or false');
  return v;
}

function list(field: string, v: unknown): unknown[] {
  if (!Array.isArray(v)) configError(field, v, 'expected a list');
  return v;
}

function ipv6(field: string, v: unknown): Ipv6 {
  if (typeof v !== 'string' || !isIpv6(v)) configError(field, v, 'expected an IPv6 address');
  return canonicalIpv6(v);
}

/**
 * A peer's ULID or locator: an address that can be a peer's (the zone tools' rule, locatorProblem):
 * not unspecified, loopback, multicast, link-local or IPv4-mapped.
 */
function peerAddress(field: string, v: unknown, what: 'ULID' | 'locator'): Ipv6 {
  const a = ipv6(field, v);
  const why = locatorProblem(a);
  if (why !== undefined) configError(field, v, `${a} ${why}; a peer's ${what} must be a global address`);
  return a;
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/**
 * Parse `addr`, `addr:port`, `[v6]`, `[v6]:port` or a bare IPv6 address into an
 * endpoint; `defaultPort` when none is given. `minPort` 1 for an upstream (port 0
 * is nowhere to send to); a listen address may have 0 (the kernel picks one).
 */
export function parseEndpoint(field: string, v: unknown, defaultPort: number, minPort: 0 | 1 = 0): Endpoint {
  if (typeof v !== 'string' || v.length === 0) configError(field, v, 'expected "address" or "address:port"');
  let address = v;
  let port = defaultPort;
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(v);
  const v4 = /^([\d.]+)(?::(\d+))?$/.exec(v);
  if (bracket) {
    address = bracket[1] ?? '';
    if (bracket[2] !== undefined) port = Number(bracket[2]);
  } else if (v4) {
    address = v4[1] ?? '';
    if (v4[2] !== undefined) port = Number(v4[2]);
  }
  if (isIpv6(address)) address = canonicalIpv6(address);
  else if (!IPV4.test(address)) configError(field, v, 'not an IPv4 or IPv6 address');
  if (!Number.isInteger(port) || port < minPort || port > 65535) configError(field, v, `port out of range ${minPort}..65535`);
  return { address, port };
}

function parsePeer(field: string, v: unknown): PeerConfig {
  if (!isObject(v)) configError(field, v, 'expected a mapping with ulid and locators');
  rejectUnknown(v, ['name', 'ulid', 'locators', 'port', 'mode'], field);
  const ulid = peerAddress(`${field}.ulid`, v.ulid, 'ULID');
  const mode = v.mode ?? 'configured';
  if (mode !== 'configured' && mode !== 'integrated' && mode !== 'independent' && mode !== 'off') {
    configError(`${field}.mode`, v.mode, 'expected configured, integrated, independent or off');
  }
  const locs = list(`${field}.locators`, v.locators ?? [ulid]);
  if (locs.length === 0 || locs.length > 32) configError(`${field}.locators`, v.locators, 'expected 1..32 locators');
  const locators = locs.map((l, i) => parseLocator(`${field}.locators[${i}]`, l));
  locators.forEach((l, j) => {
    const i = locators.findIndex((k) => k.address === l.address);
    if (i < j) configError(`${field}.locators[${j}]`, l.address, `the same locator as ${field}.locators[${i}]`);
  });
  return {
    name: v.name === undefined ? undefined : str(`${field}.name`, v.name),
    ulid,
    locators,
    port: v.port === undefined ? SHIM6_UDP_PORT : int(`${field}.port`, v.port, 1, 65535),
    mode,
  };
}

function parseLocator(field: string, v: unknown): PeerLocator {
  if (typeof v === 'string') return { address: peerAddress(field, v, 'locator'), priority: 0, weight: 0, flags: 0 };
  if (!isObject(v)) configError(field, v, 'expected an IPv6 address or { address, priority, weight }');
  rejectUnknown(v, ['address', 'priority', 'weight', 'flags'], field);
  return {
    address: peerAddress(`${field}.address`, v.address, 'locator'),
    priority: v.priority === undefined ? 0 : int(`${field}.priority`, v.priority, 0, 255),
    weight: v.weight === undefined ? 0 : int(`${field}.weight`, v.weight, 0, 255),
    flags: v.flags === undefined ? 0 : int(`${field}.flags`, v.flags, 0, 255),
  };
}

function parseTimers(v: unknown): DaemonConfig['timers'] {
  if (typeof v === 'string') v = { profile: v };
  if (!isObject(v)) configError('timers', v, 'expected a profile name or { profile, <timer>: ms }');
  rejectUnknown(v, ['profile', ...TIMER_KEYS], 'timers');
  const profile = v.profile ?? 'rfc';
  if (profile !== 'rfc' && profile !== 'fast') configError('timers.profile', profile, 'expected "rfc" or "fast"');
  const overrides: Partial<Record<TimerKey, number>> = {};
  for (const k of TIMER_KEYS) {
    // keepaliveTimeoutMax: 0 = no cap (the rfc profile's value).
    if (v[k] !== undefined) overrides[k] = int(`timers.${k}`, v[k], isCountKey(k) || k === 'keepaliveTimeoutMax' ? 0 : 1, 3_600_000);
  }
  return { profile, overrides };
}

function parseTun(v: unknown, d: DaemonConfig['tun']): DaemonConfig['tun'] {
  if (!isObject(v)) configError('tun', v, 'expected { name, mtu }');
  rejectUnknown(v, ['name', 'mtu'], 'tun');
  return {
    // IFNAMSIZ is 16 with the NUL.
    name: v.name === undefined ? d.name : str('tun.name', v.name, /^[A-Za-z0-9_.-]{1,15}$/, 'an interface name of 1..15 characters [A-Za-z0-9_.-]'),
    mtu: v.mtu === undefined ? d.mtu : int('tun.mtu', v.mtu, 1280, 65535),
  };
}

function parseLog(v: unknown, d: DaemonConfig['log']): DaemonConfig['log'] {
  if (typeof v === 'string') v = { level: v };
  if (!isObject(v)) configError('log', v, 'expected { level, format }');
  rejectUnknown(v, ['level', 'format'], 'log');
  const level = v.level ?? d.level;
  if (typeof level !== 'string' || !isLogLevel(level)) configError('log.level', level, 'expected debug, info, warn or error');
  const format = v.format ?? d.format;
  if (format !== 'text' && format !== 'json') configError('log.format', format, 'expected "text" or "json"');
  return { level, format };
}

function parseCga(v: unknown): NonNullable<DaemonConfig['cga']> {
  if (typeof v === 'string') v = { key: v };
  if (!isObject(v)) configError('cga', v, 'expected { key: FILE, sec: 0 or 1 }');
  rejectUnknown(v, ['key', 'sec'], 'cga');
  const key = str('cga.key', v.key, undefined, 'the path of an RSA private key file (PEM)');
  const sec = v.sec === undefined ? 1 : v.sec;
  if (sec !== 0 && sec !== 1) configError('cga.sec', sec, 'expected 0 or 1');
  return { key, sec };
}

function parseDnsUpdate(v: unknown): DnsUpdateConfig {
  if (!isObject(v)) configError('dnsUpdate', v, 'expected { server, zone, name, key, minInterval, aaaa, ttl }');
  rejectUnknown(v, ['server', 'zone', 'name', 'key', 'keyName', 'minInterval', 'aaaa', 'ttl'], 'dnsUpdate');
  const server = str('dnsUpdate.server', v.server, undefined, 'the primary server, "ADDR", "NAME", "ADDR:PORT" or "NAME:PORT" ([v6]:port)');
  try { parseServer(server, 'dnsUpdate.server'); } catch (e) { configError('dnsUpdate.server', server, (e as Error).message.replace(/^.*?: /, '')); }
  const absolute = (field: string, x: unknown): string => {
    const n = str(field, x, /^[A-Za-z0-9_.-]{1,253}$/, 'a DNS name');
    return n.endsWith('.') ? n : `${n}.`;
  };
  const zone = absolute('dnsUpdate.zone', v.zone);
  const name = absolute('dnsUpdate.name', v.name);
  if (name !== zone && !name.toLowerCase().endsWith(`.${zone.toLowerCase()}`)) configError('dnsUpdate.name', v.name, `not inside zone ${zone}`);
  return {
    server, zone, name,
    key: str('dnsUpdate.key', v.key, undefined, 'the path of a TSIG key file (as `shim6 zone update --key` takes)'),
    keyName: v.keyName === undefined ? undefined : str('dnsUpdate.keyName', v.keyName),
    minInterval: v.minInterval === undefined ? 1 : int('dnsUpdate.minInterval', v.minInterval, 0, 86_400),
    aaaa: v.aaaa === undefined ? false : bool('dnsUpdate.aaaa', v.aaaa),
    ttl: v.ttl === undefined ? 60 : int('dnsUpdate.ttl', v.ttl, 0, 2_147_483_647),
  };
}

/** Validate a parsed document (the result of YAML/JSON parsing) into a full config. */
export function validateConfig(doc: unknown): DaemonConfig {
  const c = defaultConfig();
  if (doc === null || doc === undefined) return c;
  if (!isObject(doc)) configError('(top level)', doc, 'expected a mapping of keys');
  rejectUnknown(doc, TOP_KEYS, '');
  // One address may stand alone, as in the resolver's file.
  if (doc.listen !== undefined) c.listen = list('listen', typeof doc.listen === 'string' ? [doc.listen] : doc.listen).map((e, i) => parseEndpoint(`listen[${i}]`, e, 53));
  if (doc.allow !== undefined) c.allow = [...ClientAcl.parse(doc.allow, 'allow').text];
  if (doc.upstreams !== undefined) c.upstreams = list('upstreams', typeof doc.upstreams === 'string' ? [doc.upstreams] : doc.upstreams).map((e, i) => parseEndpoint(`upstreams[${i}]`, e, 53, 1));
  // Private use only (RFC 6895 §3.1): dnsUpdate replaces the RRset of this type at the host's name.
  if (doc.recordType !== undefined) c.recordType = int('recordType', doc.recordType, PRIVATE_RR_TYPE_MIN, PRIVATE_RR_TYPE_MAX);
  if (doc.txtFallback !== undefined) c.txtFallback = bool('txtFallback', doc.txtFallback);
  if (doc.resolverWorkers !== undefined) c.resolverWorkers = int('resolverWorkers', doc.resolverWorkers, 1, MAX_WORKERS);
  if (doc.capabilityMaxTtl !== undefined) c.capabilityMaxTtl = int('capabilityMaxTtl', doc.capabilityMaxTtl, 1, 604_800);
  if (doc.capabilityMaxNegativeTtl !== undefined) c.capabilityMaxNegativeTtl = int('capabilityMaxNegativeTtl', doc.capabilityMaxNegativeTtl, 1, 86_400);
  if (doc.peers !== undefined) c.peers = list('peers', doc.peers).map((p, i) => parsePeer(`peers[${i}]`, p));
  if (doc.timers !== undefined) c.timers = parseTimers(doc.timers);
  if (doc.tun !== undefined) c.tun = parseTun(doc.tun, c.tun);
  if (doc.port !== undefined) c.port = int('port', doc.port, 1, 65535);
  if (doc.udp !== undefined) {
    if (doc.udp !== 'native' && doc.udp !== 'dgram' && doc.udp !== 'auto') configError('udp', doc.udp, 'expected native, dgram or auto');
    c.udp = doc.udp;
  }
  if (doc.dataPath !== undefined) {
    if (doc.dataPath !== 'auto' && doc.dataPath !== 'kernel' && doc.dataPath !== 'tun') configError('dataPath', doc.dataPath, 'expected auto, kernel or tun');
    c.dataPath = doc.dataPath;
  }
  if (doc.encapsulation !== undefined) {
    if (doc.encapsulation !== 'tun' && doc.encapsulation !== 'kernel') configError('encapsulation', doc.encapsulation, 'expected tun or kernel');
    if (doc.encapsulation === 'kernel' && c.dataPath === 'tun') configError('encapsulation', doc.encapsulation, 'kernel needs dataPath kernel or auto');
    c.encapsulation = doc.encapsulation;
  }
  if (doc.interfaces !== undefined) {
    c.interfaces = list('interfaces', doc.interfaces).map((n, i) => str(`interfaces[${i}]`, n, /^[A-Za-z0-9_.@-]{1,15}$/, 'an interface name'));
  }
  if (doc.log !== undefined) c.log = parseLog(doc.log, c.log);
  if (doc.cacheFile !== undefined) c.cacheFile = str('cacheFile', doc.cacheFile);
  if (doc.controlSocket !== undefined) {
    c.controlSocket = str('controlSocket', doc.controlSocket);
    const why = socketPathProblem(c.controlSocket);
    if (why !== undefined) configError('controlSocket', c.controlSocket, why);
  }
  if (doc.hba !== undefined) c.hba = str('hba', doc.hba);
  if (doc.replyLimit !== undefined) {
    const r = resolveReplyLimit(doc.replyLimit);
    if ('error' in r) configError('replyLimit', doc.replyLimit, r.error);
    c.replyLimit = r.value;
  }
  if (doc.probeReplyLimit !== undefined) {
    // Checked here (against any defaults: only the shape and ranges matter); the engine fills in
    // what is left out from its timers.
    const r = resolveProbeReplyLimit(doc.probeReplyLimit, defaultProbeReplyLimit(500, 4));
    if ('error' in r) configError('probeReplyLimit', doc.probeReplyLimit, r.error);
    c.probeReplyLimit = doc.probeReplyLimit as ProbeReplyLimitInput;
  }
  if (doc.verifyLimit !== undefined) {
    const r = resolveReplyLimit(doc.verifyLimit, 'verifyLimit', DEFAULT_VERIFY_LIMIT);
    if ('error' in r) configError('verifyLimit', doc.verifyLimit, r.error);
    c.verifyLimit = r.value;
  }
  if (doc.maxContexts !== undefined) c.maxContexts = int('maxContexts', doc.maxContexts, 1, 10_000_000);
  if (doc.maxContextsPerPrefix !== undefined) c.maxContextsPerPrefix = int('maxContextsPerPrefix', doc.maxContextsPerPrefix, 1, 10_000_000);
  if (doc.resolvConf !== undefined) {
    if (doc.resolvConf !== 'manage' && doc.resolvConf !== 'off') configError('resolvConf', doc.resolvConf, 'expected manage or off');
    c.resolvConf = doc.resolvConf;
  }
  if (doc.metrics !== undefined && doc.metrics !== null && doc.metrics !== 'off') c.metrics = parseMetricsEndpoint('metrics', doc.metrics);
  if (doc.icmpDeliverAll !== undefined) c.icmpDeliverAll = bool('icmpDeliverAll', doc.icmpDeliverAll);
  if (doc.cga !== undefined) c.cga = parseCga(doc.cga);
  if (doc.dnsUpdate !== undefined) c.dnsUpdate = parseDnsUpdate(doc.dnsUpdate);
  if (doc.discovery !== undefined) {
    if (doc.discovery !== 'integrated' && doc.discovery !== 'independent' && doc.discovery !== 'off') configError('discovery', doc.discovery, 'expected integrated, independent or off');
    c.discovery = doc.discovery;
  }
  // What the engine and the DNS hand-over would refuse at start, refused here: a reload (or
  // `--check-config`) accepting it would leave a service that fails at its next restart.
  const validator = timerValues(c).validatorLifetime;
  if (validator < VALIDATOR_MIN_LIFETIME) configError('timers.validatorLifetime', validator, `at least ${VALIDATOR_MIN_LIFETIME} ms (RFC 5533 §7.13)`);
  const peerGone = timerValues(c).peerGoneTimeout;
  if (peerGone < MIN_PEER_GONE_TIMEOUT) configError('timers.peerGoneTimeout', peerGone, `at least ${MIN_PEER_GONE_TIMEOUT} ms (longer than a daemon restart takes)`);
  if (c.resolvConf === 'manage') stubNameservers(c.listen.map((l) => ({ host: l.address, port: l.port })));
  const ulids = new Set<string>();
  c.peers.forEach((p, i) => {
    if (ulids.has(p.ulid)) configError(`peers[${i}].ulid`, p.ulid, 'the same ULID is configured twice');
    ulids.add(p.ulid);
  });
  return c;
}

/** The keys a reload applies at once (and `log.level` of `log`); every other key is read at start only. */
export const RELOADED_KEYS: ReadonlySet<string> = new Set(['peers', 'cacheFile']);

/**
 * The keys of `next` that differ from the running `config` and that a reload does not apply
 * (every key but RELOADED_KEYS and `log.level`, and the `mode` of a peer configured before and
 * after, fixed in the engine at start):
 * the reload says so, rather than letting a change look applied.
 */
export function keysNeedingRestart(config: DaemonConfig, next: DaemonConfig): string[] {
  const keys = new Set([...Object.keys(config), ...Object.keys(next)]);
  const changed = [...keys].filter((k) => !RELOADED_KEYS.has(k) && k !== 'log'
    && JSON.stringify((config as unknown as Record<string, unknown>)[k]) !== JSON.stringify((next as unknown as Record<string, unknown>)[k]));
  // The level applies at once (Logger.setLevel); the format is the lines' shape from the first one on.
  if (JSON.stringify({ ...config.log, level: undefined }) !== JSON.stringify({ ...next.log, level: undefined })) changed.push('log.format');
  // A peer added or removed is applied; a peer kept with another mode is not.
  const before = new Map(config.peers.map((p) => [p.ulid, p.mode]));
  if (next.peers.some((p) => before.has(p.ulid) && before.get(p.ulid) !== p.mode)) changed.push('peers[].mode');
  return changed.sort();
}

/**
 * What `shim6 daemon`'s flags set over the file (`--log-level`, `--log-format`, `--metrics`,
 * `--manage-resolv-conf`): applied to the file's configuration at start and again at every reload,
 * so a reload neither undoes them nor names them as waiting for a restart.
 */
export interface ConfigOverrides {
  logLevel?: LogLevel;
  logFormat?: DaemonConfig['log']['format'];
  /** An endpoint, or `off`: no metrics, whatever the file says. */
  metrics?: NonNullable<DaemonConfig['metrics']> | 'off';
  resolvConf?: 'manage';
}

/** `c` with the command line's values over the file's. */
export function withOverrides(c: DaemonConfig, o: ConfigOverrides): DaemonConfig {
  return {
    ...c,
    log: { level: o.logLevel ?? c.log.level, format: o.logFormat ?? c.log.format },
    metrics: o.metrics === undefined ? c.metrics : o.metrics === 'off' ? undefined : o.metrics,
    resolvConf: o.resolvConf ?? c.resolvConf,
  };
}

/**
 * The stub's configuration made of the daemon's keys, or undefined when `listen` is empty (no
 * stub): with no `upstreams`, the nameservers of the host's resolver files `sys`; an upstream that
 * is the stub itself, or none at all, is ECONFIG naming `upstreams`. The start runs it (daemon.ts
 * `startResolver`), and so does `--check-config` (start-checks.ts).
 */
export function stubConfig(c: DaemonConfig, sys: SystemResolvers): ResolverConfig | undefined {
  if (c.listen.length === 0) return undefined;
  const file = configFromObject({
    capability: { rrType: c.recordType, txtFallback: c.txtFallback, maxTtlSeconds: c.capabilityMaxTtl, maxNegativeTtlSeconds: c.capabilityMaxNegativeTtl },
    workers: c.resolverWorkers,
    allow: c.allow,
  });
  // The upstreams as the file's (they are: an error names the key `upstreams`, not a flag of `shim6 resolver`).
  const upstreams = c.upstreams.length ? { upstreams: c.upstreams.map((u) => ({ host: u.address, port: u.port })) } : {};
  return resolveStubConfig({ ...file, ...upstreams }, { listen: c.listen.map((l) => ({ host: l.address, port: l.port })), logLevel: c.log.level }, sys);
}

/** The file `shim6 daemon` reads without --config, when it exists (ConfigurationDirectory=shim6 of the unit). */
export const DEFAULT_CONFIG_FILE = '/etc/shim6/shim6.yaml';

/** Parse config text; JSON when it starts with `{`, YAML otherwise (YAML is a superset anyway). */
export function parseConfigText(text: string, source = 'config'): DaemonConfig {
  let doc: unknown;
  try {
    doc = text.trimStart().startsWith('{') ? parseJsonText(text) : parseYamlBounded(text);
  } catch (err) {
    throw new UsageError('ECONFIG', `${source}: not valid YAML/JSON: ${(err as Error).message}`, source);
  }
  return validateConfig(doc);
}

/** Read and validate a config file; a missing file is an ECONFIG naming the path. */
export function loadConfig(file: string): DaemonConfig {
  let text: string;
  try {
    text = readBounded(file, '', 'config');
  } catch (err) {
    throw new UsageError('ECONFIG', `--config: cannot read ${JSON.stringify(file)}: ${(err as Error).message}`, '--config');
  }
  const c = anchorPaths(parseConfigText(text, file), path.dirname(path.resolve(file)));
  // The cache file is replaced whole at every save (a temp file renamed over it): naming a file
  // the daemon reads would replace that file with the caches at the first save.
  const read: Array<[string, string | undefined]> = [['the configuration file', path.resolve(file)], ['hba', c.hba], ['cga.key', c.cga?.key], ['dnsUpdate.key', c.dnsUpdate?.key], ['controlSocket', c.controlSocket]];
  const same = read.find(([, f]) => f === c.cacheFile);
  if (same !== undefined) configError('cacheFile', c.cacheFile, `is ${same[0] === 'the configuration file' ? 'the configuration file itself' : `the file ${same[0]} names`}: the daemon replaces the cache file at every save`);
  return c;
}

/**
 * A file's relative paths (`hba`, `cga.key`, `dnsUpdate.key`, `cacheFile`, `controlSocket`) are
 * relative to the file's directory, as a service's working directory (`/`) is not the one where
 * `--check-config` was run.
 */
function anchorPaths(c: DaemonConfig, dir: string): DaemonConfig {
  const at = (p: string): string => path.resolve(dir, p);
  const out: DaemonConfig = {
    ...c,
    cacheFile: at(c.cacheFile),
    controlSocket: at(c.controlSocket),
    hba: c.hba === undefined ? undefined : at(c.hba),
    cga: c.cga === undefined ? undefined : { ...c.cga, key: at(c.cga.key) },
    dnsUpdate: c.dnsUpdate === undefined ? undefined : { ...c.dnsUpdate, key: at(c.dnsUpdate.key) },
  };
  const why = socketPathProblem(out.controlSocket);
  if (why !== undefined) configError('controlSocket', out.controlSocket, why);
  return out;
}

/** The effective timer values in ms: the profile with the overrides applied. */
export function timerValues(c: DaemonConfig): Record<TimerKey, number> {
  return { ...PROFILES[c.timers.profile], ...c.timers.overrides };
}
