/**
 * `shim6 status`: ask a running resolver or daemon over its control socket and
 * print it as `wg show` does: the daemon, then one block per peer (host name,
 * ULID, state, current locator pair, locators verified/probed, last received,
 * octets each way, last re-homing and why), then the resolver (counters,
 * upstreams, cache), then the capability caches and what the engine refused.
 * With --json, the reply itself: its keys are documented in docs/status.md
 * (`schemaVersion` 1; keys are only ever added).
 */
import type { Command } from 'commander';
import { registerControlCommand } from '../control-command.ts';
import type { GuardCounters } from '../../shim/daemon/control/client.ts';
import { formatAgo, formatBytes, formatDuration, formatPair, peerViews, type StatusReply } from '../../shim/daemon/status-view.ts';
import { hostPort } from '../../shim/log.ts';

/** `key=value` pairs of a cache entry; lists joined with commas, never JSON. */
function kv(o: Record<string, unknown>): string {
  const show = (v: unknown): string => (Array.isArray(v) ? v.map(show).join(',') : typeof v === 'object' && v !== null ? kv(v as Record<string, unknown>) : String(v));
  return Object.entries(o).map(([k, v]) => `${k}=${show(v)}`).join(' ');
}

/** A cache's entries, one line each, the first PEER_BLOCKS_MAX of them (every peer-made context leaves one); `--json` has all. */
function entries(list: readonly unknown[], out: string[]): void {
  for (const e of list.slice(0, PEER_BLOCKS_MAX)) out.push(`  ${kv({ ...(e as object) } as Record<string, unknown>)}`);
  if (list.length > PEER_BLOCKS_MAX) out.push(`  (${list.length - PEER_BLOCKS_MAX} more not shown; \`shim6 status --json\` lists every one)`);
}

/**
 * One kept ULID (docs/status.md `daemon.keptUlids[]`): why it is kept, its flag in our Locator
 * List, what uses it, and when it goes.
 */
function keptUlid(k: NonNullable<NonNullable<StatusReply['daemon']>['keptUlids']>[number]): string {
  const n = (count: number, what: string): string => `${count} ${what}${count === 1 ? '' : 's'}`;
  const uses = [...(k.connections === null ? [] : [n(k.connections, 'open connection')]), n(k.contexts, 'context')].join(', ');
  const release = k.releaseCheckInMs === null
    ? (k.why === 'ulid' ? 'kept while the daemon runs' : 'no check scheduled')
    : `released once unused, next check in ${formatDuration(k.releaseCheckInMs)}`;
  const why = k.why === 'ulid' ? 'our ULID, its address gone' : k.why === 'context' ? 'a context\'s ULID, its address gone' : 'from before the restart';
  return `${k.address} (${why}, ${k.broken ? 'BROKEN' : 'not BROKEN'}; ${uses}; ${release})`;
}

function daemonBlock(d: NonNullable<StatusReply['daemon']>, out: string[]): void {
  out.push(`daemon: pid ${d.pid ?? '?'}, up ${formatDuration((d.uptimeSeconds ?? 0) * 1000)}`);
  if (d.dataPlane === false) out.push(`  data plane off (shim6 resolver), ${d.port === null || d.port === undefined ? 'no engine' : `engine on UDP port ${d.port}, timers ${d.profile ?? '?'}`}`);
  else out.push(`  TUN ${d.tun ?? '?'}${d.tunPersistent === true ? ' (persistent: made before the start, left at the stop)' : ''}, UDP port ${d.port ?? '?'}, timers ${d.profile ?? '?'}`);
  const locs = d.locators ?? [];
  if (locs.length) out.push(`  local locators: ${locs.map((l) => `${l.address}${l.ifname ? ` on ${l.ifname}` : ''} (${l.up === false ? 'down' : 'up'})`).join(', ')}`);
  const routed = d.routed ?? [];
  // As the peer blocks: a long-running host keeps a route for each resumable peer (up to the engine's 10,000 pins).
  const more = routed.length > PEER_BLOCKS_MAX ? ` (${routed.length - PEER_BLOCKS_MAX} more; \`shim6 status --json\` lists every one)` : '';
  if (routed.length) out.push(`  routed into the TUN: ${routed.slice(0, PEER_BLOCKS_MAX).join(', ')}${more}`);
  if (d.keptUlids?.length) out.push(`  kept ULIDs: ${d.keptUlids.map(keptUlid).join('; ')}`);
  const st = d.stats;
  if (st) {
    out.push(`  packets: UDP ${st.udpIn} in, ${st.udpOut} out; TUN ${st.tunIn} in, ${st.tunOut} out; no context ${st.noContext}; not IPv6 ${st.notIpv6}; TCP prompts ${st.prompts}`);
    const drops = Object.entries(st.drops);
    out.push(`  drops: ${drops.length ? drops.map(([k, n]) => `${k} ${n}`).join(', ') : 'none'}`);
  }
}

