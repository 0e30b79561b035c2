/**
 * Routes and policy for the data plane, with iproute2 (`ip`), leaving the host
 * as found on close:
 *
 *  - The TUN link: up, with MTU = path MTU − 40 (IPv6) − 8 (UDP) − 8 (payload
 *    header), never below the IPv6 minimum of 1280 (RFC 8200 §5).
 *  - Per context, the peer's ULID /128 via the TUN, in a table of our own
 *    (default 5533), with `src` our ULID and `advmss` so TCP never sends a
 *    segment the encapsulated path cannot carry, even when the TUN MTU had to
 *    be held at 1280.
 *  - Per local locator kept while its link is down (keepLocals), a `local`
 *    route in a second table (`table + 1`, default 5534).
 *  - Three policy rules. The daemon's own UDP traffic (`ipproto udp sport
 *    <port>`) jumps over the next one (`goto`), so it never enters the TUN
 *    even though the peer's ULID is also one of its locators, and with no
 *    route in `main` (a locator's prefix just removed) it fails rather than
 *    loops into the TUN. Only this host's own packets (`iif lo`) then consult
 *    the ULID routes: a host that forwards (a router, a container or VM host)
 *    forwards others' packets to a peer's ULID as it would without shim6.
 *    Last, every packet consults the `local` routes (ours, whichever link
 *    brought it).
 *
 * Owns: those rules and routes (it removes exactly what it added). Must not
 * know: Shim6, the engine. It implements the driver's RouteHook.
 */
import { spawn, spawnSync } from 'node:child_process';
import { EnvironmentError, UsageError } from '../errors.ts';
import { MIN_IPV6_MTU } from '../constants.ts';
import type { Ipv6 } from '../wire/ipv6.ts';
import type { DataPath, RouteHook } from './context-paths.ts';
import type { LocatorPair } from '../engine/index.ts';
import { Rtnetlink } from './rtnetlink.ts';
import type { TunLinkSettings } from './tun-linux.ts';

/** IPv6 (40) + UDP (8) + Shim6 payload header (8, RFC 5533 §5.2). */
export const ENCAPSULATION_OVERHEAD = 56;
/** Added to and deleted from the TUN to flush the kernel's route cache (scope link: invisible to the locator watcher). */
const FLUSH_ADDR = 'fe80::5533:ffff/128';
/** IPv6 (40) + TCP (20) without options. */
const TCP_IPV6_HEADERS = 60;

/** TUN MTU for a path MTU (held at the IPv6 minimum; see advmss for TCP). */
export function tunMtuFor(pathMtu: number): number {
  return Math.max(MIN_IPV6_MTU, pathMtu - ENCAPSULATION_OVERHEAD);
}

/** The TCP MSS that fits a path MTU after encapsulation. */
export function advmssFor(pathMtu: number): number {
  return pathMtu - ENCAPSULATION_OVERHEAD - TCP_IPV6_HEADERS;
}

export interface RoutesOptions {
  /** TUN interface name. */
  tun: string;
  /** UDP source port of the daemon's sockets (exempted from our table). */
  port: number;
  /** Smallest MTU of the links carrying the encapsulation (default 1500). */
  pathMtu?: number;
  /** Routing table for peer ULIDs (default 5533); the kept local locators' routes are in `table + 1`. */
  table?: number;
  /** Rule preference of the UDP exemption; the ULID table's rule is `pref + 1`, the local routes' `pref + 2` (default 5532). */
  rulePref?: number;
  /**
   * Minimum TCP RTO on peer routes (ms; `rto_min`). Default: the kernel's
   * (200 ms). Measurements set it to make TCP's back-off schedule the same
   * on every run.
   */
  rtoMinMs?: number;
  /** Run `ip` in this namespace (`ip -n`); default: the current one. */
  netns?: string;
  /**
   * Route changes (contextUp, contextDown, flushRouteCache, switchPath) over rtnetlink in the
   * event loop (rtnetlink.ts; default true where the addon is built); false: an `ip` process per
   * change, waited for asynchronously.
   */
  netlink?: boolean;
}

