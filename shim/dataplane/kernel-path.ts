/**
 * The kernel path (docs/dataplane.md "Kernel path"): while a context's
 * locator pair is its ULID pair, the application's packets take the kernel's
 * own route (no TUN, no copy to user space), and nftables counts them per
 * context; the driver reads the counters on its REAP clock.
 *
 * One table of ours, `ip6 shim6_kernel`: two maps from (our ULID . peer ULID)
 * to a named counter, looked up by a rule in an `output` chain (what the host
 * sends, counted before any other rule of the host can drop it, as the TUN
 * would have seen it) and in a `prerouting` chain (what arrived, after the
 * device's own ingress filters). The daemon's UDP (its messages and
 * encapsulated payload) and neighbour discovery are not counted (neither
 * enters the TUN).
 *
 * Reading: first the two sums of every context's counters (`o_all`, `i_all`: the
 * same rules count a packet of any context into them), two netlink requests for
 * two named counters through the native addon (native/nftcounters.c), whatever the
 * number of contexts. Only when a sum moved (or a context was watched or unwatched
 * since) comes the netlink dump of the table's counter objects, and only the
 * contexts whose counters moved are told (`moved`): idle contexts cost a reading
 * nothing (measured, 8,000 idle contexts: the dump and its parse took ≈ 9 ms of
 * the loop, 20 times a second; the two sums ≈ 20 µs). Where the addon cannot (not
 * built), one long-lived `nft -j -i` and a full reading every time
 * (≈ 0.2 ms of the daemon's CPU per reading plus the `nft` process's, and an
 * answer only once that process gets a CPU). A new `nft` per reading was ≈ 3 ms,
 * 20 times a second. Adding or removing a context (its two counters and map
 * elements) is one netlink transaction through the addon, 40–120 µs; without the
 * addon, one `nft` process, waited for (milliseconds, and hundreds of them on a
 * busy host, with the daemon's event loop blocked).
 *
 * The tripwire (`tripwire`, docs/dataplane.md "Idle"): the same rules then jump to a chain
 * that logs a packet to an NFLOG group the daemon reads (native/nflog.c) when a dynamic set
 * with a timeout, `@awake`, holds no element, and adds its one element (the key is the
 * packet's IP version: one element for every context) for `quietMs`. So the first counted
 * packet after `quietMs` without one wakes the daemon, and while packets flow at most one a
 * `quietMs` is logged: the reader may stop reading while the sums do not move. Where the
 * addon, the log group or nftables refuse it, the table is made without it (`tripwireError`
 * says why) and the reader reads on its fixed clock.
 *
 * Nothing is left behind: `close()` deletes the table and stops the reader;
 * `open()` first deletes a table a crashed daemon left (by name).
 *
 * Owns: that table, the reader (socket or process). Must not know: Shim6, the
 * engine (the driver turns counters into engine inputs).
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { closeSync } from 'node:fs';
import readline from 'node:readline';
import { EnvironmentError } from '../errors.ts';
import { parseIpv6, type Ipv6 } from '../wire/ipv6.ts';
import { loadAddon, type NativeAddon } from '../../native/addon.ts';

/** Our nftables table (family ip6), one per network namespace. */
export const KERNEL_TABLE = 'shim6_kernel';

/** Packets of one context the kernel carried so far, and their octets (IPv6 packets whole; cumulative). */
export interface KernelCounters {
  outPackets: number;
  inPackets: number;
  outBytes?: number;
  inBytes?: number;
}

/** What the driver needs of the kernel path (NftKernelPath; tests use a double). */
export interface KernelPathHook {
  /** Start counting the context's packets; false when the kernel refused (the driver keeps the TUN path). */
  watch(localUlid: Ipv6, peerUlid: Ipv6): boolean;
  /** Stop counting (idempotent). */
  unwatch(localUlid: Ipv6, peerUlid: Ipv6): void;
  /** Read every counter from the kernel (at most one reading at a time). */
  refresh(): Promise<void>;
  /** The counters as of the last `refresh`, or undefined when the context is not watched (or not read yet). */
  read(localUlid: Ipv6, peerUlid: Ipv6): KernelCounters | undefined;
  /**
   * The contexts (our ULID, the peer's) whose counters the last `refresh` found moved, or first
   * read: only these need `read`. Absent: every watched context may have moved.
   */
  moved?(): ReadonlyArray<readonly [Ipv6, Ipv6]>;
  /** Packets counted so far of every context, out and in (the sums), as of the last `refresh`. */
  total?(): number | undefined;
  /**
   * The kernel's wake-up: after `quietMs` in which no counted packet went, the next one calls
   * `onTrip`'s callback (at most about one call a `quietMs` while packets flow). Absent: none,
   * the counters are read on a fixed clock.
   */
  readonly tripwire?: { readonly quietMs: number; onTrip(cb: () => void): void } | undefined;
}