/**
 * Peer blocks shown in the text at most: beyond, the named peers and those that carried the most
 * packets, and a line that says how many were left out (`--json` has every context). Thousands of
 * peer-made contexts would otherwise bury the rest of the status (docs/status.md).
 */
export const PEER_BLOCKS_MAX = 100;

function peerBlocks(s: StatusReply, out: string[]): void {
  let views = peerViews(s);
  const left = views.length - PEER_BLOCKS_MAX;
  if (left > 0) {
    const packets = (p: (typeof views)[number]): number => p.traffic.packetsIn + p.traffic.packetsOut;
    const keep = new Set([...views].sort((a, b) => Number(b.name !== null) - Number(a.name !== null) || packets(b) - packets(a)).slice(0, PEER_BLOCKS_MAX));
    views = views.filter((p) => keep.has(p));
  }
  for (const p of views) {
    out.push('');
    out.push(`peer: ${p.name ?? '(no name)'}`);
    out.push(`  ulid: ${p.ulid}`);
    out.push(`  state: ${p.state}, REAP ${p.reap}, ULID proven by ${p.ulidProof}`);
    out.push(`  current pair: ${formatPair(p.pair)}${p.port !== null ? ` (UDP port ${p.port})` : ''}`);
    out.push(`  locators: ${p.locators.map((l) => `${l.address} (${[l.verified ? 'verified' : 'unverified', l.probed ? 'probed' : 'not probed', ...(l.current ? ['current'] : [])].join(', ')})`).join('; ')}`);
    out.push(`  last received: ${formatAgo(p.lastReceivedAgoMs)}`);
    out.push(`  transfer: ${formatBytes(p.traffic.bytesIn)} received, ${formatBytes(p.traffic.bytesOut)} sent (${p.traffic.packetsIn} / ${p.traffic.packetsOut} packets)`);
    const r = p.lastRehome;
    out.push(`  last re-homing: ${r ? `${formatAgo(r.agoMs)}, ${r.cause}: ${formatPair(r.old)} to ${formatPair(r.new)} (${p.rehomings} in all)` : 'none'}`);
  }
  if (left > 0) {
    out.push('');
    out.push(`(${left} more peers not shown: the ${PEER_BLOCKS_MAX} shown are the named ones first, then those with the most packets; \`shim6 status --json\` lists every context)`);
  }
}

function resolverBlock(r: NonNullable<StatusReply['resolver']>, out: string[]): void {
  out.push('');
  out.push(`resolver: listening on ${(r.listen ?? []).map((a) => hostPort(a.host, a.port)).join(', ')}`);
  const c = r.counters ?? {};
  out.push(`  queries ${c.queries ?? 0}  hits ${c.hits ?? 0}  misses ${c.misses ?? 0}  servfail ${c.servfail ?? 0} (upstream ${c.servfailUpstream ?? 0}, no answer ${c.servfailNoAnswer ?? 0}, internal ${c.servfailInternal ?? 0})  formerr ${c.formerr ?? 0}  not allowed ${c.notAllowed ?? 0}`);
  out.push(`  capability found ${c.capabilityFound ?? 0}  absent ${c.capabilityAbsent ?? 0}  invalid ${c.capabilityInvalid ?? 0}  primes ${c.primes ?? 0}  chains cut ${c.capabilityChainCut ?? 0}`);
  out.push(`  tcp refused ${c.tcpRefused ?? 0}  idle closed for room ${c.tcpEvicted ?? 0}  message timeouts ${c.tcpMessageTimeouts ?? 0}  paused for unread answers ${c.tcpWritePauses ?? 0}  overflows ${c.tcpOverflows ?? 0}`);
  if (r.workers) out.push(`  threads ${r.workers.count}  queries per thread ${r.workers.queries.join(' ')}  restarts ${r.workers.restarts}`);
  if (r.cache) out.push(`  cache: ${r.cache.entries} answers of ${r.cache.maxEntries}, ${formatBytes(r.cache.bytes)} of ${formatBytes(r.cache.maxBytes)}, ${r.cache.inflight} in flight`);
  for (const u of r.upstreams ?? []) {
    const rtt = u.rttMs > 0 ? `rtt ${u.rttMs} ms (variation ${u.rttVarMs} ms)` : 'rtt not yet measured';
    out.push(`  upstream ${hostPort(u.host, u.port)}: ${u.down ? 'down' : 'up'}, ${rtt}, ${u.sent} sent, ${u.answered} answered, ${u.timeouts} timed out${u.failures ? `, ${u.failures} failures in a row` : ''}${u.caseFallback ? ', asked without 0x20' : ''}`);
  }
}

