/**
 * New outgoing IPv6 flows, as they leave: an nftables table of our own
 * (`ip6 shim6`) logs the first packet of every new TCP or UDP flow (conntrack
 * state new) to a log group, and the addon's NFLOG reader (native/nflog.c)
 * hands each packet's addresses to a callback. The packet is copied, never
 * held: the application's first packets leave as they would without us
 * (docs/dataplane.md "New flows").
 *
 * Not logged: loopback and the TUN (flows already in a context), link-local
 * and multicast destinations, the daemon's own UDP port. The kernel limits the
 * notifications (`limit rate`), so a burst of new flows costs the daemon a
 * bounded amount of work.
 *
 * Owns: that table (removed on close, and at the next start after a crash)
 * and the netlink socket. Must not know: Shim6, the engine, what the daemon
 * does with a flow.
 */
import { closeSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { loadAddon } from '../../native/addon.ts';
import { EnvironmentError } from '../errors.ts';
import { formatIpv6, type Ipv6 } from '../wire/ipv6.ts';

/** The table's name (family ip6): one per network namespace, like the daemon. */
export const NEW_FLOWS_TABLE = 'shim6';
/** Octets per record from the addon (nflog.h NFLOG_RECORD). */
const RECORD = 34;
/** Records per wake-up (the rest waits for the next loop turn). */
const BATCH = 256;

export interface NewFlowsOptions {
  /** The TUN (flows through it are in a context already). */
  tun: string;
  /** The daemon's UDP port (its own datagrams are not flows to discover). */
  port: number;
  /** nftables log group (default 5533). */
  group?: number;
  /** Kernel-side bound on notifications per second (default 200, burst the same). */
  ratePerSecond?: number;
  /** Run `nft` in this namespace (`ip netns exec`); default: the current one. */
  netns?: string;
}

/** One new outgoing flow: its source and destination address and IP protocol. */
export interface NewFlow {
  src: Ipv6;
  dst: Ipv6;
  proto: number;
}

/** The nftables ruleset text of the table (exported for tests and docs). */
export function newFlowsRuleset(o: Required<Pick<NewFlowsOptions, 'tun' | 'port' | 'group' | 'ratePerSecond'>>): string {
  return [
    `table ip6 ${NEW_FLOWS_TABLE} {`,
    '  chain new_flows {',
    '    type filter hook output priority filter; policy accept;',
    `    oifname { "lo", ${JSON.stringify(o.tun)} } return`,
    '    ip6 daddr { ::1, fe80::/10, ff00::/8 } return',
    `    udp sport ${o.port} return`,
    `    udp dport ${o.port} return`,
    `    meta l4proto { tcp, udp } ct state new limit rate ${o.ratePerSecond}/second burst ${o.ratePerSecond} packets log group ${o.group} snaplen 48 queue-threshold 1`,
    '  }',
    '}',
    '',
  ].join('\n');
}

/** Run `nft` with a script on stdin (or arguments); the result. */
function nft(args: string[], input: string | undefined, netns: string | undefined): { ok: boolean; err: string } {
  const argv = netns ? ['netns', 'exec', netns, 'nft', ...args] : args;
  const r = spawnSync(netns ? 'ip' : 'nft', argv, { encoding: 'utf8', timeout: 10_000, ...(input === undefined ? {} : { input }) });
  return { ok: r.status === 0, err: String(r.stderr || r.error?.message || '').trim() };
}

/**
 * Remove the table a previous daemon left (a crash: kill -9 removes nothing).
 * True when there was one.
 */
export function removeStaleNewFlowsTable(netns?: string): boolean {
  return nft(['delete', 'table', 'ip6', NEW_FLOWS_TABLE], undefined, netns).ok;
}

/** The table and the reader; `close()` removes both. */
export class NewFlows {
  private handle: object | undefined;
  private tableUp = false;
  /** Notifications the netlink socket could not hold (ENOBUFS), since start. */
  lost = 0;
  /** Flows reported, since start. */
  seen = 0;

  private constructor(private readonly opts: NewFlowsOptions) {}

  /**
   * Open the log group, then add the table. EnvironmentError ENEWFLOWS when
   * the kernel or nft refuses (no nftables, the group read by someone else).
   */
  static open(opts: NewFlowsOptions, onFlow: (f: NewFlow) => void): NewFlows {
    const nf = new NewFlows(opts);
    const addon = loadAddon();
    const group = opts.group ?? 5533;
    let fd: number;
    try {
      fd = addon.nflogOpen(group, 1 << 20);
    } catch (err) {
      throw new EnvironmentError('ENEWFLOWS', `cannot read nftables log group ${group}: ${(err as Error).message}`);
    }
    const out = new ArrayBuffer(RECORD * BATCH);
    const view = new Uint8Array(out);
    try {
      nf.handle = addon.nflogStartReader(fd, out, BATCH, (count, lost) => {
        nf.lost += lost;
        for (let i = 0; i < count; i++) {
          const o = i * RECORD;
          nf.seen++;
          onFlow({ src: formatIpv6(view.subarray(o, o + 16)), dst: formatIpv6(view.subarray(o + 16, o + 32)), proto: view[o + 32]! });
        }
      });
    } catch (err) {
      closeSync(fd);
      throw new EnvironmentError('ENEWFLOWS', `cannot poll the nftables log socket: ${(err as Error).message}`);
    }
    // A table a crashed daemon left goes in the same transaction (declared, so that deleting it
    // never fails, then deleted): one nft instead of two.
    const fresh = `table ip6 ${NEW_FLOWS_TABLE}\ndelete table ip6 ${NEW_FLOWS_TABLE}\n`;
    const r = nft(['-f', '-'], fresh + newFlowsRuleset({ tun: opts.tun, port: opts.port, group, ratePerSecond: opts.ratePerSecond ?? 200 }), opts.netns);
    if (!r.ok) {
      nf.close();
      throw new EnvironmentError('ENEWFLOWS', `nft refused the ${NEW_FLOWS_TABLE} table: ${r.err}`);
    }
    nf.tableUp = true;
    return nf;
  }

  /** Remove the table and close the socket. Idempotent. */
  close(): void {
    if (this.tableUp) {
      nft(['delete', 'table', 'ip6', NEW_FLOWS_TABLE], undefined, this.opts.netns);
      this.tableUp = false;
    }
    if (this.handle !== undefined) {
      loadAddon().nflogClose(this.handle);
      this.handle = undefined;
    }
  }
}
