/**
 * `shim6 flush`: empty a running resolver's answer cache and capability cache
 * over its control socket (as `resolvectl flush-caches` or dnsmasq's SIGHUP
 * do). The next lookup of each name goes upstream again, fetches the peer's
 * capability record again and primes the engine again; the engine's capability
 * caches and its contexts are not touched (a new prime replaces what the
 * engine knew of that ULID and lifts its hold-downs).
 */
import type { Command } from 'commander';
import { registerControlCommand } from '../control-command.ts';

interface FlushReply {
  resolver?: { answers: number; capability: number; threads: number } | null;
}

/** The one line `shim6 flush` prints. */
export function formatFlush(r: FlushReply): string {
  const f = r.resolver;
  if (!f) return 'no resolver running: nothing flushed\n';
  return `flushed the resolver's answer cache (${f.answers} entries) and capability cache (${f.capability} entries) on ${f.threads} thread${f.threads === 1 ? '' : 's'}; `
    + 'kept: the engine\'s capability caches and contexts\n';
}

export function register(program: Command): void {
  registerControlCommand(program, 'flush', 'empty the resolver\'s answer and capability caches of a running shim6 resolver or daemon (the engine\'s capability caches and contexts are kept)', formatFlush);
}