export interface KernelPathOptions {
  /** The daemon's UDP port: its datagrams are not the application's packets. */
  port: number;
  /** Run in this namespace (`ip netns exec`, /run/netns/NAME); default: the current one. */
  netns?: string;
  /** How the counters are read: `netlink` (the addon; the default where it is built) or `nft` (the process). */
  reader?: 'netlink' | 'nft';
  /** The tripwire (with the netlink reader only): its NFLOG group, and the quiet time after which a packet is logged (ms). */
  tripwire?: { group: number; quietMs: number };
}

/** nf_tables family of our table (NFPROTO_IPV6). */
const NFPROTO_IPV6 = 10;

/** The counters that sum every context's, out and in: a reading that finds them unmoved reads nothing else. */
const SUMS = ['o_all', 'i_all'];

/** The tripwire's set can hold this many elements (one is live; expired ones wait for the set's garbage collection). */
const TRIP_SET_SIZE = 64;
/** Hard bound on the tripwire's log messages (per second; the set already makes it about one per quiet time). */
const TRIP_RATE = 20;
/** Tripwire records read per wake-up (only their number matters). */
const TRIP_BATCH = 16;
/** Octets per NFLOG record (nflog.h NFLOG_RECORD). */
const NFLOG_RECORD = 34;

/** How long a reading may take before it counts as failed (ms). */
const READ_TIMEOUT_MS = 2000;
/** Neighbour discovery (ICMPv6 133–137): link traffic, never the context's payload. */
const ND = '{ nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, nd-redirect }';

/** `script` as one transaction (`nft -f -`), or with `each`, each line on its own (`nft -i`: one failing does not stop the rest). */
function nft(opts: KernelPathOptions, script: string, each = false): { ok: boolean; err: string } {
  const mode = each ? ['-i'] : ['-f', '-'];
  const [cmd, args] = opts.netns ? ['ip', ['netns', 'exec', opts.netns, 'nft', ...mode]] : ['nft', mode];
  const r = spawnSync(cmd, args, { input: script, encoding: 'utf8', timeout: 10_000 });
  return { ok: !r.error && r.status === 0, err: String(r.stderr || r.error?.message || '').trim() };
}

/** Delete the table a crashed daemon left; whether there was one. */
export function removeStaleTable(opts: KernelPathOptions): boolean {
  return nft(opts, `delete table ip6 ${KERNEL_TABLE}\n`).ok;
}

/**
 * Remove a context's map elements, then its counters (a counter an element uses cannot go), in one
 * `nft` process, each line on its own: after a failed watch some of them may be missing.
 */
function forget(opts: KernelPathOptions, localUlid: Ipv6, peerUlid: Ipv6, id: number): void {
  const t = `ip6 ${KERNEL_TABLE}`;
  nft(opts, [`delete element ${t} out_ctx { ${localUlid} . ${peerUlid} }`, `delete element ${t} in_ctx { ${localUlid} . ${peerUlid} }`, `delete counter ${t} o${id}`, `delete counter ${t} i${id}`].join('\n') + '\n', true);
}

/** Both maps' key of a context: our ULID, then the peer's (out_ctx: saddr . daddr; in_ctx: daddr . saddr). */
function contextKey(localUlid: Ipv6, peerUlid: Ipv6): Uint8Array {
  const key = new Uint8Array(32);
  key.set(parseIpv6(localUlid), 0);
  key.set(parseIpv6(peerUlid), 16);
  return key;
}

