/**
 * The Prometheus metrics of a running shim6 (docs/metrics.md lists them),
 * through prom-client's Registry and text format. Nothing is counted here and
 * nothing on the packet path knows about metrics: every value is read at
 * scrape time from one `status` snapshot (the control socket's reply, the
 * resolver threads' counters added up by resolver/workers.ts), set with
 * `use(snapshot)` just before the registry renders. Counters the process keeps
 * become `_total` counters here; sizes become gauges; the upstream round trips,
 * bucketed by the resolver, become a histogram in seconds.
 */
import { collectDefaultMetrics, Gauge, Registry, type Metric } from 'prom-client';
import { RTT_BUCKETS_MS } from '../../../resolver/upstream-job.ts';
import { peerNames, type StatusReply } from '../status-view.ts';
import { hostPort } from '../../log.ts';

type Labels = Record<string, string>;
interface Sample { labels?: Labels; value: number; metricName?: string }

/** Every context state (shim/engine/states.ts), so `shim6_contexts` has a series for each, zero included. */
const STATES = ['IDLE', 'I1-SENT', 'I2-SENT', 'I2BIS-SENT', 'ESTABLISHED', 'E-FAILED', 'NO-SUPPORT', 'CLOSING'];
/** Every re-homing cause (shim/engine/context.ts RehomeCause). */
const REHOME_CAUSES = ['send-timeout', 'keepalive-timeout', 'local-locator-down', 'local-locator-gone', 'peer-locator-broken', 'peer-exploring', 'icmp-unreachable'];

/**
 * A counter or histogram whose samples come from the snapshot: prom-client's
 * Counter cannot be set to a value read elsewhere, so this is the registry's
 * own metric shape (name, help, type, get()) filled at scrape time.
 */
class Collected {
  readonly aggregator = 'sum';
  constructor(readonly name: string, readonly help: string, readonly type: 'counter' | 'histogram', private readonly read: () => Sample[]) {}
  get(): { name: string; help: string; type: string; aggregator: string; values: Sample[] } {
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values: this.read() };
  }
}

export class ShimMetrics {
  readonly registry = new Registry();
  private snap: StatusReply = {};

  constructor(opts: { processMetrics?: boolean } = {}) {
    if (opts.processMetrics !== false) collectDefaultMetrics({ register: this.registry });
    this.resolverMetrics();
    this.engineMetrics();
    this.daemonMetrics();
  }

  /** The snapshot the next render reads. */
  use(snapshot: StatusReply): void {
    this.snap = snapshot;
  }

