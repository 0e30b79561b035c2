/**
 * Local locators: the host's global IPv6 addresses (optionally only on some
 * interfaces), whether their link is up, and a watcher that notices changes
 * at once: `ip -6 monitor address link` prints a line on every change and we
 * re-read the state with `ip -j` (a debounce merges bursts). Owns the monitor
 * process; knows nothing of the engine (the daemon turns diffs into
 * `setLocalLocators`).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { canonicalIpv6, type Ipv6 } from '../wire/ipv6.ts';
import { EnvironmentError } from '../errors.ts';
import { tiedToUs } from '../tied-child.ts';
import { bootClock } from '../clock.ts';

/** One global address of this host. */
export interface LocalAddress {
  address: Ipv6;
  ifname: string;
  /** The link is up and has carrier. */
  up: boolean;
  /**
   * Preferred lifetime over (RFC 4862 §5.5.4): still ours, but no longer a
   * source for new packets; the daemon withdraws it from the locator set.
   */
  deprecated?: true;
}

interface IpAddrJson {
  ifname?: string;
  operstate?: string;
  flags?: string[];
  addr_info?: Array<{ family?: string; local?: string; scope?: string; tentative?: boolean; dadfailed?: boolean; deprecated?: boolean; preferred_life_time?: number }>;
}

/**
 * Parse `ip -j -6 addr show` output into addresses (global scope, ours). An address whose DAD
 * failed (`dadfailed`) is another node's: never ours. A tentative one (DAD running, or waiting for
 * its link to come up; an RFC 4429 optimistic one too, which the kernel shows `tentative` as well)
 * is not ours yet when it is new (RFC 4862 §5.4): a peer keeps every locator we list for the
 * context's life, and one that then fails DAD would name another host. It joins once its DAD is
 * done. But with keep_addr_on_down the kernel marks the addresses of a link taken down tentative
 * again (it runs DAD again when the link comes back), and they are the same addresses, down: so a
 * tentative address that is `known` (of the last reading, where it entered only after its DAD)
 * is kept, as down (`up: false`, not usable as a source before its DAD). Before, a new tentative
 * address on a link administratively down was kept too (down, so announced BROKEN), and failed
 * its DAD once the link came up.
 */
export function parseIpAddrJson(json: string, interfaces: readonly string[] = [], known: readonly LocalAddress[] = []): LocalAddress[] {
  const links = ipAddrLinks(json);
  return links === undefined ? [] : addressesOf(links, interfaces, known);
}

/** The links of `ip -j addr` output, or undefined when it is no JSON list. */
function ipAddrLinks(json: string): IpAddrJson[] | undefined {
  try {
    const v: unknown = JSON.parse(json);
    return Array.isArray(v) ? v as IpAddrJson[] : undefined;
  } catch {
    return undefined;
  }
}

function addressesOf(links: readonly IpAddrJson[], interfaces: readonly string[], known: readonly LocalAddress[]): LocalAddress[] {
  const out: LocalAddress[] = [];
  for (const l of links) {
    if (!l.ifname || (interfaces.length > 0 && !interfaces.includes(l.ifname))) continue;
    const flags = l.flags ?? [];
    // operstate UNKNOWN is normal for links without carrier reporting (lo, some tunnels).
    const up = flags.includes('UP') && !flags.includes('NO-CARRIER') && (l.operstate === 'UP' || l.operstate === 'UNKNOWN');
    for (const a of l.addr_info ?? []) {
      if (a.family !== 'inet6' || a.scope !== 'global' || !a.local || a.dadfailed) continue;
      const address = canonicalIpv6(a.local);
      if (a.tentative && !known.some((k) => k.address === address)) continue;
      const deprecated = a.deprecated === true || a.preferred_life_time === 0;
      out.push({ address, ifname: l.ifname, up: up && !a.tentative, ...(deprecated ? { deprecated: true as const } : {}) });
    }
  }
  return out;
}

/**
 * Read this namespace's global IPv6 addresses now. A reading that failed — `ip` missing, refused
 * (a fork under a task limit), killed at its 5 s timeout, or output that is no JSON list — is no
 * empty set: EnvironmentError ENOLOCATOR saying why. `known`: the last reading (parseIpAddrJson).
 */