/**
 * The table (one transaction, one process: the table a crashed daemon left, if any, goes, the new
 * one comes), with the tripwire (`trip`) or without.
 */
function kernelRuleset(opts: KernelPathOptions, trip: boolean): string {
  const p = opts.port;
  const skip = `udp sport ${p} accept\n    udp dport ${p} accept\n    icmpv6 type ${ND} accept`;
  const t = opts.tripwire;
  const then = trip ? ' jump trip' : '';
  return [
    `table ip6 ${KERNEL_TABLE}`,
    `delete table ip6 ${KERNEL_TABLE}`,
    `table ip6 ${KERNEL_TABLE} {`,
    `  counter ${SUMS[0]} {}`,
    `  counter ${SUMS[1]} {}`,
    '  map out_ctx { type ipv6_addr . ipv6_addr : counter; }',
    '  map in_ctx { type ipv6_addr . ipv6_addr : counter; }',
    ...(trip && t !== undefined ? [
      // One element for every packet (its IP version, always 6), added (not refreshed) by the
      // packet that found none: logged at most once a quiet time, and again after a quiet time.
      `  set awake { typeof ip6 version; size ${TRIP_SET_SIZE}; flags dynamic,timeout; timeout ${t.quietMs}ms; }`,
      '  chain trip {',
      `    ip6 version != @awake limit rate ${TRIP_RATE}/second log group ${t.group} snaplen 48 queue-threshold 1 add @awake { ip6 version }`,
      '  }',
    ] : []),
    '  chain out {',
    '    type filter hook output priority -1000; policy accept;',
    `    ${skip}`,
    // The sum counts only what the map found (a missing element ends the rule before it), and only that trips.
    `    counter name ip6 saddr . ip6 daddr map @out_ctx counter name "${SUMS[0]}"${then}`,
    '  }',
    '  chain in {',
    '    type filter hook prerouting priority -1000; policy accept;',
    `    ${skip}`,
    `    counter name ip6 daddr . ip6 saddr map @in_ctx counter name "${SUMS[1]}"${then}`,
    '  }',
    '}',
  ].join('\n') + '\n';
}

/** The per-context counters in nftables, and the reader. */
export class NftKernelPath implements KernelPathHook {
  private readonly ids = new Map<string, number>();
  /** The ULID pair of each watched id. */
  private readonly pairs = new Map<number, readonly [Ipv6, Ipv6]>();
  private nextId = 1;
  /** The contexts whose counters the last reading found moved (`moved`). */
  private moved_: Array<readonly [Ipv6, Ipv6]> = [];
  /** The sums as of the last full reading, and whether a context was watched or unwatched since (the next reading is full). */
  private sums: number[] | undefined;
  private dirty = true;
  /** Readings so far: full ones (the dump) and those the sums answered (tests, docs/security.md). */
  readonly readings = { full: 0, sumsOnly: 0 };
  /** Per counter name: packets, octets. */
  private counters = new Map<string, [number, number]>();
  /** The netlink reader (the addon and its socket), or undefined: the `nft` process. */
  private netlink: { addon: NativeAddon; fd: number } | undefined;
  private reader: ChildProcessWithoutNullStreams | undefined;
  private pending: { resolve: () => void; reject: (e: Error) => void; ids: number[] } | undefined;
  private reading: Promise<void> | undefined;
  private closed = false;
  /** The reader is gone (killed, crashed): every reading fails from now on. */
  private dead = false;

  private constructor(private readonly opts: KernelPathOptions) {
    if (opts.reader !== 'nft') this.netlink = openNetlink(opts);
    if (this.netlink !== undefined) return;
    const [cmd, args] = opts.netns ? ['ip', ['netns', 'exec', opts.netns, 'nft', '-j', '-i']] : ['nft', ['-j', '-i']];
    const reader = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.reader = reader;
    reader.on('error', (e) => { this.dead = true; this.fail(e); });
    reader.on('exit', () => { this.dead = true; this.fail(new Error('nft exited')); });
    reader.stdin.on('error', () => { this.dead = true; });
    reader.stderr.resume();
    readline.createInterface({ input: reader.stdout }).on('line', (l) => this.onLine(l));
  }

