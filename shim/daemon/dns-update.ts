/**
 * DNS follows the host (config `dnsUpdate`, issue 18): whenever the local
 * locator set changes, publish the host's capability record (and its AAAA
 * RRset when asked) with ONE TSIG-signed RFC 2136 update, through the zone
 * tools' update code (zone-tools/update.ts, as `shim6 zone update` sends it).
 *
 * Timing: a change is sent after a short batching delay (changes that come
 * together go together; the delay runs from the first of them, so a set that
 * keeps changing still goes out), and never sooner than `minInterval` after
 * the previous attempt. One update is in flight at a time; a change during it is
 * sent after it. A failure (server unreachable, or an RCODE other than
 * NOERROR) is retried with back-off (1 s doubling to 60 s) with the newest
 * set, until one succeeds. Failures are logged with the server's RCODE and
 * shown in `shim6 status` (`dnsUpdate`).
 *
 * Ordering: every update carries an RFC 2136 §2.4 prerequisite on the
 * capability RRset — the RRset the publisher believes the server holds (what it
 * read from the server at start, or what its last NOERROR update wrote) — so an
 * update that reaches the server late (a paused server works through its
 * sockets' queues in an order of its own) can never apply over a newer one:
 * the server answers it NXRRSET/YXRRSET and changes nothing. When our own
 * update gets that answer, the publisher reads the RRset again (a plain query
 * to the same server) and resends at once with the fresh prerequisite, at most
 * PREREQ_ROUNDS times in a row; then it backs off like any other failure.
 *
 * One case a prerequisite cannot catch: an unanswered update U (prerequisite X)
 * still on its way while we publish X itself again (the set went back to what
 * it was); U would then hold and apply. The server refuses U once its TSIG time
 * is past the fudge, so the publisher reads the record back when every
 * unanswered update is past that window (`verifyAt` in the status) and
 * corrects it if it changed.
 *
 * Owns: the key (read once at start), the timers, the status, the belief about
 * the server's RRset. Knows nothing of the engine: the daemon hands it the
 * usable locators.
 */
import { readBounded } from '../read-bounded.ts';
import { UsageError, EnvironmentError, ProtocolError } from '../errors.ts';
import { hostPort, type Logger } from '../log.ts';
import type { Ipv6 } from '../wire/ipv6.ts';
import { HBA_DIGEST_ALG_SHA256, CAPABILITY_MAX_LOCATORS, CAPABILITY_RR_TYPE } from '../constants.ts';
import { digestForUlid, type HbaParamsFile } from '../wire/hba-params.ts';
import { parseServer, type ServerAddress } from '../../zone-tools/dns-transport.ts';
import { parseTsigKeyFile } from '../../zone-tools/tsig-key.ts';
import type { TsigKey } from '../../zone-tools/tsig.ts';
import { buildHostRecord } from '../../zone-tools/record-input.ts';
import { isPrerequisiteFailure, readRrset, sameRrset, sendUpdate, UpdateRefused } from '../../zone-tools/update.ts';
import { DEFAULT_FUDGE } from '../../zone-tools/tsig.ts';
import { encodeCapabilityRecord } from '../wire/capability-record.ts';
import { bootClock, deadlineTimer, type DeadlineTimer } from '../clock.ts';
import type { HostRecord } from '../../zone-tools/zone-lines.ts';

/** The `dnsUpdate` config key, validated (config.ts). */
export interface DnsUpdateConfig {
  /** The primary server, `ADDR[:PORT]`. */
  server: string;
  zone: string;
  /** This host's name in the zone. */
  name: string;
  /** TSIG key file (BIND `key "…" { … };`, knot YAML, or `name:secret`), as `shim6 zone update --key`. */
  key: string;
  keyName: string | undefined;
  /** Seconds: no two updates start closer together than this. */
  minInterval: number;
  /** Also replace the AAAA RRset with the locators. */
  aaaa: boolean;
  /** TTL of the published records, seconds. */
  ttl: number;
}

/** What the publisher needs to know about our identity. */
export interface DnsIdentity {
  ulid: Ipv6;
  hba: HbaParamsFile | undefined;
  /** The ULID is a CGA (or a member of an HBA/CGA-compatible set). */
  cgaUlid: boolean;
  recordType?: number;
}