export function readLocalAddresses(interfaces: readonly string[] = [], known: readonly LocalAddress[] = []): LocalAddress[] {
  const r = spawnSync('ip', ['-j', '-6', 'addr', 'show'], { encoding: 'utf8', timeout: 5000 });
  let why: string | undefined;
  let links: IpAddrJson[] | undefined;
  if (r.error !== undefined) why = r.error.message;
  else if (r.status !== 0) why = `${r.status === null ? `killed by ${r.signal ?? 'a signal'}` : `exit ${r.status}`}${String(r.stderr ?? '').trim() ? `: ${String(r.stderr).trim().slice(0, 200)}` : ''}`;
  else if ((links = ipAddrLinks(String(r.stdout))) === undefined) why = 'its output is no JSON list';
  if (why !== undefined || links === undefined) throw new EnvironmentError('ENOLOCATOR', `cannot read the host's IPv6 addresses (ip -j -6 addr show: ${why})`);
  return addressesOf(links, interfaces, known);
}

/**
 * Whether every event in this `ip monitor` output names one of `links` ("3: name    inet6 …",
 * "Deleted 3: name@peer: <…>", continuation lines indented). A line it cannot place counts as
 * another link's (a chunk may start in the middle of a line).
 */
export function onlyAbout(output: string, links: readonly string[]): boolean {
  if (links.length === 0) return false;
  for (const line of output.split('\n')) {
    if (line === '' || /^\s/.test(line)) continue;
    const m = /^(?:Deleted )?\d+: ([^\s:@]+)/.exec(line);
    if (m === null || !links.includes(m[1]!)) return false;
  }
  return true;
}

/**
 * The host's global addresses that are no locator because of their DAD (RFC 4862 §5.4), in words,
 * for an error that says there is none: `tentative` (its DAD not done, or waiting for its link to
 * come up) or `dadfailed`. Reads `ip -j -6 addr show` itself; [] when that fails.
 */
export function addressesNotOursYet(interfaces: readonly string[] = []): string[] {
  const r = spawnSync('ip', ['-j', '-6', 'addr', 'show'], { encoding: 'utf8', timeout: 5000 });
  const links = r.status === 0 ? ipAddrLinks(String(r.stdout)) : undefined;
  const out: string[] = [];
  for (const l of links ?? []) {
    if (!l.ifname || (interfaces.length > 0 && !interfaces.includes(l.ifname))) continue;
    for (const a of l.addr_info ?? []) {
      if (a.family !== 'inet6' || a.scope !== 'global' || !a.local || !(a.tentative || a.dadfailed)) continue;
      out.push(`${canonicalIpv6(a.local)} on ${l.ifname} ${a.dadfailed ? 'failed its DAD: another host has it' : 'is tentative: its DAD is not done, or waits for its link to come up'}`);
    }
  }
  return out;
}

/** What changed between two readings. */
export interface LocatorDiff {
  added: Ipv6[];
  removed: Ipv6[];
  wentDown: Ipv6[];
  cameUp: Ipv6[];
  /** Preferred lifetime ran out (or was set to 0): to be withdrawn. */
  deprecated: Ipv6[];
  /** Preferred again (its lifetime was renewed). */
  renewed: Ipv6[];
}

export function diffLocators(before: readonly LocalAddress[], after: readonly LocalAddress[]): LocatorDiff {
  const b = new Map(before.map((x) => [x.address, x]));
  const a = new Map(after.map((x) => [x.address, x]));
  const d: LocatorDiff = { added: [], removed: [], wentDown: [], cameUp: [], deprecated: [], renewed: [] };
  for (const [addr, x] of a) {
    const old = b.get(addr);
    if (!old) { d.added.push(addr); continue; }
    if (old.up && !x.up) d.wentDown.push(addr);
    else if (!old.up && x.up) d.cameUp.push(addr);
    if (!old.deprecated && x.deprecated) d.deprecated.push(addr);
    else if (old.deprecated && !x.deprecated) d.renewed.push(addr);
  }
  for (const addr of b.keys()) if (!a.has(addr)) d.removed.push(addr);
  return d;
}

export function isEmptyDiff(d: LocatorDiff): boolean {
  return d.added.length + d.removed.length + d.wentDown.length + d.cameUp.length + d.deprecated.length + d.renewed.length === 0;
}

/** How long after a failed reading of the addresses the watcher reads them again (ms). */
export const REREAD_AFTER_FAILURE_MS = 2000;

/**
 * The longest wait between two readings while events keep coming (ms). Each reading that sees a
 * change makes a new Locator List generation, a CGA Signature and an Update Request to every peer;
 * an address flapping (a DHCPv6 client fighting another, or an on-link node's Router
 * Advertisements toggling a SLAAC prefix's preferred lifetime, which RFC 4862 §5.5.3 lets any RA
 * do) made one per event, up to one per debounce (10 ms). Now an event within this long of the
 * last reading doubles the wait before the next one, up to this: at most two readings a second
 * under any storm; the first event after a quiet spell is read after the debounce as before.
 */
