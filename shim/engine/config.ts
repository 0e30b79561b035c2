/**
 * Engine configuration: timer profiles (`rfc`, `fast`), per-value overrides,
 * the host's locators and HBA/CGA identity, capability detection per peer, and
 * cache bounds. Implementation defaults live here; spec constants stay in
 * shim/constants.ts. This module must not know about contexts or messages.
 */
import * as C from '../constants.ts';
import { ms, seconds, type Millis } from '../time.ts';
import { UsageError } from '../errors.ts';
import type { Ipv6 } from '../wire/ipv6.ts';
import type { KeyObject } from 'node:crypto';
import type { LocatorVerifier } from './verify.ts';
import { checkLocatorParams, resolveCgaKey, type CgaKeyInput } from './cga.ts';
import { DEFAULT_VERIFY_LIMIT, defaultProbeReplyLimit, resolveProbeReplyLimit, resolveReplyLimit, type ProbeReplyLimitConfig, type ProbeReplyLimitInput, type ReplyLimitConfig } from './reply-limit.ts';

/** Every timer value the engine uses; a profile fills all of them. */
export interface Timers {
  i1Timeout: Millis;
  i1RetriesMax: number;
  noR1HolddownTime: Millis;
  icmpHolddownTime: Millis;
  i2Timeout: Millis;
  i2RetriesMax: number;
  i2bisTimeout: Millis;
  i2bisRetriesMax: number;
  /** How long a responder secret stays current; validators live 1–2 × this (≥ VALIDATOR_MIN_LIFETIME). */
  validatorLifetime: Millis;
  updateTimeout: Millis;
  maxUpdateTimeout: Millis;
  /** RFC 5534 §7. */
  sendTimeout: Millis;
  /** Used when the peer sent no Keepalive Timeout option (RFC 5534 §7: 15 s). */
  defaultKeepaliveTimeout: Millis;
  /**
   * Upper bound on the Keepalive Timeout we apply to a peer (0: none, follow
   * the peer). The Keepalive Timeout option counts whole seconds (RFC 5534
   * §5.3), so a sub-second Send Timeout cannot be advertised: on a LAN where
   * both ends run `fast`, this keeps our keepalives (every 1/3–1/2 of it,
   * §5.2) inside the peer's Send Timeout, so an idle reverse direction does
   * not make the peer explore.
   */
  keepaliveTimeoutMax: Millis;
  initialProbeTimeout: Millis;
  initialProbes: number;
  maxProbeTimeout: Millis;
  /** RFC 5533 §9: tear down after this long without traffic (≥ 5 min recommended). */
  idleTimeout: Millis;
  /**
   * How long proven ICMPv6 Port Unreachables about the context's datagrams (the peer's UDP port
   * closed: its shim6 daemon is not running) must go on, with nothing heard from the peer, before
   * the context ends (`peer-gone`; icmp.ts, docs/engine.md "A peer whose daemon is gone"). Longer
   * than a daemon restart takes: a peer that restarts and resumes within it keeps the context.
   * Not RFC 5533's (§9 leaves teardown to each host); at least MIN_PEER_GONE_TIMEOUT.
   */
  peerGoneTimeout: Millis;
  closeTimeout: Millis;
  closeRetriesMax: number;
}

/** Timer profile names. */
export type ProfileName = 'rfc' | 'fast';

/** RFC defaults (RFC 5533 §14, RFC 5534 §7). */
export const RFC_PROFILE: Readonly<Timers> = {
  i1Timeout: C.I1_TIMEOUT, i1RetriesMax: C.I1_RETRIES_MAX,
  noR1HolddownTime: C.NO_R1_HOLDDOWN_TIME, icmpHolddownTime: C.ICMP_HOLDDOWN_TIME,
  i2Timeout: C.I2_TIMEOUT, i2RetriesMax: C.I2_RETRIES_MAX,
  i2bisTimeout: C.I2BIS_TIMEOUT, i2bisRetriesMax: C.I2BIS_RETRIES_MAX,
  validatorLifetime: C.VALIDATOR_MIN_LIFETIME,
  updateTimeout: C.UPDATE_TIMEOUT, maxUpdateTimeout: C.MAX_UPDATE_TIMEOUT,
  sendTimeout: C.SEND_TIMEOUT, defaultKeepaliveTimeout: C.SEND_TIMEOUT, keepaliveTimeoutMax: ms(0),
  initialProbeTimeout: C.INITIAL_PROBE_TIMEOUT, initialProbes: C.INITIAL_PROBES,
  maxProbeTimeout: C.MAX_PROBE_TIMEOUT,
  idleTimeout: seconds(600), closeTimeout: seconds(4), closeRetriesMax: 3,
  peerGoneTimeout: seconds(60),
};