/** The data plane's routes and rules. */
export class Routes implements RouteHook {
  readonly table: number;
  /** The table of the kept local locators' `local` routes (keepLocals): `table + 1`. */
  readonly localTable: number;
  readonly tunMtu: number;
  readonly advmss: number;
  private readonly pref: number;
  private readonly peers = new Set<Ipv6>();
  private readonly locals = new Set<Ipv6>();
  private rulesUp = false;
  /** The kernel path's route changes, in order (switchPath). */
  private chain: Promise<void> = Promise.resolve();
  private closed = false;
  /** The rtnetlink socket of switchPath (undefined: `ip` processes), opened at the first change. */
  private nl: Rtnetlink | undefined | null = null;
  /** A persistent TUN's settings before setup, put back by close(). */
  private restoreLink: TunLinkSettings | undefined;
  /** The TUN's link index (rtnetlink), once looked up. */
  private tunIndex: number | undefined;

  constructor(private readonly opts: RoutesOptions) {
    const pathMtu = opts.pathMtu ?? 1500;
    this.table = opts.table ?? 5533;
    this.localTable = this.table + 1;
    this.pref = opts.rulePref ?? 5532;
    this.tunMtu = tunMtuFor(pathMtu);
    this.advmss = advmssFor(pathMtu);
    if (this.advmss < 500) throw new UsageError('EMTU', `path MTU ${pathMtu} is too small to carry TCP after encapsulation`, 'pathMtu');
  }

  /**
   * A daemon that crashed (SIGKILL) left its policy rules behind (its TUN
   * and the routes through it went with the process). Remove rules at our
   * preferences that point where ours point (also those of a version whose
   * rules were `lookup main` and `not … lookup <table>`), so the new ones can be added, its
   * kept local locators' routes (on `lo`, they outlive it) and its peer ULIDs' routes (those through
   * a link, the kernel encapsulation's, outlive it too, as do those through a persistent TUN): one
   * daemon per namespace owns both tables, and a route the new daemon does not know of would carry
   * traffic no `shim6 status` shows (unencapsulated, out of a link).
   */
  removeStaleRules(): void {
    const r = spawnSync('ip', this.argv(['-6', 'rule', 'show']), { encoding: 'utf8', timeout: 5000 });
    const ours = new Map<number, RegExp>([
      [this.pref, new RegExp(`^from all ipproto udp sport \\d+ (?:lookup main|goto ${this.pref + 2})$`)],
      [this.pref + 1, new RegExp(`^(?:not from all ipproto udp sport \\d+|from all iif lo|from all) lookup ${this.table}$`)],
      [this.pref + 2, new RegExp(`^from all lookup ${this.localTable}$`)],
    ]);
    for (const line of String(r.stdout ?? '').split('\n')) {
      const m = /^(\d+):\s+(.*?)\s*$/.exec(line.trim());
      if (m && ours.get(Number(m[1]))?.test(m[2]!)) this.ip(['-6', 'rule', 'del', 'pref', m[1]!], false);
    }
    this.ip(['-6', 'route', 'flush', 'table', String(this.table)], false);
    this.ip(['-6', 'route', 'flush', 'table', String(this.localTable)], false);
  }

  /**
   * Bring the TUN up with its MTU and add the three policy rules. `restore`: a persistent TUN's
   * MTU and up flag as found before the start (tun-linux.ts), put back by close(): the device
   * outlives us, and the operator's settings of it with it.
   */
  setup(restore?: TunLinkSettings): void {
    this.restoreLink = restore;
    const { tun, port } = this.opts;
    // No SLAAC or DAD on the TUN: it carries only ULID traffic we route to it.
    // One `ip` for the four (a daemon starts in tests by the hundred). The `goto`: the daemon's own
    // UDP never enters the TUN, even when `main` has no route for it (a locator's prefix just
    // removed): then it is unreachable, not looped into our own TUN. `iif lo`: only this host's own
    // packets go to a peer's ULID through shim6, not those it forwards.
    this.rulesUp = true; // deleting a rule that is not there (close) is harmless
    this.ipBatchSync([
      ['link', 'set', 'dev', tun, 'mtu', String(this.tunMtu), 'up'],
      ['rule', 'add', 'pref', String(this.pref), 'ipproto', 'udp', 'sport', String(port), 'goto', String(this.pref + 2)],
      ['rule', 'add', 'pref', String(this.pref + 1), 'iif', 'lo', 'lookup', String(this.table)],
      ['rule', 'add', 'pref', String(this.pref + 2), 'lookup', String(this.localTable)],
    ]);
  }

