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
  /** SERVFAIL answers by reason: the upstream said so; no upstream answered (timeouts, all held down, overload); the chain threw. */
  servfailUpstream: number;
  servfailNoAnswer: number;
  servfailInternal: number;
  refused: number;
  /** Queries (UDP, answered REFUSED) and TCP connections (closed) from clients the config key `allow` does not name. */
  notAllowed: number;
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
  /** Address answers that stop in the middle of a CNAME chain: no record fetched for their last name. */
  capabilityChainCut: number;
  primes: number;
  absents: number;
  /** TCP connections refused: a bound was reached and no connection was idle to make room. */
  tcpRefused: number;
  /** Idle TCP connections closed to make room for a new one. */
  tcpEvicted: number;
  /** TCP connections closed because a message was not complete in time after its first octet. */
  tcpMessageTimeouts: number;
  /** Times reading paused because a client left too many answer octets unread. */
  tcpWritePauses: number;
  /** TCP connections closed because answers kept coming due while the client read nothing. */
  tcpOverflows: number;
}

export function newCounters(): ResolverCounters {
  return {
    queries: 0, udpQueries: 0, tcpQueries: 0, hits: 0, misses: 0, internalLookups: 0, coalesced: 0, staleServed: 0,
    formerr: 0, servfail: 0, servfailUpstream: 0, servfailNoAnswer: 0, servfailInternal: 0, refused: 0, notAllowed: 0, dropped: 0, truncated: 0,
    upstreamTimeouts: 0, upstreamTcpFallbacks: 0, upstreamMalformed: 0, upstreamMismatched: 0, upstreamCaseMismatched: 0,
    capabilityQueries: 0, capabilityTxtQueries: 0, capabilityFound: 0, capabilityAbsent: 0, capabilityInvalid: 0, capabilityErrors: 0, capabilityLate: 0, capabilityChainCut: 0,
    primes: 0, absents: 0,
    tcpRefused: 0, tcpEvicted: 0, tcpMessageTimeouts: 0, tcpWritePauses: 0, tcpOverflows: 0,
  };
}