/**
 * The least `peerGoneTimeout` accepted (ms): no daemon restarts faster, and a shorter one would end
 * the context of every peer whose daemon restarts (systemd starts a failed one again 5 s later).
 */
export const MIN_PEER_GONE_TIMEOUT = 1000;

/**
 * LANs and labs: re-home within a few hundred ms (the single source of these
 * numbers: the daemon's `timers.profile: fast` is this object). Send Timeout
 * 150 ms: a silent black hole is noticed after 150 ms, then the first probes
 * go at once to the current pair and the best disjoint pair (reap.ts), 50 ms
 * apart after that. The Send Timeout is below the RFC's 10 s floor, so RFC
 * 5534 §5.3 requires advertising it: every I2/I2bis/R2 and Update Request
 * carries a Keepalive Timeout option (whole seconds, so 1); our own keepalives
 * to the peer are capped at `keepaliveTimeoutMax` (150 ms → one every 50–75
 * ms while the reverse direction is idle), which keeps a `fast` peer's Send
 * Timeout quiet. A false exploration (a late keepalive on a loaded machine)
 * is harmless: payload stays on the current pair until a probe confirms
 * another, and the current pair is probed too and kept if it answers.
 * I1 retransmissions start at 300 ms (jittered 150–450 ms) so that a dead
 * first locator of the peer costs well under a second.
 */
export const FAST_PROFILE: Readonly<Timers> = {
  ...RFC_PROFILE,
  i1Timeout: ms(300), i2Timeout: ms(500), i2bisTimeout: ms(500),
  noR1HolddownTime: seconds(5), icmpHolddownTime: seconds(60),
  updateTimeout: ms(500), maxUpdateTimeout: seconds(8),
  sendTimeout: ms(150), defaultKeepaliveTimeout: ms(150), keepaliveTimeoutMax: ms(150),
  initialProbeTimeout: ms(50), maxProbeTimeout: seconds(2),
  idleTimeout: seconds(120), closeTimeout: ms(500),
};

export const PROFILES: Readonly<Record<ProfileName, Readonly<Timers>>> = { rfc: RFC_PROFILE, fast: FAST_PROFILE };

/** How the engine learns whether a peer runs shim6 (docs/engine.md "Capability detection"). */
export type CapabilityMode =
  | 'configured'   // node configuration: the peer is known to run shim6
  | 'dns'          // DNS priming: capability record seen
  | 'independent'  // host-based, independent: I1 → R1 only, a probe
  | 'integrated'   // host-based, integrated: full exchange straight away
  | 'off';         // never set up a context with this peer

/** One local locator (the host's own address). */
export interface LocalLocator {
  address: Ipv6;
  /** RFC 5533 §5.15.3 flags (BROKEN, TRANSIENT); default 0. */
  flags?: number;
  priority?: number;
  weight?: number;
  /**
   * RFC 5533 §5.15.2 verification method we announce for it: 'hba' (a member
   * of our HBA set) or 'cga' (signed with `cgaKey`, RFC 5533 §5.15.5). Default:
   * 'hba' when the PDS proves it as an HBA, else 'cga' when we have a key.
   */
  verification?: 'hba' | 'cga';
  /**
   * This address's own CGA Parameter Data Structure (an HBA member's, its prefix in the Subnet
   * Prefix field, RFC 5535 §6 step 6.5; or a CGA's, RFC 3972 §4), sent instead of `cgaParams` by
   * the contexts whose local ULID it is (RFC 5533 §7.13: the PDS corresponds to the ULID), e.g. a
   * ULID kept from before a restart that is not `localUlid`. It must prove the address and, with
   * `cgaKey`, hold that key's public half (UsageError ECGA_PARAMS / ECGA_KEY_MISMATCH).
   */
  cgaParams?: Uint8Array;
}