export const MAX_READING_GAP_MS = 500;

/**
 * Watches addresses and links through `ip -6 monitor address link`; calls `onChange` with the new
 * reading and the diff. No periodic reading: an idle host costs nothing. An event is read after
 * the debounce, events that keep coming at most every MAX_READING_GAP_MS. The addresses are read
 * again 0.5 s and 3 s after the monitor starts (a change between the first reading and its
 * subscription would otherwise wait for the next event), and when the monitor exits it is read
 * again and restarted 2 s later. A reading that fails (readLocalAddresses) changes nothing — the
 * last set stands — and is made again REREAD_AFTER_FAILURE_MS later until one succeeds, each
 * failure told to `onReadError` with how many in a row.
 */
export class LocatorWatcher {
  private proc: ChildProcess | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly later = new Set<NodeJS.Timeout>();
  private stopped = false;
  /** When the last reading was made (bootClock ms), and the wait before the next (MAX_READING_GAP_MS). */
  private lastReadAt = -Infinity;
  private gap: number;
  /** Failed readings in a row; a new reading is due while it is not 0. */
  private failures = 0;
  private rereadDue = false;
  current: LocalAddress[];

  /**
   * `ignoreLinks`: links whose events never change the locators (the daemon's TUN, whose address
   * comes and goes at each route-cache flush), so they cause no reading. `initial`: a reading just
   * made (else one is made now). `onReadError`: a reading failed (the message, the failures in a
   * row); the set stays as it was and is read again shortly.
   */
  constructor(
    private readonly interfaces: readonly string[],
    private readonly onChange: (now: LocalAddress[], diff: LocatorDiff) => void,
    private readonly debounceMs = 10,
    private readonly ignoreLinks: readonly string[] = [],
    initial?: LocalAddress[],
    private readonly onReadError: (message: string, failures: number) => void = () => undefined,
  ) {
    this.current = initial ?? readLocalAddresses(interfaces);
    this.gap = debounceMs;
  }

  /** Start `ip monitor` (killed by the kernel if this process dies first: tied-child.ts). */
  start(): void {
    this.stopped = false;
    const proc = spawn(...tiedToUs('ip', ['-6', 'monitor', 'address', 'link']), { stdio: ['ignore', 'pipe', 'ignore'] });
    this.proc = proc;
    proc.stdout?.on('data', (chunk: Buffer) => { if (!onlyAbout(String(chunk), this.ignoreLinks)) this.schedule(); });
    proc.on('error', () => undefined);
    proc.on('exit', () => {
      if (this.proc !== proc || this.stopped) return;
      this.proc = undefined;
      this.check();
      this.after(2000, () => this.start());
    });
    this.after(500, () => this.check());
    this.after(3000, () => this.check());
  }

  /** Re-read now (also used by tests). */
  check(): void {
    this.lastReadAt = bootClock();
    let next: LocalAddress[];
    try {
      next = readLocalAddresses(this.interfaces, this.current);
    } catch (err) {
      this.failures++;
      this.onReadError((err as Error).message, this.failures);
      if (!this.rereadDue) {
        this.rereadDue = true;
        this.after(REREAD_AFTER_FAILURE_MS, () => { this.rereadDue = false; this.check(); });
      }
      return;
    }
    this.failures = 0;
    const diff = diffLocators(this.current, next);
    // Kept even when no locator changed: an address moved to another link in one go is the same
    // locator, but `current` (status) says where it is.
    this.current = next;
    if (isEmptyDiff(diff)) return;
    this.onChange(next, diff);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    for (const t of this.later) clearTimeout(t);
    this.later.clear();
    this.rereadDue = false;
    if (this.proc && this.proc.exitCode === null) this.proc.kill('SIGTERM');
    this.proc = undefined;
  }

  /** Run `fn` in `ms` unless stopped first (the timer does not keep the process alive). */
  private after(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.later.delete(t);
      if (!this.stopped) fn();
    }, ms);
    t.unref();
    this.later.add(t);
  }

  /** A reading after the debounce, or later under a storm of events (MAX_READING_GAP_MS). */
  private schedule(): void {
    if (this.timer) return;
    const since = bootClock() - this.lastReadAt;
    this.gap = since >= MAX_READING_GAP_MS ? this.debounceMs : Math.min(2 * this.gap, MAX_READING_GAP_MS);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.check();
    }, Math.max(this.debounceMs, this.gap - since));
  }
}