  /** How the counters are read (status, tests). */
  get readerKind(): 'netlink' | 'nft' {
    return this.netlink !== undefined ? 'netlink' : 'nft';
  }

  /**
   * Create the table (after removing one a crashed daemon left) and start the reader.
   * EnvironmentError EKERNELPATH when nftables refuses: the caller falls back to the TUN path.
   */
  static open(opts: KernelPathOptions): NftKernelPath {
    let trip: { addon: NativeAddon; fd: number } | undefined;
    let tripwireError: string | undefined;
    if (opts.tripwire !== undefined) {
      try {
        if (opts.reader === 'nft') throw new Error('the counters are read by an nft process');
        // The addon's log socket is made in this process's namespace, not in `netns`.
        if (opts.netns !== undefined) throw new Error('the log group is read in this process\'s namespace only');
        const addon = loadAddon();
        trip = { addon, fd: addon.nflogOpen(opts.tripwire.group, 1 << 16) };
      } catch (e) {
        tripwireError = `cannot read nftables log group ${opts.tripwire.group}: ${(e as Error).message}`;
      }
    }
    let r = nft(opts, kernelRuleset(opts, trip !== undefined));
    if (!r.ok && trip !== undefined) {
      tripwireError = `nftables refused the tripwire: ${r.err.split('\n')[0]}`;
      closeSync(trip.fd);
      trip = undefined;
      r = nft(opts, kernelRuleset(opts, false));
    }
    if (!r.ok) {
      if (trip !== undefined) closeSync(trip.fd);
      throw new EnvironmentError('EKERNELPATH', `nftables refused the kernel path's table: ${r.err.split('\n')[0]}`);
    }
    const k = new NftKernelPath(opts);
    k.tripwireError = tripwireError;
    if (trip !== undefined) k.startTripwire(trip.addon, trip.fd, opts.tripwire!.quietMs);
    return k;
  }

  /** Why there is no tripwire although one was asked for (said once by the daemon); undefined otherwise. */
  tripwireError: string | undefined;
  tripwire: { readonly quietMs: number; onTrip(cb: () => void): void } | undefined;
  /** The tripwire's log reader (the addon's handle), and its callback. */
  private trip: { handle: object | undefined; cb: (() => void) | undefined } | undefined;

  private startTripwire(addon: NativeAddon, fd: number, quietMs: number): void {
    const t: { handle: object | undefined; cb: (() => void) | undefined } = { handle: undefined, cb: undefined };
    try {
      // Any record (or a lost one: the socket overflowed) is a packet after a quiet time.
      t.handle = addon.nflogStartReader(fd, new ArrayBuffer(NFLOG_RECORD * TRIP_BATCH), TRIP_BATCH, () => t.cb?.());
    } catch (e) {
      closeSync(fd);
      this.tripwireError = `cannot poll the nftables log socket: ${(e as Error).message}`;
      return;
    }
    this.trip = t;
    this.tripwire = { quietMs, onTrip: (cb) => { t.cb = cb; } };
  }

  watch(localUlid: Ipv6, peerUlid: Ipv6): boolean {
    const key = `${localUlid} ${peerUlid}`;
    if (this.closed) return false;
    if (this.ids.has(key)) return true;
    const id = this.nextId++;
    if (this.netlink !== undefined) {
      // One transaction: the counters and both elements, or none of them.
      const rc = this.netlink.addon.nftCountersBind(this.netlink.fd, NFPROTO_IPV6, KERNEL_TABLE, true, contextKey(localUlid, peerUlid), 'out_ctx', `o${id}`, 'in_ctx', `i${id}`);
      if (rc !== 0) return false;
      this.ids.set(key, id);
      this.pairs.set(id, [localUlid, peerUlid]);
      this.dirty = true;
      return true;
    }
    const t = `ip6 ${KERNEL_TABLE}`;
    const r = nft(this.opts, [
      `add counter ${t} o${id}`, `add counter ${t} i${id}`,
      `add element ${t} out_ctx { ${localUlid} . ${peerUlid} : "o${id}" }`,
      `add element ${t} in_ctx { ${localUlid} . ${peerUlid} : "i${id}" }`,
    ].join('\n') + '\n');
    if (!r.ok) {
      forget(this.opts, localUlid, peerUlid, id);
      return false;
    }
    this.ids.set(key, id);
    this.pairs.set(id, [localUlid, peerUlid]);
    this.dirty = true;
    return true;
  }