/** A per-peer configuration entry (`peers:` in the config file). */
export interface PeerConfig {
  ulid: Ipv6;
  mode?: CapabilityMode;
  locators?: Ipv6[];
  /** The UDP port of the peer's shim (`peers[].port`), where host-based discovery reaches it; absent: the transport's. */
  port?: number;
}

/** What `new Engine(config, rng)` accepts; everything but `localLocators` has a default. */
export interface EngineConfig {
  localLocators: LocalLocator[];
  /** Our ULID for contexts the engine initiates; default: the first local locator. */
  localUlid?: Ipv6;
  /** CGA Parameter Data Structure of our HBA set; without it only the ULID is advertised. */
  cgaParams?: Uint8Array;
  /**
   * Private key (KeyObject, PEM text or PKCS#8 DER) whose public key is in
   * `cgaParams`: with it, locators outside our HBA set are announced as
   * CGA-method and the Locator List is signed (RFC 5533 §5.15.5). Passed in,
   * never read from a file here.
   */
  cgaKey?: CgaKeyInput;
  /** Checks peer locators against their PDS (HBA/CGA); default: shim/wire/hba.ts. */
  verifier?: LocatorVerifier;
  profile?: ProfileName;
  timers?: Partial<Timers>;
  /** Capability mode for peers with no DNS record and no `peers` entry (host-based discovery). */
  defaultMode?: CapabilityMode;
  peers?: PeerConfig[];
  /** Capability cache bounds. */
  cacheMax?: number;
  positiveTtl?: Millis;
  /** Rate limits of stateless replies (R1, R1bis, Error); default DEFAULT_REPLY_LIMIT (reply-limit.ts). */
  replyLimit?: ReplyLimitConfig;
  /**
   * Rate limits of the Probes sent in answer to a peer's Probe, per context and for the host, and
   * the known peers' reserve; default from the timers (defaultProbeReplyLimit in reply-limit.ts:
   * 8/s burst 20 per context, 400/s burst 800 overall, 200/s burst 400 reserve with RFC timers).
   */
  probeReplyLimit?: ProbeReplyLimitInput;
  /**
   * Rate limits of the public-key verifications (CGA Signatures) that messages
   * not yet proven may cost, per source /64 and in all; default
   * DEFAULT_VERIFY_LIMIT (reply-limit.ts). `'off'` for benchmarks only.
   */
  verifyLimit?: ReplyLimitConfig;
  /** Contexts peers may make with us (not counting those we initiate); default 50,000 (about 50 MB). */
  maxContexts?: number;
  /** The same per /64 of the peer's ULID; default 1,000. */
  maxContextsPerPrefix?: number;
  /**
   * Hand the application also the ICMPv6 errors about its packets that Shim6
   * acted on (an unreachable that made REAP explore): RFC 5533 §8's option to
   * deliver every error. Default false.
   */
  icmpDeliverAll?: boolean;
}

/** The configuration after defaults, as the engine uses it. */
export interface ResolvedConfig {
  localLocators: LocalLocator[];
  localUlid: Ipv6;
  cgaParams: Uint8Array | undefined;
  cgaKey: KeyObject | undefined;
  timers: Timers;
  profile: ProfileName;
  defaultMode: CapabilityMode;
  peers: Map<Ipv6, PeerConfig>;
  cacheMax: number;
  positiveTtl: Millis;
  replyLimit: ReplyLimitConfig;
  probeReplyLimit: ProbeReplyLimitConfig;
  verifyLimit: ReplyLimitConfig;
  maxContexts: number;
  maxContextsPerPrefix: number;
  icmpDeliverAll: boolean;
}

