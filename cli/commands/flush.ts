/**
 * `shim6 flush`: empty a running resolver's answer cache and capability cache
 * over its control socket (as `resolvectl flush-caches` or dnsmasq's SIGHUP
 * do). The next lookup of each name goes upstream again, fetches the peer's
 * capability record again and primes the engine again; the engine's contexts
 * are not touched.
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
  return `flushed ${f.answers} cached answers and ${f.capability} capability entries (${f.threads} resolver thread${f.threads === 1 ? '' : 's'})\n`;
}

export function register(program: Command): void {
  registerControlCommand(program, 'flush', 'empty the answer and capability caches of a running shim6 resolver or daemon', formatFlush);
}