  /**
   * Route the peer's ULID through the TUN, from our ULID — or with no `src` when the kernel
   * refuses it because our ULID's address is gone (removed while its contexts live on: the
   * connections bound to it keep their source; new ones pick one of the addresses left).
   * In order with every other route change (as switchPath), without blocking the event loop:
   * it comes at a context's start and establishment, and an `ip` process waited for there held
   * the daemon's loop for hundreds of ms on a loaded host, which delayed the handshake's own
   * messages (an R2 that came after the I2's retransmission) and the keepalives (REAP then
   * explored for nothing).
   */
  contextUp(localUlid: Ipv6, peerUlid: Ipv6): Promise<void> {
    this.peers.add(peerUlid);
    return this.inOrder(async () => {
      const nl = this.netlink();
      if (nl !== undefined) { this.switchNetlink(nl, localUlid, peerUlid, 'tun', undefined, false); return; }
      if (!(await this.ipAsync(this.peerRoute(localUlid, peerUlid)))) await this.ipAsync(this.peerRoute(undefined, peerUlid));
    });
  }

  /**
   * Run `step` after every route change asked before it; once closed, only a removal (`evenClosed`:
   * close() no longer knows its route). Never rejects (as ipAsync): a route that could not be made
   * leaves the traffic on plain IPv6, and a rejection here would stop the chain and the daemon.
   */
  private inOrder(step: () => void | Promise<void>, evenClosed = false): Promise<void> {
    this.chain = this.chain.then(() => (this.closed && !evenClosed ? undefined : step())).catch(() => undefined);
    return this.chain;
  }

  /** `ip route replace` of the peer's ULID into the TUN (`src` our ULID, when given). */
  private peerRoute(localUlid: Ipv6 | undefined, peerUlid: Ipv6): string[] {
    return ['-6', 'route', 'replace', `${peerUlid}/128`, 'dev', this.opts.tun, 'table', String(this.table),
      ...(localUlid === undefined ? [] : ['src', localUlid]), 'mtu', String(this.tunMtu), 'advmss', String(this.advmss),
      ...(this.opts.rtoMinMs === undefined ? [] : ['rto_min', `${this.opts.rtoMinMs}ms`])];
  }