  /** Set the snapshot and render the text format. */
  async render(snapshot: StatusReply): Promise<string> {
    this.use(snapshot);
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  private counter(name: string, help: string, read: (s: StatusReply) => Sample[]): void {
    this.registry.registerMetric(new Collected(name, help, 'counter', () => read(this.snap)) as unknown as Metric);
  }

  private gauge(name: string, help: string, labelNames: string[], read: (s: StatusReply) => Sample[]): void {
    const snap = (): StatusReply => this.snap;
    new Gauge({
      name, help, labelNames, registers: [this.registry],
      collect() {
        this.reset();
        for (const x of read(snap())) this.set(x.labels ?? {}, x.value);
      },
    });
  }

  private resolverMetrics(): void {
    const c = (s: StatusReply, k: string): number => s.resolver?.counters?.[k] ?? 0;
    const has = (s: StatusReply): boolean => !!s.resolver;
    this.counter('shim6_resolver_queries_total', 'DNS questions clients sent to the stub, by transport.', (s) => has(s)
      ? [{ labels: { transport: 'udp' }, value: c(s, 'udpQueries') }, { labels: { transport: 'tcp' }, value: c(s, 'tcpQueries') }] : []);
    this.counter('shim6_resolver_cache_hits_total', 'Client questions answered from the answer cache.', (s) => has(s) ? [{ value: c(s, 'hits') }] : []);
    this.counter('shim6_resolver_cache_misses_total', 'Client questions sent on to an upstream.', (s) => has(s) ? [{ value: c(s, 'misses') }] : []);
    this.counter('shim6_resolver_servfail_total', 'SERVFAIL answers, by reason: the upstream said so, no upstream answered, or an internal failure.', (s) => has(s)
      ? [['upstream', 'servfailUpstream'], ['no-answer', 'servfailNoAnswer'], ['internal', 'servfailInternal']].map(([reason, k]) => ({ labels: { reason: reason! }, value: c(s, k!) })) : []);
    this.counter('shim6_resolver_rejected_total', 'Client messages refused or dropped, by reason.', (s) => has(s)
      ? [['formerr', 'formerr'], ['notimp', 'refused'], ['not-allowed', 'notAllowed'], ['dropped', 'dropped']].map(([reason, k]) => ({ labels: { reason: reason! }, value: c(s, k!) })) : []);
    this.counter('shim6_resolver_truncated_total', 'UDP answers truncated (TC) for the client\'s buffer size.', (s) => has(s) ? [{ value: c(s, 'truncated') }] : []);
    this.counter('shim6_resolver_stale_served_total', 'Expired answers served because the upstreams failed.', (s) => has(s) ? [{ value: c(s, 'staleServed') }] : []);
    this.counter('shim6_resolver_coalesced_total', 'Questions that waited for an identical one already in flight.', (s) => has(s) ? [{ value: c(s, 'coalesced') }] : []);
    this.counter('shim6_resolver_capability_lookups_total', 'Capability record lookups, by outcome.', (s) => has(s)
      ? [['found', 'capabilityFound'], ['absent', 'capabilityAbsent'], ['invalid', 'capabilityInvalid'], ['error', 'capabilityErrors'], ['late', 'capabilityLate'], ['chain-cut', 'capabilityChainCut']]
        .map(([outcome, k]) => ({ labels: { outcome: outcome! }, value: c(s, k!) })) : []);
    this.counter('shim6_resolver_capability_primes_total', 'Peers handed to the engine as running shim6 (a valid record).', (s) => has(s) ? [{ value: c(s, 'primes') }] : []);
    this.counter('shim6_resolver_capability_absents_total', 'Peers handed to the engine as not running shim6.', (s) => has(s) ? [{ value: c(s, 'absents') }] : []);
    this.gauge('shim6_resolver_cache_entries', 'Answers in the answer cache.', [], (s) => s.resolver?.cache ? [{ value: s.resolver.cache.entries }] : []);
    this.gauge('shim6_resolver_cache_bytes', 'Octets the answer cache holds.', [], (s) => s.resolver?.cache ? [{ value: s.resolver.cache.bytes }] : []);
    this.gauge('shim6_resolver_cache_max_entries', 'Bound of the answer cache, in entries.', [], (s) => s.resolver?.cache ? [{ value: s.resolver.cache.maxEntries }] : []);
    this.gauge('shim6_resolver_cache_max_bytes', 'Bound of the answer cache, in octets.', [], (s) => s.resolver?.cache ? [{ value: s.resolver.cache.maxBytes }] : []);
    this.gauge('shim6_resolver_capability_cache_entries', 'Names in the resolver\'s capability cache, by kind.', ['kind'], (s) => s.resolver?.capability
      ? [{ labels: { kind: 'positive' }, value: s.resolver.capability.positive.length }, { labels: { kind: 'negative' }, value: s.resolver.capability.negative.length }] : []);
    this.gauge('shim6_resolver_tcp_connections', 'Open client TCP connections.', [], (s) => s.resolver?.tcp ? [{ value: s.resolver.tcp.connections }] : []);
    this.gauge('shim6_resolver_threads', 'Resolver threads answering.', [], (s) => has(s) ? [{ value: s.resolver?.workers?.count ?? 1 }] : []);
    this.counter('shim6_resolver_thread_restarts_total', 'Resolver threads that died and were started again.', (s) => has(s) ? [{ value: s.resolver?.workers?.restarts ?? 0 }] : []);
    const up = (s: StatusReply): NonNullable<NonNullable<StatusReply['resolver']>['upstreams']> => s.resolver?.upstreams ?? [];
    const label = (u: { host: string; port: number }): Labels => ({ upstream: hostPort(u.host, u.port) });
    this.counter('shim6_resolver_upstream_queries_total', 'Tries sent to an upstream.', (s) => up(s).map((u) => ({ labels: label(u), value: u.sent })));
    this.counter('shim6_resolver_upstream_answers_total', 'Answers an upstream gave.', (s) => up(s).map((u) => ({ labels: label(u), value: u.answered })));
    this.counter('shim6_resolver_upstream_timeouts_total', 'Tries an upstream did not answer in time.', (s) => up(s).map((u) => ({ labels: label(u), value: u.timeouts })));
    this.gauge('shim6_resolver_upstream_up', '1 while the upstream is used, 0 while it is held down after failures.', ['upstream'], (s) => up(s).map((u) => ({ labels: label(u), value: u.down ? 0 : 1 })));
    this.gauge('shim6_resolver_upstream_srtt_seconds', 'Smoothed round-trip time of the upstream (RFC 6298), 0 before the first answer.', ['upstream'], (s) => up(s).map((u) => ({ labels: label(u), value: u.rttMs / 1000 })));
    this.registry.registerMetric(new Collected('shim6_resolver_upstream_rtt_seconds', 'Round-trip times of answered upstream tries.', 'histogram', () => {
      const out: Sample[] = [];
      for (const u of up(this.snap)) {
        const buckets = u.rttBuckets ?? [];
        let acc = 0;
        RTT_BUCKETS_MS.forEach((le, i) => {
          acc += buckets[i] ?? 0;
          out.push({ metricName: 'shim6_resolver_upstream_rtt_seconds_bucket', labels: { ...label(u), le: String(le / 1000) }, value: acc });
        });
        acc += buckets[RTT_BUCKETS_MS.length] ?? 0;
        out.push({ metricName: 'shim6_resolver_upstream_rtt_seconds_bucket', labels: { ...label(u), le: '+Inf' }, value: acc });
        out.push({ metricName: 'shim6_resolver_upstream_rtt_seconds_sum', labels: label(u), value: (u.rttSumMs ?? 0) / 1000 });
        out.push({ metricName: 'shim6_resolver_upstream_rtt_seconds_count', labels: label(u), value: acc });
      }
      return out;
    }) as unknown as Metric);
  }

  private engineMetrics(): void {
    const e = (s: StatusReply): NonNullable<StatusReply['engine']> | undefined => s.engine ?? undefined;
    this.gauge('shim6_contexts', 'Shim6 contexts, by state.', ['state'], (s) => {
      if (!e(s)) return [];
      const n = new Map(STATES.map((st) => [st, 0]));
      for (const c of e(s)!.contexts ?? []) n.set(c.state, (n.get(c.state) ?? 0) + 1);
      return [...n].map(([state, value]) => ({ labels: { state }, value }));
    });
    this.counter('shim6_rehomings_total', 'Moves of a context to another locator pair, by cause (what started the exploration, or the peer\'s).', (s) => e(s)
      ? REHOME_CAUSES.map((cause) => ({ labels: { cause }, value: e(s)!.rehomings?.[cause as keyof NonNullable<NonNullable<StatusReply['engine']>['rehomings']>] ?? 0 })) : []);
    this.counter('shim6_control_messages_sent_total', 'Shim6 control messages sent, by type (Probe, UpdateRequest, R1, R1bis, ...).', (s) => Object.entries(e(s)?.messages?.sent ?? {}).map(([type, value]) => ({ labels: { type }, value })));
    this.counter('shim6_control_messages_received_total', 'Shim6 control messages received and decoded, by type.', (s) => Object.entries(e(s)?.messages?.received ?? {}).map(([type, value]) => ({ labels: { type }, value })));
    this.counter('shim6_stateless_replies_total', 'Replies to datagrams that proved nothing: stateless (R1, R1bis, Error) and R2 to an I1 for a context, by outcome: sent, rate-limited, or refused as larger than twice their cause.', (s) => {
      const g = e(s)?.guard;
      if (!g) return [];
      return (['R1', 'R1bis', 'Error', 'R2'] as const).flatMap((kind) => (['sent', 'limited', 'oversize'] as const).map((outcome) => ({ labels: { kind, outcome }, value: g.replies[kind][outcome] })));
    });
    this.counter('shim6_probe_replies_total', 'REAP Probes sent in answer to a peer\'s Probe, and Probes left unanswered by the per-context or global rate limit; trimmed: answers cut to twice their probe; port-pinned: sent to the context\'s port, not the probe\'s.', (s) => {
      const p = e(s)?.guard?.probeReplies;
      return p ? [{ labels: { outcome: 'sent' }, value: p.sent }, { labels: { outcome: 'limited' }, value: p.limited }, { labels: { outcome: 'trimmed' }, value: p.trimmed }, { labels: { outcome: 'port-pinned' }, value: p.portPinned }] : [];
    });
    this.counter('shim6_i2_refused_total', 'I2/I2bis refused, by reason: ULID not proven, our own address as ULID, over the context limits.', (s) => {
      const g = e(s)?.guard;
      return g ? [{ labels: { reason: 'ulid-unproven' }, value: g.ulidUnproven }, { labels: { reason: 'ulid-is-local' }, value: g.ulidIsLocal }, { labels: { reason: 'context-limit' }, value: g.contextLimit }] : [];
    });
    this.counter('shim6_cga_signature_checks_total', 'CGA Signature checks of peers\' messages, by outcome: verified (RSA run), bad-signature (of those), cached, limited (over verifyLimit), and keys refused before any RSA work.', (s) => {
      const c = e(s)?.guard?.cga;
      if (!c) return [];
      const o: [string, number][] = [['verified', c.verified], ['bad-signature', c.badSignature], ['cached', c.cached], ['limited', c.limited], ['key-not-rsa', c.keyNotRsa], ['key-too-short', c.keyTooShort], ['key-too-long', c.keyTooLong], ['key-bad-exponent', c.keyBadExponent]];
      return o.map(([outcome, value]) => ({ labels: { outcome }, value }));
    });
    this.gauge('shim6_known_peers', 'Addresses in the engine\'s known peers: the peers of the host\'s open connections, read while a flood empties the host-wide reply or verification buckets.', [], (s) => {
      const k = e(s)?.guard?.knownPeers;
      return k ? [{ value: k.peers }] : [];
    });
    this.counter('shim6_known_peer_reserve_total', 'Replies sent, verifications run and Probes answered for known peers on a token of their reserve (replyLimit.knownPeers, verifyLimit.knownPeers, probeReplyLimit.knownPeers): the global bucket was empty.', (s) => {
      const k = e(s)?.guard?.knownPeers;
      return k ? [{ labels: { use: 'reply' }, value: k.replies }, { labels: { use: 'verification' }, value: k.verifications }, ...(k.probeReplies !== undefined ? [{ labels: { use: 'probe-reply' }, value: k.probeReplies }] : [])] : [];
    });
    this.gauge('shim6_capability_cache_entries', 'The engine\'s capability cache, by kind (positive by ULID, negative by peer address).', ['kind'], (s) => {
      const ca = e(s)?.caches;
      return ca ? [{ labels: { kind: 'positive' }, value: ca.positive }, { labels: { kind: 'negative' }, value: ca.negative }] : [];
    });
    const perContext = (s: StatusReply, pick: (t: { packetsIn: number; bytesIn: number; packetsOut: number; bytesOut: number }) => number): Sample[] => {
      const names = peerNames(s);
      return (e(s)?.contexts ?? []).map((c) => ({ labels: { peer: c.peerUlid, name: names.get(c.peerUlid) ?? '', context: String(c.contextTag) }, value: pick(c.traffic) }));
    };
    this.counter('shim6_context_received_bytes_total', 'Payload octets (the upper layer\'s, without the payload header) received on a context.', (s) => perContext(s, (t) => t.bytesIn));
    this.counter('shim6_context_sent_bytes_total', 'Payload octets sent on a context.', (s) => perContext(s, (t) => t.bytesOut));
    this.counter('shim6_context_received_packets_total', 'Payload packets received on a context.', (s) => perContext(s, (t) => t.packetsIn));
    this.counter('shim6_context_sent_packets_total', 'Payload packets sent on a context.', (s) => perContext(s, (t) => t.packetsOut));
    this.gauge('shim6_context_last_received_age_seconds', 'Seconds since a valid packet came from the peer of a context.', ['peer', 'name', 'context'], (s) => {
      const names = peerNames(s);
      return (e(s)?.contexts ?? []).filter((c) => c.lastReceivedAgoMs !== undefined)
        .map((c) => ({ labels: { peer: c.peerUlid, name: names.get(c.peerUlid) ?? '', context: String(c.contextTag) }, value: c.lastReceivedAgoMs! / 1000 }));
    });
  }

  private daemonMetrics(): void {
    const st = (s: StatusReply): NonNullable<NonNullable<StatusReply['daemon']>['stats']> | undefined => s.daemon?.stats ?? undefined;
    this.counter('shim6_dataplane_packets_total', 'Packets the data plane moved, by path: UDP in/out (Shim6 datagrams), TUN in/out (application packets).', (s) => {
      const x = st(s);
      return x ? [['udp-in', x.udpIn], ['udp-out', x.udpOut], ['tun-in', x.tunIn], ['tun-out', x.tunOut]].map(([path, value]) => ({ labels: { path: path as string }, value: value as number })) : [];
    });
    this.counter('shim6_dataplane_drops_total', 'Packets the data plane dropped, by reason (no context, not IPv6, and the engine\'s and driver\'s drop reasons).', (s) => {
      const x = st(s);
      if (!x) return [];
      return [{ labels: { reason: 'no-context-held' }, value: x.noContext }, { labels: { reason: 'not-ipv6' }, value: x.notIpv6 }, ...Object.entries(x.drops).map(([reason, value]) => ({ labels: { reason }, value }))];
    });
    this.counter('shim6_tcp_prompts_total', 'TCP prompts: segments replayed after a locator pair change or a context established again, and Packet Too Bigs handed to our own stack.', (s) => (st(s) ? [{ value: st(s)!.prompts }] : []));
    this.gauge('shim6_local_locators', 'The host\'s local locators, by link state.', ['state'], (s) => {
      const l = s.daemon?.locators;
      return l ? [{ labels: { state: 'up' }, value: l.filter((x) => x.up !== false).length }, { labels: { state: 'down' }, value: l.filter((x) => x.up === false).length }] : [];
    });
    this.gauge('shim6_routed_peers', 'Peer ULIDs routed into the TUN.', [], (s) => (s.daemon?.routed ? [{ value: s.daemon.routed.length }] : []));
  }
}