/** Apply the profile, then the overrides; reject values that cannot work. */
export function resolveConfig(cfg: EngineConfig): ResolvedConfig {
  const profile = cfg.profile ?? 'rfc';
  const base = PROFILES[profile];
  if (!base) throw new UsageError('EPROFILE', `unknown timer profile ${String(profile)}`, 'profile');
  const timers: Timers = { ...base };
  for (const [k, v] of Object.entries(cfg.timers ?? {})) {
    if (!(k in timers)) throw new UsageError('ETIMER', `unknown timer ${k}`, `timers.${k}`);
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new UsageError('ETIMER', `timers.${k} must be a non-negative number, got ${String(v)}`, `timers.${k}`);
    (timers as unknown as Record<string, number>)[k] = v;
  }
  if (timers.validatorLifetime < C.VALIDATOR_MIN_LIFETIME) {
    throw new UsageError('ETIMER', `timers.validatorLifetime must be ≥ ${C.VALIDATOR_MIN_LIFETIME} ms (RFC 5533 §7.13)`, 'timers.validatorLifetime');
  }
  if (timers.peerGoneTimeout < MIN_PEER_GONE_TIMEOUT) {
    throw new UsageError('ETIMER', `timers.peerGoneTimeout must be ≥ ${MIN_PEER_GONE_TIMEOUT} ms (longer than a daemon restart takes)`, 'timers.peerGoneTimeout');
  }
  const first = cfg.localLocators[0];
  const localUlid = cfg.localUlid ?? first?.address;
  if (localUlid === undefined) throw new UsageError('ENO_LOCATORS', 'the engine needs at least one local locator', 'localLocators');
  const limit = resolveReplyLimit(cfg.replyLimit);
  if ('error' in limit) throw new UsageError('EREPLY_LIMIT', limit.error, 'replyLimit');
  const probeLimit = resolveProbeReplyLimit(cfg.probeReplyLimit, defaultProbeReplyLimit(timers.initialProbeTimeout, timers.initialProbes));
  if ('error' in probeLimit) throw new UsageError('EREPLY_LIMIT', probeLimit.error, 'probeReplyLimit');
  const cgaKey = resolveCgaKey(cfg.cgaKey, cfg.cgaParams, cfg.localLocators);
  checkLocatorParams(cfg.localLocators, cgaKey);
  const verifyLimit = resolveReplyLimit(cfg.verifyLimit, 'verifyLimit', DEFAULT_VERIFY_LIMIT);
  if ('error' in verifyLimit) throw new UsageError('EVERIFY_LIMIT', verifyLimit.error, 'verifyLimit');
  return {
    localLocators: cfg.localLocators.map((l) => ({ ...l })),
    localUlid,
    cgaParams: cfg.cgaParams,
    cgaKey,
    timers,
    profile,
    defaultMode: cfg.defaultMode ?? 'integrated',
    peers: new Map((cfg.peers ?? []).map((p) => [p.ulid, p])),
    cacheMax: cfg.cacheMax ?? 10_000,
    positiveTtl: cfg.positiveTtl ?? seconds(3600),
    replyLimit: limit.value,
    probeReplyLimit: probeLimit.value,
    verifyLimit: verifyLimit.value,
    maxContexts: positiveInt('maxContexts', cfg.maxContexts, 50_000),
    maxContextsPerPrefix: positiveInt('maxContextsPerPrefix', cfg.maxContextsPerPrefix, 1_000),
    icmpDeliverAll: cfg.icmpDeliverAll ?? false,
  };
}

function positiveInt(field: string, v: number | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  if (!Number.isInteger(v) || v < 1) throw new UsageError('ELIMIT', `${field} must be a whole number ≥ 1, got ${String(v)}`, field);
  return v;
}

/** Keepalive Timeout option value (whole seconds) advertising our Send Timeout (RFC 5534 §5.3). */
export function advertisedKeepaliveSeconds(t: Timers): number {
  return Math.max(1, Math.min(0xffff, Math.floor(t.sendTimeout / 1000)));
}

/** True when the Send Timeout differs from the RFC default, so the option MUST be sent. */
export function mustAdvertiseKeepalive(t: Timers): boolean {
  return t.sendTimeout !== C.SEND_TIMEOUT;
}