const BATCH_MS = 200;
const BACKOFF_FIRST_MS = 1000;
const BACKOFF_MAX_MS = 60_000;
/** One try per attempt (our back-off does the retrying), 2 s to answer. */
const EXCHANGE = { tries: 1, timeoutMs: 2000 } as const;
/** Reads and resends after a failed prerequisite, in a row, before backing off. */
export const PREREQ_ROUNDS = 3;
/**
 * How long after signing an unanswered update may still be applied, ms: the
 * server takes it while its clock is within the fudge of Time Signed, and its
 * clock is within the fudge of ours (or it takes nothing of ours at all).
 */
const IN_DOUBT_MS = 2 * DEFAULT_FUDGE * 1000;

/** `dnsUpdate` in `shim6 status`. */
export interface DnsUpdateStatus {
  server: string;
  zone: string;
  name: string;
  state: 'idle' | 'pending' | 'sending' | 'failing';
  /** The locators in DNS after the last success. */
  published: Ipv6[] | null;
  lastSuccessAt: string | null;
  updates: number;
  failures: number;
  /** Answers NXRRSET/YXRRSET: the server's capability RRset was not the one our update expected (then re-read). */
  prerequisiteFailures: number;
  /** An unanswered update may still reach the server until then; the record is read back at that time. */
  verifyAt: string | null;
  /** The last failure, while no success followed it. */
  lastError: { at: string; code: string; rcode: string | null; message: string; retryInMs: number } | null;
}

