/**
 * `shim6 status`: ask a running resolver or daemon over its control socket and
 * print capability caches (positive and negative, with source and remaining
 * TTL), contexts, and resolver counters — as text, or as JSON with --json.
 */
import type { Command } from 'commander';
import { registerControlCommand } from '../control-command.ts';
import type { GuardCounters } from '../../shim/engine/index.ts';

interface StatusReply {
  resolver?: {
    listen?: Array<{ host: string; port: number }>;
    counters?: Record<string, number>;
    cache?: Record<string, number>;
    upstreams?: Array<Record<string, unknown>>;
    capability?: { enabled: boolean; positive: Array<Record<string, unknown>>; negative: Array<Record<string, unknown>> };
    workers?: { count: number; queries: number[]; restarts: number };
  } | null;
  engine?: { contexts?: Array<Record<string, unknown>>; guard?: GuardCounters } | null;
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
    out.push(`  capability found ${c.capabilityFound ?? 0}  absent ${c.capabilityAbsent ?? 0}  invalid ${c.capabilityInvalid ?? 0}  primes ${c.primes ?? 0}`);
    if (r.workers) out.push(`  threads ${r.workers.count}  queries per thread ${r.workers.queries.join(' ')}  restarts ${r.workers.restarts}`);
    if (r.cache) out.push(`  cache ${kv(r.cache)}`);
    for (const u of r.upstreams ?? []) out.push(`  upstream ${kv(u)}`);
    const cap = r.capability;
    out.push(`capability cache (positive): ${cap?.positive.length ?? 0}`);
    for (const e of cap?.positive ?? []) out.push(`  ${kv(e)}`);
    out.push(`capability cache (negative): ${cap?.negative.length ?? 0}`);
    for (const e of cap?.negative ?? []) out.push(`  ${kv(e)}`);
  }
  if (s.engine) {
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
  return out.join('\n') + '\n';
}

export function register(program: Command): void {
  registerControlCommand(program, 'status', 'show capability caches, contexts and resolver counters of a running shim6', formatStatus);
}