  /**
   * The kernel path (docs/dataplane.md): route the peer's ULID into the TUN (`tun`), where the
   * locator `pair` goes for the kernel encapsulation (`encap`: next hop and link by `ip route
   * get`), each with the encapsulated path's MTU and, when the ULID had no route of ours, the
   * route-cache flush; or remove that route (`kernel`). Without blocking the event loop (`ip`
   * takes tens of ms on a busy host, and the engine's probes must go out meanwhile). Changes
   * are made in the order asked.
   */
  switchPath(localUlid: Ipv6, peerUlid: Ipv6, path: DataPath, pair?: LocatorPair): Promise<void> {
    const nl = this.netlink();
    if (nl !== undefined) {
      // The route-cache flush only when the ULID had no route in our table (as below).
      const flush = path !== 'kernel' && !this.peers.has(peerUlid);
      if (path === 'kernel') this.peers.delete(peerUlid);
      else this.peers.add(peerUlid);
      this.chain = this.chain.then(() => this.switchNetlink(nl, localUlid, peerUlid, path, pair, flush));
      return this.chain;
    }
    const table = String(this.table);
    const metrics = ['mtu', String(this.tunMtu), 'advmss', String(this.advmss), ...(this.opts.rtoMinMs === undefined ? [] : ['rto_min', `${this.opts.rtoMinMs}ms`])];
    // The route-cache flush only when the ULID had no route in our table: sockets hold a route from
    // `main`, which a new route here does not invalidate; replacing one of ours does (its tree's serial).
    const flush = this.peers.has(peerUlid) ? [] : [['-6', 'addr', 'add', FLUSH_ADDR, 'dev', this.opts.tun, 'nodad'], ['-6', 'addr', 'del', FLUSH_ADDR, 'dev', this.opts.tun]];
    const steps: Array<string[] | (() => Promise<string[] | undefined>)> = path === 'tun'
      ? [this.peerRoute(localUlid, peerUlid), ...flush]
      : path === 'encap' && pair !== undefined
        // Kernel encapsulation (bpf-encap.ts): the ULID goes where the peer's locator goes, with the
        // encapsulated path's MTU; the tc program on that link rewrites it (no neighbour of the ULID is needed).
        ? [async () => {
          const hop = await this.nextHop(pair.local, pair.peer);
          return hop === undefined ? undefined : ['-6', 'route', 'replace', `${peerUlid}/128`, 'via', hop.via, 'dev', hop.dev, 'table', table, 'src', localUlid, ...metrics];
        }, ...flush]
        : [['-6', 'route', 'del', `${peerUlid}/128`, 'table', table]];
    if (path === 'kernel') this.peers.delete(peerUlid);
    else this.peers.add(peerUlid);
    this.chain = this.chain.then(async () => {
      // Fixed steps in one `ip -batch` process (a process is tens of ms on a busy host, and the
      // route into the TUN comes while REAP explores); if any fails, one by one as below.
      if (steps.length > 1 && steps.every((a) => Array.isArray(a) && a[0] === '-6')) {
        if (this.closed || await this.ipBatch((steps as string[][]).map((a) => a.slice(1)))) return;
      }
      for (const a of steps) {
        if (this.closed) return;
        const args = typeof a === 'function' ? await a() : a;
        if (args === undefined || this.closed) continue;
        // As contextUp: no `src` when our ULID's address is gone (a kernel-path context re-homed after its removal).
        if (!(await this.ipAsync(args)) && args.includes('src')) await this.ipAsync(withoutSrc(args));
      }
    });
    return this.chain;
  }

  /** The rtnetlink socket of switchPath, opened at the first change; undefined: `ip` processes (option, or no addon). */
  private netlink(): Rtnetlink | undefined {
    if (this.nl === null) this.nl = this.opts.netlink === false ? undefined : Rtnetlink.open(this.opts.netns);
    return this.nl;
  }

  /**
   * switchPath over rtnetlink: each change is a request and its acknowledgment in this loop turn
   * (microseconds; an `ip` process was tens of ms on a busy host, and the TCP prompt after a
   * re-homing waits for the route). The same changes as the `ip` commands, and the same retry
   * without `src` when our ULID's address is gone.
   */
  private switchNetlink(nl: Rtnetlink, localUlid: Ipv6, peerUlid: Ipv6, path: DataPath, pair: LocatorPair | undefined, flush: boolean): void {
    if (this.closed) return;
    if (path === 'kernel') {
      nl.routeDelete(peerUlid, this.table);
      return;
    }
    let oif: number, gateway: Ipv6 | undefined;
    if (path === 'encap' && pair !== undefined) {
      // The ULID goes where the peer's locator goes (its next hop and link), with the encapsulated path's MTU.
      const hop = nl.routeGet(pair.peer, pair.local);
      if (typeof hop === 'number') return;
      oif = hop.oif;
      gateway = hop.gateway ?? pair.peer;
    } else {
      this.tunIndex ??= nl.linkIndex(this.opts.tun);
      if (this.tunIndex < 0) { this.tunIndex = undefined; return; }
      oif = this.tunIndex;
    }
    const spec = { dst: peerUlid, table: this.table, oif, ...(gateway !== undefined ? { gateway } : {}), mtu: this.tunMtu, advmss: this.advmss, ...(this.opts.rtoMinMs === undefined ? {} : { rtoMinMs: this.opts.rtoMinMs }) };
    if (nl.routeReplace({ ...spec, src: localUlid }) !== 0) nl.routeReplace(spec);
    if (flush) this.flushNetlink(nl);
  }