/** Read the TSIG key now, so a bad file stops the daemon at start, naming it. */
export function loadDnsKey(file: string, keyName: string | undefined): TsigKey {
  let text: string;
  try {
    text = readBounded(file, '', 'key');
  } catch (err) {
    if (err instanceof UsageError) throw new UsageError('EDNS_KEY', `dnsUpdate.key: ${err.message}`, 'dnsUpdate.key');
    throw new EnvironmentError('EDNS_KEY', `dnsUpdate.key: cannot read ${JSON.stringify(file)}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, file);
  }
  try {
    return parseTsigKeyFile(text, file, keyName);
  } catch (err) {
    throw new UsageError('EDNS_KEY', `dnsUpdate.key: ${(err as Error).message}`, 'dnsUpdate.key');
  }
}

export class DnsPublisher {
  private readonly server: ServerAddress;
  private readonly key: TsigKey;
  private desired: Ipv6[] | undefined;
  private published: Ipv6[] | undefined;
  /** The capability RRset (RDATAs) we believe the server holds; undefined: read it before the next update. */
  private held: Uint8Array[] | undefined;
  /** The last attempt got its answer and it was NOERROR: `published` is what the server holds. */
  private settled = false;
  /**
   * Until then (ms, bootClock) an unanswered update of ours may still be applied. A duration after
   * it was sent: the server refuses it once its TSIG time is past the fudge, which is 2 × fudge of
   * elapsed time at most however far our wall clock was off; on the wall clock a step (NTP, `date`)
   * put the read-back off by the step, or brought it forward to before the update could land.
   * In memory only: a restarted daemon reads the record before its first update anyway.
   */
  private inDoubtUntil = 0;
  /** Read the record back before trusting `published` (an unanswered update's window has passed). */
  private verifyDue = false;
  /**
   * The next attempt's and the read-back's timers, on bootClock (CLOCK_BOOTTIME timerfds: a
   * Node timer would wait out the rest of its delay awake after a suspend); made at first use.
   */
  private timer: DeadlineTimer | undefined;
  private timerArmed = false;
  private verifyTimer: DeadlineTimer | undefined;
  private inFlight = false;
  /** When the last attempt started (ms, bootClock: minInterval is an interval, not a time of day). */
  private lastAttemptAt = -Infinity;
  private backoffMs = 0;
  private stopped = false;
  private st: Omit<DnsUpdateStatus, 'server' | 'zone' | 'name' | 'state' | 'published' | 'verifyAt'> = { lastSuccessAt: null, updates: 0, failures: 0, prerequisiteFailures: 0, lastError: null };

  /** `inDoubtMs`: how long an unanswered update may still be applied (default twice the TSIG fudge; tests shorten it). */
  constructor(private readonly cfg: DnsUpdateConfig, private readonly id: DnsIdentity, private readonly log: Logger, private readonly opts: { inDoubtMs?: number } = {}) {
    this.server = parseServer(cfg.server, 'dnsUpdate.server');
    this.key = loadDnsKey(cfg.key, cfg.keyName);
    // The name must be in the zone and the record buildable: check now, not at the first change.
    this.record([id.ulid]);
  }

  /**
   * The locator set changed (or the daemon started): publish `locators` soon, best first. A record
   * holds at most CAPABILITY_MAX_LOCATORS: a host with more usable addresses publishes the first ones.
   */
  update(locators: readonly Ipv6[]): void {
    if (this.stopped || locators.length === 0) return;
    const next = locators.slice(0, CAPABILITY_MAX_LOCATORS);
    if (same(next, this.desired)) return;
    if (locators.length > next.length) {
      this.log.warn('dns record: more usable addresses than a record holds, publishing the first', { name: this.cfg.name, addresses: locators.length, published: next.length, left: locators.slice(next.length) });
    }
    this.desired = next;
    // A timer already armed stays: it sends the newest set when it fires. Re-armed at each change, a
    // set that changes faster than BATCH_MS (an address flapping) was never sent at all.
    if (!this.inFlight && this.backoffMs === 0 && !this.timerArmed) this.schedule(BATCH_MS);
  }

  status(): DnsUpdateStatus {
    const pending = this.desired !== undefined && (!same(this.desired, this.published) || !this.settled || this.verifyDue);
    const state = this.inFlight ? 'sending' : this.backoffMs > 0 ? 'failing' : pending ? 'pending' : 'idle';
    return {
      server: hostPort(this.server.host, this.server.port), zone: this.cfg.zone, name: this.cfg.name, state, published: this.published ?? null,
      ...this.st, verifyAt: this.inDoubtUntil > 0 ? new Date(Date.now() + (this.inDoubtUntil - bootClock())).toISOString() : null,
    };
  }

  stop(): void {
    this.stopped = true;
    this.timer?.close();
    this.verifyTimer?.close();
    this.timer = undefined;
    this.timerArmed = false;
    this.verifyTimer = undefined;
  }

  /** Arm the one timer: `delay` from now, but not before minInterval after the last attempt. */
  private schedule(delay: number): void {
    if (this.stopped) return;
    const now = bootClock();
    const at = Math.max(now + delay, this.lastAttemptAt + this.cfg.minInterval * 1000);
    this.timer ??= deadlineTimer(() => { this.timerArmed = false; void this.send(); }, { ref: false });
    this.timer.set(at);
    this.timerArmed = true;
  }

  private record(locators: readonly Ipv6[]): HostRecord {
    const host = buildHostRecord({ name: this.cfg.name, ulid: this.id.ulid, locators, ttl: this.cfg.ttl, rrType: this.id.recordType ?? CAPABILITY_RR_TYPE });
    const hba = this.id.hba;
    const record = { ...host.record, cgaUlid: this.id.cgaUlid, ...(hba ? { hbaSet: true, hbaDigest: { alg: HBA_DIGEST_ALG_SHA256, digest: digestForUlid(hba, this.id.ulid) } } : {}) };
    // The AAAA RRset (when asked): the locators themselves, not a ULID whose address may be gone.
    return { ...host, record, aaaa: [...new Set(locators)] };
  }

  /** At `inDoubtUntil`: read the record back (send() does), unless a newer unanswered update moved the time on. */
  private armVerify(): void {
    if (this.stopped || this.inDoubtUntil === 0) return;
    this.verifyTimer ??= deadlineTimer(() => {
      if (this.stopped || this.inDoubtUntil === 0) return;
      if (bootClock() < this.inDoubtUntil) { this.armVerify(); return; }
      this.inDoubtUntil = 0;
      this.verifyDue = true;
      if (!this.inFlight && this.backoffMs === 0) this.schedule(0);
    }, { ref: false });
    this.verifyTimer.set(this.inDoubtUntil);
  }

  private async send(): Promise<void> {
    const want = this.desired;
    if (this.stopped || this.inFlight || want === undefined) return;
    if (this.settled && !this.verifyDue && same(want, this.published)) return;
    this.inFlight = true;
    this.lastAttemptAt = bootClock();
    const started = this.lastAttemptAt;
    const where = hostPort(this.server.host, this.server.port);
    let step: 'build' | 'read' | 'update' = 'build';
    let rounds = 0;
    const rrType = this.id.recordType ?? CAPABILITY_RR_TYPE;
    try {
      // Inside the try: a record that cannot be built is this attempt's failure, not the daemon's.
      const host = this.record(want);
      const rdata = encodeCapabilityRecord(host.record);
      step = 'read';
      if (this.verifyDue) {
        this.held = await readRrset(this.server, this.cfg.name, host.rrType, EXCHANGE);
        this.verifyDue = false;
        if (this.settled && same(want, this.published) && sameRrset(this.held, [rdata])) {
          this.log.info('dns record verified', { name: this.cfg.name, server: where, locators: want });
          return; // (the finally still schedules a change that came meanwhile)
        }
        this.log.warn('dns record changed after an unanswered update', { name: this.cfg.name, server: where, records: this.held.length });
      }
      for (;;) {
        step = 'read';
        if (this.held === undefined) this.held = await readRrset(this.server, this.cfg.name, host.rrType, EXCHANGE);
        step = 'update';
        // The TSIG time is the wall clock's (the server compares it with its own); the window, a duration.
        const sentAt = bootClock();
        try {
          await sendUpdate(this.server, this.cfg.zone, host, this.key, { ...EXCHANGE, aaaa: this.cfg.aaaa, prerequisite: this.held, now: Math.floor(Date.now() / 1000) });
          break;
        } catch (err) {
          // Only a signed refusal proves the server processed this update without applying it.
          if (!(err instanceof UpdateRefused)) this.inDoubtUntil = Math.max(this.inDoubtUntil, sentAt + (this.opts.inDoubtMs ?? IN_DOUBT_MS));
          if (!isPrerequisiteFailure(err)) throw err;
          this.st.prerequisiteFailures++;
          this.held = undefined;
          rounds++;
          if (rounds >= PREREQ_ROUNDS) {
            throw new ProtocolError(err.code, `${err.message}; ${rounds} times in a row after reading the record again (does something else write it?)`, err.rcode);
          }
          this.log.info('dns prerequisite failed, reading the record again', { name: this.cfg.name, server: where, rcode: err.rcode, round: rounds });
        }
      }
      this.held = [rdata];
      this.published = want;
      this.settled = true;
      this.backoffMs = 0;
      this.st.updates++;
      this.st.lastSuccessAt = new Date().toISOString();
      this.st.lastError = null;
      this.log.info('dns updated', { name: this.cfg.name, zone: this.cfg.zone, server: where, locators: want, ms: Math.round(bootClock() - started), ...(rounds > 0 ? { prerequisiteFailures: rounds } : {}) });
      if (this.inDoubtUntil > 0) this.armVerify();
    } catch (err) {
      this.settled = false;
      this.backoffMs = this.backoffMs === 0 ? BACKOFF_FIRST_MS : Math.min(BACKOFF_MAX_MS, this.backoffMs * 2);
      this.st.failures++;
      const e = err as { code?: unknown; message?: string };
      const message = `${step === 'read' ? `reading the TYPE${rrType} RRset of ${this.cfg.name}: ` : step === 'build' ? `building the record of ${this.cfg.name}: ` : ''}${String(e.message ?? err)}`;
      this.st.lastError = { at: new Date().toISOString(), code: String(e.code ?? 'EDNS_UPDATE'), rcode: err instanceof ProtocolError ? err.rcode ?? null : null, message, retryInMs: this.backoffMs };
      this.log.warn('dns update failed', { name: this.cfg.name, step, code: this.st.lastError.code, rcode: this.st.lastError.rcode, error: message, retryInMs: this.backoffMs, ...(rounds > 0 ? { prerequisiteFailures: rounds } : {}) });
    } finally {
      this.inFlight = false;
      this.next();
    }
  }

  /** After an attempt: the back-off retry, or the change that came meanwhile. */
  private next(): void {
    if (this.stopped) return;
    if (this.backoffMs > 0) this.schedule(this.backoffMs);
    else if (this.desired !== undefined && (!same(this.desired, this.published) || this.verifyDue)) this.schedule(0);
  }
}

function same(a: readonly Ipv6[] | undefined, b: readonly Ipv6[] | undefined): boolean {
  return a !== undefined && b !== undefined && a.length === b.length && a.every((x, i) => x === b[i]);
}
