/**
 * DNS follows the host (config `dnsUpdate`, issue 18): whenever the local
 * locator set changes, publish the host's capability record (and its AAAA
 * RRset when asked) with ONE TSIG-signed RFC 2136 update, through the zone
 * tools' update code (zone-tools/update.ts, as `shim6 zone update` sends it).
 *
 * Timing: a change is sent after a short batching delay (changes that come
 * together go together), and never sooner than `minInterval` after the
 * previous attempt. One update is in flight at a time; a change during it is
 * sent after it. A failure (server unreachable, or an RCODE other than
 * NOERROR) is retried with back-off (1 s doubling to 60 s) with the newest
 * set, until one succeeds. Failures are logged with the server's RCODE and
 * shown in `shim6 status` (`dnsUpdate`).
 *
 * Owns: the key (read once at start), the timers, the status. Knows nothing
 * of the engine: the daemon hands it the usable locators.
 */
import { readFileSync } from 'node:fs';
import { UsageError, EnvironmentError, ProtocolError } from '../errors.ts';
import { hostPort, type Logger } from '../log.ts';
import type { Ipv6 } from '../wire/ipv6.ts';
import { HBA_DIGEST_ALG_SHA256, CAPABILITY_RR_TYPE } from '../constants.ts';
import { digestForUlid, type HbaParamsFile } from '../wire/hba-params.ts';
import { parseServer, type ServerAddress } from '../../zone-tools/dns-transport.ts';
import { parseTsigKeyFile } from '../../zone-tools/tsig-key.ts';
import type { TsigKey } from '../../zone-tools/tsig.ts';
import { buildHostRecord } from '../../zone-tools/record-input.ts';
import { sendUpdate } from '../../zone-tools/update.ts';
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
  /** The last failure, while no success followed it. */
  lastError: { at: string; code: string; rcode: string | null; message: string; retryInMs: number } | null;
}

/** Read the TSIG key now, so a bad file stops the daemon at start, naming it. */
export function loadDnsKey(file: string, keyName: string | undefined): TsigKey {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
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
  private timer: NodeJS.Timeout | undefined;
  private inFlight = false;
  private lastAttemptAt = 0;
  private backoffMs = 0;
  private stopped = false;
  private st: Omit<DnsUpdateStatus, 'server' | 'zone' | 'name' | 'state' | 'published'> = { lastSuccessAt: null, updates: 0, failures: 0, lastError: null };

  constructor(private readonly cfg: DnsUpdateConfig, private readonly id: DnsIdentity, private readonly log: Logger) {
    this.server = parseServer(cfg.server, 'dnsUpdate.server');
    this.key = loadDnsKey(cfg.key, cfg.keyName);
    // The name must be in the zone and the record buildable: check now, not at the first change.
    this.record([id.ulid]);
  }

  /** The locator set changed (or the daemon started): publish `locators` soon. */
  update(locators: readonly Ipv6[]): void {
    if (this.stopped || locators.length === 0) return;
    const next = [...locators];
    if (same(next, this.desired)) return;
    this.desired = next;
    if (!this.inFlight && this.backoffMs === 0) this.schedule(BATCH_MS);
  }

  status(): DnsUpdateStatus {
    const pending = this.desired !== undefined && !same(this.desired, this.published);
    const state = this.inFlight ? 'sending' : this.backoffMs > 0 ? 'failing' : pending ? 'pending' : 'idle';
    return { server: hostPort(this.server.host, this.server.port), zone: this.cfg.zone, name: this.cfg.name, state, published: this.published ?? null, ...this.st };
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Arm the one timer: `delay` from now, but not before minInterval after the last attempt. */
  private schedule(delay: number): void {
    if (this.stopped) return;
    const at = Math.max(Date.now() + delay, this.lastAttemptAt + this.cfg.minInterval * 1000);
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => { this.timer = undefined; void this.send(); }, Math.max(0, at - Date.now()));
    this.timer.unref();
  }

  private record(locators: readonly Ipv6[]): HostRecord {
    const host = buildHostRecord({ name: this.cfg.name, ulid: this.id.ulid, locators, ttl: this.cfg.ttl, rrType: this.id.recordType ?? CAPABILITY_RR_TYPE });
    const hba = this.id.hba;
    const record = { ...host.record, cgaUlid: this.id.cgaUlid, ...(hba ? { hbaSet: true, hbaDigest: { alg: HBA_DIGEST_ALG_SHA256, digest: digestForUlid(hba, this.id.ulid) } } : {}) };
    // The AAAA RRset (when asked): the locators themselves, not a ULID whose address may be gone.
    return { ...host, record, aaaa: [...new Set(locators)] };
  }

  private async send(): Promise<void> {
    const want = this.desired;
    if (this.stopped || this.inFlight || want === undefined || same(want, this.published)) return;
    this.inFlight = true;
    this.lastAttemptAt = Date.now();
    const started = Date.now();
    try {
      await sendUpdate(this.server, this.cfg.zone, this.record(want), this.key, { ...EXCHANGE, aaaa: this.cfg.aaaa });
      this.published = want;
      this.backoffMs = 0;
      this.st.updates++;
      this.st.lastSuccessAt = new Date().toISOString();
      this.st.lastError = null;
      this.log.info('dns updated', { name: this.cfg.name, zone: this.cfg.zone, server: hostPort(this.server.host, this.server.port), locators: want, ms: Date.now() - started });
    } catch (err) {
      this.backoffMs = this.backoffMs === 0 ? BACKOFF_FIRST_MS : Math.min(BACKOFF_MAX_MS, this.backoffMs * 2);
      this.st.failures++;
      const e = err as { code?: unknown; message?: string };
      this.st.lastError = { at: new Date().toISOString(), code: String(e.code ?? 'EDNS_UPDATE'), rcode: err instanceof ProtocolError ? err.rcode ?? null : null, message: String(e.message ?? err), retryInMs: this.backoffMs };
      this.log.warn('dns update failed', { name: this.cfg.name, code: this.st.lastError.code, rcode: this.st.lastError.rcode, error: this.st.lastError.message, retryInMs: this.backoffMs });
    } finally {
      this.inFlight = false;
    }
    if (this.stopped) return;
    if (this.backoffMs > 0) this.schedule(this.backoffMs);
    else if (this.desired !== undefined && !same(this.desired, this.published)) this.schedule(0);
  }
}

function same(a: readonly Ipv6[] | undefined, b: readonly Ipv6[] | undefined): boolean {
  return a !== undefined && b !== undefined && a.length === b.length && a.every((x, i) => x === b[i]);
}