  /** flushRouteCache over rtnetlink: the flush address added to the TUN and deleted. Whether the TUN was found. */
  private flushNetlink(nl: Rtnetlink): boolean {
    this.tunIndex ??= nl.linkIndex(this.opts.tun);
    if (this.tunIndex < 0) { this.tunIndex = undefined; return false; }
    nl.address(true, this.tunIndex, FLUSH_ADDR.replace(/\/128$/, ''));
    nl.address(false, this.tunIndex, FLUSH_ADDR.replace(/\/128$/, ''));
    return true;
  }

  /** The next hop (gateway, or the peer's locator itself when on-link) and link from `local` to `peer`, by `ip route get`. */
  private nextHop(local: Ipv6, peer: Ipv6): Promise<{ via: Ipv6; dev: string } | undefined> {
    return new Promise((resolve) => {
      const p = spawn('ip', this.argv(['-6', '-j', 'route', 'get', peer, 'from', local]), { stdio: ['ignore', 'pipe', 'ignore'] });
      let out = '';
      p.stdout.on('data', (d: Buffer) => { out += d.toString(); });
      p.on('error', () => resolve(undefined));
      // 'close', not 'exit': the process may exit before its output is read (then the route onto
      // the tc programs was skipped and the ULID stayed routed into the TUN: seen once in six runs).
      p.on('close', () => {
        try {
          const r = (JSON.parse(out) as Array<{ gateway?: string; dev?: string }>)[0];
          resolve(r?.dev ? { via: r.gateway ?? peer, dev: r.dev } : undefined);
        } catch {
          resolve(undefined);
        }
      });
    });
  }

  /** Remove the peer's ULID route: traffic to it goes back to plain IPv6. In order, without blocking (as contextUp). */
  contextDown(peerUlid: Ipv6): Promise<void> | undefined {
    if (!this.peers.delete(peerUlid)) return undefined;
    return this.inOrder(async () => {
      const nl = this.netlink();
      if (nl !== undefined) nl.routeDelete(peerUlid, this.table);
      else await this.ipAsync(['-6', 'route', 'del', `${peerUlid}/128`, 'table', String(this.table)]);
    }, true);
  }

  /**
   * Keep a local locator deliverable when its link goes down: with
   * keep_addr_on_down the address stays but the kernel drops its `local`
   * route, so packets for our ULID arriving through the TUN would be answered
   * with ICMPv6 unreachable. A `local` route in our table of them (`localTable`, looked up after
   * the kernel's `local` table, for packets from any link) keeps it ours. One `ip` process for all of them; returns those `ip`
   * refused (each tried alone then).
   */
  keepLocals(addresses: readonly Ipv6[]): Ipv6[] {
    const add = (a: Ipv6): string[] => ['route', 'replace', 'local', `${a}/128`, 'dev', 'lo', 'table', String(this.localTable)];
    const all = addresses.length > 1 && this.ipBatchSync(addresses.map(add), false);
    const refused = all ? [] : addresses.filter((a) => !this.ip(['-6', ...add(a)], false));
    for (const a of addresses) if (!refused.includes(a)) this.locals.add(a);
    return refused;
  }

  /** Remove the `local` route keepLocals added. */
  dropLocal(address: Ipv6): void {
    if (!this.locals.delete(address)) return;
    this.ip(['-6', 'route', 'del', 'local', `${address}/128`, 'dev', 'lo', 'table', String(this.localTable)], false);
  }

  /**
   * Make the kernel drop every cached IPv6 route (sockets look theirs up
   * again). A new route in our own table does not invalidate routes cached
   * from `main`, but deleting an address bumps the IPv6 route generation
   * (rt_genid_bump_ipv6), so add and delete a link-local address on the TUN
   * (scope link: invisible to the locator watcher). In order, after the route changes asked
   * before it, without blocking (as contextUp).
   */
  flushRouteCache(): Promise<void> {
    return this.inOrder(async () => {
      const nl = this.netlink();
      if (nl === undefined || !this.flushNetlink(nl)) await this.ipBatch([['addr', 'add', FLUSH_ADDR, 'dev', this.opts.tun, 'nodad'], ['addr', 'del', FLUSH_ADDR, 'dev', this.opts.tun]]);
    });
  }