  unwatch(localUlid: Ipv6, peerUlid: Ipv6): void {
    const key = `${localUlid} ${peerUlid}`;
    const id = this.ids.get(key);
    if (id === undefined) return;
    this.ids.delete(key);
    this.pairs.delete(id);
    this.dirty = true;
    if (this.closed) return;
    if (this.netlink !== undefined) this.netlink.addon.nftCountersBind(this.netlink.fd, NFPROTO_IPV6, KERNEL_TABLE, false, contextKey(localUlid, peerUlid), 'out_ctx', `o${id}`, 'in_ctx', `i${id}`);
    else forget(this.opts, localUlid, peerUlid, id);
  }

  refresh(): Promise<void> {
    if (this.closed || this.dead) return Promise.reject(new Error(this.closed ? 'kernel path closed' : 'the nft reader is gone'));
    if (this.netlink !== undefined) {
      try {
        this.readNetlink(this.netlink);
        return Promise.resolve();
      } catch (e) {
        return Promise.reject(e as Error);
      }
    }
    const reader = this.reader!;
    let timer: NodeJS.Timeout | undefined;
    this.reading ??= new Promise<void>((resolve, reject) => {
      this.pending = { resolve, reject, ids: [...this.ids.values()] };
      // nft answers an error on stderr only: a reading that gets no answer fails, the next one asks again.
      timer = setTimeout(() => this.fail(new Error('nft did not answer')), READ_TIMEOUT_MS);
      reader.stdin.write(`list counters table ip6 ${KERNEL_TABLE}\n`);
    }).finally(() => { clearTimeout(timer); this.reading = undefined; });
    return this.reading;
  }

  read(localUlid: Ipv6, peerUlid: Ipv6): KernelCounters | undefined {
    const id = this.ids.get(`${localUlid} ${peerUlid}`);
    if (id === undefined) return undefined;
    const o = this.counters.get(`o${id}`), i = this.counters.get(`i${id}`);
    return o === undefined || i === undefined ? undefined : { outPackets: o[0], inPackets: i[0], outBytes: o[1], inBytes: i[1] };
  }

  moved(): ReadonlyArray<readonly [Ipv6, Ipv6]> {
    return this.moved_;
  }

  total(): number | undefined {
    const s = this.sums ?? SUMS.map((n) => this.counters.get(n)?.[0]);
    return s[0] === undefined || s[1] === undefined ? undefined : s[0] + s[1];
  }

  /** Delete the table, stop the reader. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.fail(new Error('kernel path closed'));
    if (this.netlink !== undefined) this.netlink.addon.nftCountersClose(this.netlink.fd);
    this.netlink = undefined;
    if (this.trip?.handle !== undefined) loadAddon().nflogClose(this.trip.handle);
    this.trip = undefined;
    this.reader?.stdin.end();
    this.reader?.kill();
    removeStaleTable(this.opts);
    this.ids.clear();
  }

  /**
   * One reading over netlink (synchronous: the kernel answers while we receive). A failed one
   * opens a new socket (a dump left half-read keeps the old one busy) and throws.
   */
  private readNetlink(nl: { addon: NativeAddon; fd: number }): void {
    // The sums first: unmoved, and no context watched or unwatched since the last full reading,
    // no context's counters moved either (a packet counts into its context's counter, then the sum).
    const s = counterMap(this.netlinkRead(nl, SUMS));
    const o = s.get(SUMS[0]!), i = s.get(SUMS[1]!);
    if (o === undefined || i === undefined) throw new Error(`the kernel path's counters ${SUMS.join(', ')} are gone (table ${KERNEL_TABLE} changed by someone else?)`);
    const sums = [o[0], i[0]];
    if (!this.dirty && this.sums !== undefined && sums[0] === this.sums[0] && sums[1] === this.sums[1]) {
      this.readings.sumsOnly++;
      this.moved_ = [];
      return;
    }
    // An addon older than the named reading ignores the names and dumps every counter: that is the full reading.
    const next = s.size > SUMS.length ? s : counterMap(this.netlinkRead(nl));
    this.dirty = false;
    this.accept(next, [...this.ids.values()]);
    // The sums as they were before the dump: what was counted after them brings another full reading.
    this.sums = sums;
    this.readings.full++;
  }

