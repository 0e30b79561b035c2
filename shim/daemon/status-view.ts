/**
 * The control socket's `status` reply as people read it: one view per peer
 * (name, ULID, state, current pair, locators, last received, traffic, last
 * re-homing), and the small formatters `shim6 status` and the status page
 * share (durations as "3 s ago", octets as "1.2 MiB", `[v6]:port`).
 * Pure functions of the reply (docs/status.md documents its keys); nothing
 * here asks the daemon.
 */
import type { ContextStatus, RehomeCause } from '../engine/index.ts';

/** What `status` replies (docs/status.md), as far as the views read it. */
export interface StatusReply {
  schemaVersion?: number;
  /** Host-based discovery (shim/daemon/discovery.ts), null when off. */
  discovery?: { mode: string; flows: number; started: number; probing: number; established: number; failed: number; inFlight: number; flowsLost: number; skipped: Record<string, number> } | null;
  daemon?: {
    pid?: number; uptimeSeconds?: number; tun?: string | null; tunPersistent?: boolean | null; port?: number | null; profile?: string | null; routed?: string[];
    /** false: `shim6 resolver` (no TUN, no routes, no locators). */
    dataPlane?: boolean;
    locators?: Array<{ address: string; up?: boolean; ifname?: string }>;
    stats?: { udpIn: number; udpOut: number; tunIn: number; tunOut: number; noContext: number; notIpv6: number; drops: Record<string, number>; prompts: number } | null;
    peers?: Array<{ name?: string | null; ulid: string }>;
    primedNames?: Array<{ name: string; ulid: string }>;
    keptUlids?: Array<import('./restored.ts').KeptUlidView>;
  } | null;
  engine?: {
    contexts?: ContextStatus[];
    caches?: { positive: number; negative: number };
    guard?: import('../engine/index.ts').GuardCounters;
    messages?: { sent: Record<string, number>; received: Record<string, number> };
    rehomings?: Partial<Record<RehomeCause, number>>;
    capability?: import('../engine/index.ts').CapabilityStatus;
  } | null;
  resolver?: {
    listen?: ReadonlyArray<{ host: string; port: number }>;
    uptimeSeconds?: number;
    counters?: Record<string, number>;
    cache?: { entries: number; bytes: number; maxEntries: number; maxBytes: number; inflight: number };
    upstreams?: Array<UpstreamView>;
    tcp?: { connections: number; maxConnections: number };
    capability?: { enabled: boolean; positive: unknown[]; negative: unknown[] };
    workers?: { count: number; queries: number[]; restarts: number };
  } | null;
}

/** One upstream as the resolver's status shows it (resolver/upstream.ts UpstreamStatus). */
export interface UpstreamView {
  host: string; port: number; sent: number; answered: number; timeouts: number; failures: number;
  rttMs: number; rttVarMs: number; rttBuckets?: number[]; rttSumMs?: number; down: boolean; caseFallback: boolean;
}

/** One peer: a context of the engine, with the name DNS or the configuration gave its ULID. */
export interface PeerView {
  name: string | null;
  ulid: string;
  localUlid: string;
  state: string;
  reap: string;
  ulidProof: string;
  pair: { local: string; peer: string };
  port: number | null;
  locators: Array<{ address: string; verified: boolean; probed: boolean; current: boolean }>;
  lastReceivedAgoMs: number | null;
  traffic: { packetsIn: number; bytesIn: number; packetsOut: number; bytesOut: number };
  rehomings: number;
  lastRehome: { agoMs: number | null; cause: string; old: { local: string; peer: string }; new: { local: string; peer: string } } | null;
}

/**
 * ULID → host name: configured peers first, then the name that primed the context's peer
 * (daemon.primedNames), then the resolver's capability cache (the name whose record gave that ULID).
 */
export function peerNames(s: StatusReply): Map<string, string> {
  const names = new Map<string, string>();
  for (const p of s.daemon?.peers ?? []) if (p.name) names.set(p.ulid, p.name);
  for (const p of s.daemon?.primedNames ?? []) if (!names.has(p.ulid)) names.set(p.ulid, p.name);
  for (const e of (s.resolver?.capability?.positive ?? []) as Array<Record<string, unknown>>) {
    if (typeof e.ulid === 'string' && typeof e.name === 'string' && !names.has(e.ulid)) names.set(e.ulid, e.name);
  }
  return names;
}

/** The engine's contexts as peer views, ordered by name then ULID. */
export function peerViews(s: StatusReply): PeerView[] {
  const names = peerNames(s);
  const views = (s.engine?.contexts ?? []).map((c): PeerView => ({
    name: names.get(c.peerUlid) ?? null,
    ulid: c.peerUlid,
    localUlid: c.localUlid,
    state: c.state,
    reap: c.reap,
    ulidProof: c.ulidProof,
    pair: { local: c.pair.local, peer: c.pair.peer },
    port: c.port ?? null,
    locators: c.peerLocators.map((l) => ({ address: l.address, verified: l.verified, probed: l.probed, current: l.address === c.pair.peer })),
    lastReceivedAgoMs: c.lastReceivedAgoMs ?? null,
    traffic: c.traffic ?? { packetsIn: 0, bytesIn: 0, packetsOut: 0, bytesOut: 0 },
    rehomings: c.rehomings ?? 0,
    lastRehome: c.lastRehome ? { agoMs: c.lastRehome.agoMs ?? null, cause: c.lastRehome.cause, old: c.lastRehome.old, new: c.lastRehome.new } : null,
  }));
  return views.sort((a, b) => (a.name ?? '\uffff').localeCompare(b.name ?? '\uffff') || a.ulid.localeCompare(b.ulid));
}

/** `host:port`, with an IPv6 address in brackets: `[2001:db8::1]:53`. */

/** A duration for people: "850 ms", "3 s", "4 min 10 s", "2 h 5 min", "3 d 4 h". */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return s % 60 ? `${m} min ${s % 60} s` : `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 24) return m % 60 ? `${h} h ${m % 60} min` : `${h} h`;
  const d = Math.floor(h / 24);
  return h % 24 ? `${d} d ${h % 24} h` : `${d} d`;
}

/** "3 s ago" (or "never" when there is no time). */
export function formatAgo(ms: number | null | undefined): string {
  return ms === null || ms === undefined ? 'never' : `${formatDuration(ms)} ago`;
}

/** Octets for people, binary units as `wg show` writes them: "512 B", "1.50 KiB", "3.20 MiB". */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u++; }
  return u === 0 ? `${n} B` : `${v.toFixed(2)} ${units[u]}`;
}

/** A locator pair: "local -> peer". */
export function formatPair(p: { local: string; peer: string }): string {
  return `${p.local} -> ${p.peer}`;
}
