/**
 * The resolver's counters, shown by `shim6 status`. Plain numbers bumped by the
 * stages and drivers; no logic here.
 */
export interface ResolverCounters {
  queries: number;
  udpQueries: number;
  tcpQueries: number;
  /** Client questions answered from the cache / sent on (internal capability lookups not included). */
  hits: number;
  misses: number;
  /** Lookups the capability stage made through the cache (TYPE65300, TXT, AAAA for A questions). */
  internalLookups: number;
  coalesced: number;
  staleServed: number;
  formerr: number;
  servfail: number;
  refused: number;
  dropped: number;
  truncated: number;
  upstreamTimeouts: number;
  upstreamTcpFallbacks: number;
  upstreamMalformed: number;
  upstreamMismatched: number;
  /** Upstream answers dropped because their question's letter case differs from the one sent (0x20). */
  upstreamCaseMismatched: number;
  /** TYPE65300 and `_shim6` TXT lookups sent on (they bypass the answer cache). */
  capabilityQueries: number;
  capabilityTxtQueries: number;
  capabilityFound: number;
  capabilityAbsent: number;
  capabilityInvalid: number;
  capabilityErrors: number;
  capabilityLate: number;
  primes: number;
  absents: number;
}

export function newCounters(): ResolverCounters {
  return {
    queries: 0, udpQueries: 0, tcpQueries: 0, hits: 0, misses: 0, internalLookups: 0, coalesced: 0, staleServed: 0,
    formerr: 0, servfail: 0, refused: 0, dropped: 0, truncated: 0,
    upstreamTimeouts: 0, upstreamTcpFallbacks: 0, upstreamMalformed: 0, upstreamMismatched: 0, upstreamCaseMismatched: 0,
    capabilityQueries: 0, capabilityTxtQueries: 0, capabilityFound: 0, capabilityAbsent: 0, capabilityInvalid: 0, capabilityErrors: 0, capabilityLate: 0,
    primes: 0, absents: 0,
  };
}