/** Human-readable rendering of a status reply. */
export function formatStatus(s: StatusReply): string {
  const out: string[] = [];
  if (s.daemon) daemonBlock(s.daemon, out);
  if (s.engine) peerBlocks(s, out);
  const r = s.resolver;
  if (r) resolverBlock(r, out);
  out.push('');
  if (r) {
    const cap = r.capability;
    out.push(`resolver capability cache (positive, by name): ${cap?.positive.length ?? 0}`);
    entries(cap?.positive ?? [], out);
    out.push(`resolver capability cache (negative, by name): ${cap?.negative.length ?? 0}`);
    entries(cap?.negative ?? [], out);
  }
  if (s.engine) {
    const cap = s.engine.capability;
    if (cap) {
      out.push(`engine capability cache (positive, by ULID): ${cap.positive.length}`);
      entries(cap.positive, out);
      out.push(`engine capability cache (negative, by peer address): ${cap.negative.length}`);
      entries(cap.negative, out);
    }
    const contexts = s.engine.contexts ?? [];
    const byState = new Map<string, number>();
    for (const c of contexts) byState.set(c.state, (byState.get(c.state) ?? 0) + 1);
    out.push(`contexts: ${contexts.length}${byState.size ? ` (${[...byState].map(([k, n]) => `${n} ${k}`).join(', ')})` : ''}`);
    const rh = Object.entries(s.engine.rehomings ?? {});
    if (rh.length) out.push(`re-homings: ${rh.map(([k, n]) => `${k} ${n}`).join(', ')}`);
    const m = s.engine.messages;
    if (m) {
      const line = (o: Record<string, number>): string => Object.entries(o).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`).join(', ') || 'none';
      out.push(`control messages sent: ${line(m.sent)}`);
      out.push(`control messages received: ${line(m.received)}`);
    }
    const g = s.engine.guard;
    if (g) {
      out.push(`refused: unproven ULID ${g.ulidUnproven}  own address as ULID ${g.ulidIsLocal}  over the context limits ${g.contextLimit}`);
      const rep = (k: keyof GuardCounters['replies']): string => `${k} ${g.replies[k].sent} sent, ${g.replies[k].limited} rate-limited, ${g.replies[k].oversize} too large`;
      out.push(`stateless replies: ${rep('R1')};  ${rep('R1bis')};  ${rep('Error')}`);
      out.push(`R2 to an I1: ${g.replies.R2.sent} sent, ${g.replies.R2.limited} rate-limited`);
      const pr = g.probeReplies;
      if (pr) out.push(`probe answers: ${pr.sent} sent, ${pr.limited} rate-limited, ${pr.trimmed} trimmed to twice their probe, ${pr.portPinned} sent to the context's port`);
      const c = g.cga;
      if (c) out.push(`CGA signatures: ${c.verified} verified (${c.badSignature} bad), ${c.cached} from cache, ${c.limited} over the verify limit; keys refused: not RSA ${c.keyNotRsa}, too short ${c.keyTooShort}, too long ${c.keyTooLong}, bad exponent ${c.keyBadExponent}`);
      const k = g.knownPeers;
      if (k && k.asked > 0) out.push(`known peers: ${k.peers} (asked ${k.asked} times under a flood, set ${k.updates} times); from their reserve ${k.replies} replies, ${k.verifications} verifications${k.probeReplies !== undefined ? `, ${k.probeReplies} probe answers` : ''}${k.primed !== undefined ? `; ${k.primed} addresses of primed peers` : ''}`);
    }
  } else {
    out.push('contexts: (no engine attached)');
  }
  const d = s.discovery;
  if (d) {
    out.push(`discovery (${d.mode}): new flows ${d.flows} (lost ${d.flowsLost})  started ${d.started}  probing ${d.probing}  established ${d.established}  no shim6 ${d.failed}  in flight ${d.inFlight}`);
    if (Object.keys(d.skipped).length) out.push(`  skipped ${kv(d.skipped)}`);
  }
  return out.join('\n').replace(/^\n+/, '') + '\n';
}

export function register(program: Command): void {
  registerControlCommand(program, 'status', 'show the daemon, one block per peer (pair, locators, traffic, re-homing), the resolver and the caches of a running shim6 (--json: docs/status.md)', formatStatus);
}