  /** One request of the addon (every counter, or those named); a failed one opens a new socket and throws. */
  private netlinkRead(nl: { addon: NativeAddon; fd: number }, names?: string[]): Array<string | number> {
    const r = nl.addon.nftCountersRead(nl.fd, NFPROTO_IPV6, KERNEL_TABLE, names);
    if (typeof r !== 'number') return r;
    nl.addon.nftCountersClose(nl.fd);
    const fd = nl.addon.nftCountersOpen(netnsFile(this.opts));
    // None: -1 from now on (the addon refuses it), not the closed one's number, which the next
    // descriptor the process opens takes (a later watch, unwatch or close would use that one).
    nl.fd = fd < 0 ? -1 : fd;
    if (fd < 0) this.dead = true;
    // ENOENT: the sums' counters (or the table) are gone.
    throw new Error(r === -2 ? `the kernel path's counters are gone (table ${KERNEL_TABLE} changed by someone else?)` : `reading the kernel path's counters failed (errno ${-r})`);
  }

  /**
   * A reading's counters become the current ones, unless a context watched before it began has
   * none (our table or its counters were deleted by someone else): that reading fails.
   */
  private accept(next: Map<string, [number, number]>, ids: number[]): void {
    const moved: Array<readonly [Ipv6, Ipv6]> = [];
    for (const id of ids) {
      const o = next.get(`o${id}`), i = next.get(`i${id}`);
      if (o === undefined || i === undefined) throw new Error(`the kernel path's counters of context ${id} are gone (table ${KERNEL_TABLE} changed by someone else?)`);
      const o0 = this.counters.get(`o${id}`), i0 = this.counters.get(`i${id}`);
      // First read (o0 undefined): moved, so the caller takes its first counters.
      if (o0 === undefined || i0 === undefined || o0[0] !== o[0] || i0[0] !== i[0] || o0[1] !== o[1] || i0[1] !== i[1]) {
        const pair = this.pairs.get(id);
        if (pair !== undefined) moved.push(pair);
      }
    }
    this.counters = next;
    this.moved_ = moved;
  }

  private onLine(line: string): void {
    const p = this.pending;
    if (p === undefined || !line.startsWith('{')) return;
    this.pending = undefined;
    try {
      const doc = JSON.parse(line) as { nftables?: Array<{ counter?: { name: string; packets: number; bytes: number } }> };
      const next = new Map<string, [number, number]>();
      for (const e of doc.nftables ?? []) if (e.counter) next.set(e.counter.name, [e.counter.packets, e.counter.bytes]);
      // Only the contexts watched when the request was written: one watched meanwhile may not be in the answer.
      const now = new Set(this.ids.values());
      this.accept(next, p.ids.filter((id) => now.has(id)));
      p.resolve();
    } catch (e) {
      p.reject(e as Error);
    }
  }

  private fail(e: Error): void {
    const p = this.pending;
    this.pending = undefined;
    p?.reject(e);
  }
}

/** The addon's reading ([name, packets, bytes, …]) by counter name. */
function counterMap(r: Array<string | number>): Map<string, [number, number]> {
  const m = new Map<string, [number, number]>();
  for (let i = 0; i + 2 < r.length; i += 3) m.set(r[i] as string, [r[i + 1] as number, r[i + 2] as number]);
  return m;
}

/** The addon's netlink reader in the kernel path's namespace, or undefined (not built, refused). */
function openNetlink(opts: KernelPathOptions): { addon: NativeAddon; fd: number } | undefined {
  let addon: NativeAddon;
  try {
    addon = loadAddon();
  } catch {
    return undefined;
  }
  const fd = addon.nftCountersOpen(netnsFile(opts));
  return fd < 0 ? undefined : { addon, fd };
}

/** The namespace file the reader's socket is made in (null: this process's namespace). */
function netnsFile(opts: KernelPathOptions): string | null {
  return opts.netns ? `/run/netns/${opts.netns}` : null;
}
