/**
 * The public face of shim/engine (docs/contracts.md "shim/engine"): the Engine,
 * its configuration, events, the injected Rng and the capability-cache interface.
 */
export { Engine, type Datagram, type OutboundPacket, type PrimeRequest, type EngineDeps, type ContextStatus, type EngineStatus } from './engine.ts';
export { IcmpType, ENCAPSULATION_GROWTH, PMTU_EXPIRES_MS, applicationMtu, type IcmpInput, type IcmpResult } from './icmp.ts';
export { resolveConfig, PROFILES, RFC_PROFILE, FAST_PROFILE, advertisedKeepaliveSeconds, type EngineConfig, type Timers, type ProfileName, type CapabilityMode, type LocalLocator, type PeerConfig } from './config.ts';
export type { Transmit, DatagramResult, EncapsulateResult, EngineEvent, LocatorPair, CloseReason } from './events.ts';
export { MAX_PEER_LOCATORS, type UlidProof, type RehomeCause } from './context.ts';
export { MAX_LOCAL_LOCATORS, MAX_ECHOED_VALIDATOR, listRoom, localListRoom } from './local.ts';
export { KNOWN_PEERS_INTERVAL_MS, MAX_KNOWN_PEERS, MAX_PRIMED_PEERS, type GuardCounters, type KnownPeerCounters, type ProbeReplyCounts, type ReplyCounts, type ReplyKind } from './core.ts';
export { DEFAULT_REPLY_LIMIT, DEFAULT_VERIFY_LIMIT, MAX_PREFIX_BUCKETS, defaultProbeReplyLimit, resolveProbeReplyLimit, resolveReplyLimit, type ProbeReplyLimitConfig, type ProbeReplyLimitInput, type ReplyLimitConfig, type BucketConfig } from './reply-limit.ts';
export { cryptoRng, type Rng } from './random.ts';
export { NEGATIVE_REASONS, POSITIVE_SOURCES, capabilityStatus, type CapabilityStatus, type PositiveStatus, type NegativeStatus, type CapabilityCache, type CacheSnapshot, type PositiveEntry, type NegativeEntry, type NegativeReason, type PrimeLocator, type PositiveSource } from './capability.ts';
export { hbaVerifier, type LocatorVerifier, type LocatorClaim } from './verify.ts';
export { State, TRANSITIONS, transition, type Trigger, type Transition } from './states.ts';
export { REAP_TABLE, Reap, type ReapEvent, type ReapAction } from './reap.ts';