  /** Peer ULIDs currently routed through the TUN. */
  routed(): Ipv6[] {
    return [...this.peers];
  }

  /** Remove every route and rule added here (a pending switchPath adds nothing after), in one `ip` process. Idempotent. */
  close(): void {
    this.closed = true;
    this.nl?.close();
    this.nl = undefined;
    const table = String(this.table);
    const commands = [
      ...[...this.peers].map((p) => ['route', 'del', `${p}/128`, 'table', table]),
      ...[...this.locals].map((a) => ['route', 'del', 'local', `${a}/128`, 'dev', 'lo', 'table', String(this.localTable)]),
      ...(this.rulesUp ? [this.pref + 2, this.pref + 1, this.pref].map((pref) => ['rule', 'del', 'pref', String(pref)]) : []),
      ...(this.restoreLink ? [['link', 'set', 'dev', this.opts.tun, 'mtu', String(this.restoreLink.mtu), this.restoreLink.up ? 'up' : 'down']] : []),
    ];
    this.restoreLink = undefined;
    this.peers.clear();
    this.locals.clear();
    this.rulesUp = false;
    // -force: each goes even when one before it is gone already.
    if (commands.length > 0) this.ipBatchSync(commands, false);
  }

  /** Run `ip -6 -batch -` with these commands (no `-6` of their own), without waiting in the event loop; whether all succeeded. */
  private ipBatch(commands: string[][]): Promise<boolean> {
    return new Promise((resolve) => {
      const p = spawn('ip', this.argv(['-6', '-batch', '-']), { stdio: ['pipe', 'ignore', 'ignore'] });
      p.on('error', () => resolve(false));
      p.on('exit', (code) => resolve(code === 0));
      p.stdin.on('error', () => undefined);
      p.stdin.end(commands.map((c) => c.join(' ')).join('\n') + '\n');
    });
  }

  /** Run `ip` without waiting in the event loop; resolves whether it succeeded (never rejects). */
  private ipAsync(args: string[]): Promise<boolean> {
    return new Promise((resolve) => {
      const p = spawn('ip', this.argv(args), { stdio: 'ignore' });
      p.on('error', () => resolve(false));
      p.on('exit', (code) => resolve(code === 0));
    });
  }

  private argv(args: string[]): string[] {
    return this.opts.netns ? ['-n', this.opts.netns, ...args] : args;
  }

  /**
   * Run `ip -6 -force -batch -` with these commands (no `-6` of their own) and wait: every command
   * runs even after one fails; with `check`, a failure is EnvironmentError EROUTE. Whether all succeeded.
   */
  private ipBatchSync(commands: string[][], check = true): boolean {
    const argv = this.argv(['-6', '-force', '-batch', '-']);
    const r = spawnSync('ip', argv, { encoding: 'utf8', timeout: 10_000, input: commands.map((c) => c.join(' ')).join('\n') + '\n' });
    if (check && r.status !== 0) {
      throw new EnvironmentError('EROUTE', `ip ${argv.join(' ')} failed (${commands.map((c) => c.join(' ')).join('; ')}): ${String(r.stderr ?? r.error?.message).trim()}`);
    }
    return r.status === 0;
  }

  /** Run `ip`; with `check`, a failure is EnvironmentError EROUTE. Returns whether it succeeded. */
  private ip(args: string[], check = true): boolean {
    const argv = this.argv(args);
    const r = spawnSync('ip', argv, { encoding: 'utf8', timeout: 10_000 });
    if (check && r.status !== 0) {
      throw new EnvironmentError('EROUTE', `ip ${argv.join(' ')} failed: ${String(r.stderr ?? r.error?.message).trim()}`);
    }
    return r.status === 0;
  }
}

/** An `ip route` command without its `src` argument. */
function withoutSrc(args: readonly string[]): string[] {
  const i = args.indexOf('src');
  return i < 0 ? [...args] : [...args.slice(0, i), ...args.slice(i + 2)];
}
