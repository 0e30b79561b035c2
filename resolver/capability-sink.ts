/**
 * CapabilitySink: the only thing the resolver knows of the engine
 * (docs/contracts.md "resolver ↔ engine"). The daemon adapts it to
 * `Engine.prime` and the engine's fallback policy; tests record the calls.
 *
 * The resolver calls `prime` once per record lifetime for a peer whose valid
 * capability record it found, before the application's answer is sent when the
 * record arrived in time, and `absent` once per negative lifetime when the name
 * has no record (NODATA / NXDOMAIN, and no TXT fallback record).
 *
 * Both get what the resolver read as octets: the record checked but not decoded
 * (RecordOctets), the addresses as Ipv6Octets, the name as the resolver keys it
 * (lowercase wire form). A sink decodes and formats what it uses
 * (recordFromOctets, formatIpv6Octets, nameKeyToText), so the lookup that
 * carries the pickup makes no objects or text nobody reads, and a call crosses
 * to the main thread as strings.
 */
import type { Millis } from '../shim/time.ts';
import { formatIpv6Octets, type Ipv6Octets } from '../shim/wire/ipv6.ts';
import type { Logger } from '../shim/log.ts';
import { recordFromOctets, type RecordOctets } from '../shim/wire/capability-record.ts';
import { nameKeyToText } from './message.ts';

export type { RecordOctets, Ipv6Octets };
export { nameKeyToText };

export interface CapabilitySink {
  /** DNS says the peer named `nameKey` runs shim6 with this record (ULID and locator set), for `ttlSeconds`. */
  prime(now: Millis, record: RecordOctets, ttlSeconds: number, nameKey: string): void;
  /** DNS says `nameKey` (answered with `addresses`) has no capability record, for `ttlSeconds`. */
  absent(now: Millis, nameKey: string, addresses: Ipv6Octets[], ttlSeconds: number): void;
}

/**
 * A sink that only logs. `shim6 resolver` uses it when it runs without an engine (`--no-engine`,
 * or no global IPv6 address to run one on); otherwise, and in `shim6 daemon`, the engine's sink
 * primes the engine (shim/daemon/sink.ts). With several resolver threads each thread
 * logs with its own instance instead of sending the calls to the main thread.
 */
export class LoggingSink implements CapabilitySink {
  constructor(private readonly log: Logger) {}

  prime(_now: Millis, octets: RecordOctets, ttlSeconds: number, nameKey: string): void {
    if (!this.log.enabled('info')) return; // a prime per new peer: nothing decoded to be dropped
    const record = recordFromOctets(octets);
    this.log.info('capability prime', { name: nameKeyToText(nameKey), ulid: record.ulid, locators: record.locators.map((l) => l.address), ttl: ttlSeconds });
  }

  absent(_now: Millis, nameKey: string, addresses: Ipv6Octets[], ttlSeconds: number): void {
    if (!this.log.enabled('info')) return;
    this.log.info('capability absent', { name: nameKeyToText(nameKey), addresses: addresses.map(formatIpv6Octets), ttl: ttlSeconds });
  }
}
