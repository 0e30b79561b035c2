/**
 * `shim6 status`: ask a running resolver or daemon over its control socket and
 * print resolver counters, the resolver's capability cache (by name), the
 * engine's capability caches (positive by ULID, negative by peer address, with
 * reason, source and remaining lifetime) and contexts — as text, or as JSON
 * with --json.
 */
import type { Command } from 'commander';
import { registerControlCommand } from '../control-command.ts';
import type { CapabilityStatus, GuardCounters } from '../../shim/engine/index.ts';

interface StatusReply {
  resolver?: {
    listen?: Array<{ host: string; port: number }>;
    counters?: Record<string, number>;
    cache?: Record<string, number>;
    upstreams?: Array<Record<string, unknown>>;
    capability?: { enabled: boolean; positive: Array<Record<string, unknown>>; negative: Array<Record<string, unknown>> };
    workers?: { count: number; queries: number[]; restarts: number };
  } | null;
  engine?: { contexts?: Array<Record<string, unknown>>; guard?: GuardCounters; capability?: CapabilityStatus } | null;
  discovery?: { mode: string; flows: number; started: number; probing: number; established: number; failed: number; inFlight: number; flowsLost: number; skipped: Record<string, number> } | null;
}

function kv(o: Record<string, unknown>): string {
  const show = (v: unknown): string => (typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v));
  return Object.entries(o).map(([k, v]) => `${k}=${Array.isArray(v) ? v.map(show).join(',') : show(v)}`).join(' ');
}

/** Human-readable rendering of a status reply. */
export function formatStatus(s: StatusReply): string {
  const out: string[] = [];
  const r = s.resolver;
  if (r) {
    out.push(`resolver: listening on ${(r.listen ?? []).map((a) => `${a.host}:${a.port}`).join(', ')}`);
    const c = r.counters ?? {};
    out.push(`  queries ${c.queries ?? 0}  hits ${c.hits ?? 0}  misses ${c.misses ?? 0}  servfail ${c.servfail ?? 0}  formerr ${c.formerr ?? 0}`);
    out.push(`  capability found ${c.capabilityFound ?? 0}  absent ${c.capabilityAbsent ?? 0}  invalid ${c.capabilityInvalid ?? 0}  primes ${c.primes ?? 0}  chains cut ${c.capabilityChainCut ?? 0}`);
    out.push(`  tcp refused ${c.tcpRefused ?? 0}  idle closed for room ${c.tcpEvicted ?? 0}  message timeouts ${c.tcpMessageTimeouts ?? 0}  paused for unread answers ${c.tcpWritePauses ?? 0}  overflows ${c.tcpOverflows ?? 0}`);
    if (r.workers) out.push(`  threads ${r.workers.count}  queries per thread ${r.workers.queries.join(' ')}  restarts ${r.workers.restarts}`);
    if (r.cache) out.push(`  cache ${kv(r.cache)}`);
    for (const u of r.upstreams ?? []) out.push(`  upstream ${kv(u)}`);
    const cap = r.capability;
    out.push(`resolver capability cache (positive, by name): ${cap?.positive.length ?? 0}`);
    for (const e of cap?.positive ?? []) out.push(`  ${kv(e)}`);
    out.push(`resolver capability cache (negative, by name): ${cap?.negative.length ?? 0}`);
    for (const e of cap?.negative ?? []) out.push(`  ${kv(e)}`);
  }
  if (s.engine) {
    const cap = s.engine.capability;
    if (cap) {
      out.push(`engine capability cache (positive, by ULID): ${cap.positive.length}`);
      for (const e of cap.positive) out.push(`  ${kv({ ...e })}`);
      out.push(`engine capability cache (negative, by peer address): ${cap.negative.length}`);
      for (const e of cap.negative) out.push(`  ${kv({ ...e })}`);
    }
    out.push(`contexts: ${s.engine.contexts?.length ?? 0}`);
    for (const ctx of s.engine.contexts ?? []) out.push(`  ${kv(ctx)}`);
    const g = s.engine.guard;
    if (g) {
      out.push(`refused: unproven ULID ${g.ulidUnproven}  own address as ULID ${g.ulidIsLocal}  over the context limits ${g.contextLimit}`);
      const r = (k: keyof GuardCounters['replies']) => `${k} ${g.replies[k].sent} sent, ${g.replies[k].limited} rate-limited, ${g.replies[k].oversize} too large`;
      out.push(`stateless replies: ${r('R1')};  ${r('R1bis')};  ${r('Error')}`);
    }
  } else {
    out.push('contexts: (no engine attached)');
  }
  const d = s.discovery;
  if (d) {
    out.push(`discovery (${d.mode}): new flows ${d.flows} (lost ${d.flowsLost})  started ${d.started}  probing ${d.probing}  established ${d.established}  no shim6 ${d.failed}  in flight ${d.inFlight}`);
    if (Object.keys(d.skipped).length) out.push(`  skipped ${kv(d.skipped)}`);
  }
  return out.join('\n') + '\n';
}

export function register(program: Command): void {
  registerControlCommand(program, 'status', 'show capability caches, contexts and resolver counters of a running shim6', formatStatus);
}
