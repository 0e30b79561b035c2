/**
 * The two-host lab's network: namespaces for host A, host B and a DNS server;
 * A and B joined by two links P and Q (veth pairs, one address per host per
 * link, `nodad`, `keep_addr_on_down=1`); A and B each with a link to the DNS
 * namespace. Also the silent black hole of a link (nftables drop inside the
 * namespace, the link stays up).
 *
 * On demand (`topologyUp(lab, { attacker: true })`, for the trust tests of
 * issue 15) link P is a hub instead of a veth pair: a bridge in namespace
 * `<prefix>sw` that forgets every MAC address at once (ageing_time 0), so it
 * floods every frame to every port, and a third host, the attacker
 * (`<prefix>x`), with one interface on P and its own address on P's prefix.
 * The attacker sees all A↔B traffic on P and can send to both, but has no
 * interface on Q or to the DNS namespace. Without the option nothing changes.
 *
 * Owns only what it creates: namespaces `<prefix>a`, `<prefix>b`,
 * `<prefix>dns` (and `<prefix>sw`, `<prefix>x` with an attacker) and the
 * state directory. veth ends are created directly in their namespaces, so
 * the host namespace never sees an interface; `labDown`
 * deletes the namespaces (and with them links, addresses, nft tables) and the
 * state directory, leaving the host as it was found. It knows nothing of DNS,
 * streams or the daemon.
 */
import { spawnSync } from 'node:child_process';
import { Shim6Error } from '../shim/errors.ts';
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { UsageError } from '../shim/errors.ts';
import { LAB_HBA } from './hba.ts';

/**
 * Addresses of the lab (documentation prefix, RFC 3849). A's and B's
 * addresses on P and Q are their HBA sets (hba.ts); P's is the ULID.
 */
export const LAB_ADDR = {
  aP: LAB_HBA.a.members[0]!.address, bP: LAB_HBA.b.members[0]!.address,
  aQ: LAB_HBA.a.members[1]!.address, bQ: LAB_HBA.b.members[1]!.address,
  aDns: '2001:db8:53::a', dnsA: '2001:db8:53::53',
  bDns: '2001:db8:54::b', dnsB: '2001:db8:54::53',
  /** The attacker's address on link P (only in a lab built with `attacker: true`). */
  xP: '2001:db8:1::bad',
} as const;

/** Interface names inside the namespaces (the same in A and B). */
export const LAB_IF = { P: 'labp', Q: 'labq', dns: 'labdns', dnsA: 'labdnsa', dnsB: 'labdnsb' } as const;

/** Link P's hub in an attacker lab (in `<prefix>sw`): the bridge and its ports towards A, B and the attacker. */
const HUB = { bridge: 'labphub', a: 'labpa', b: 'labpb', x: 'labpx' } as const;

export type LabLink = 'P' | 'Q';

/** One lab instance: its namespace names and state directory. */
export interface Lab {
  prefix: string;
  a: string;
  b: string;
  dns: string;
  /** The attacker's namespace; it exists only when the lab was built with `attacker: true`. */
  x: string;
  /** The namespace holding link P's hub (with `attacker: true` only). */
  sw: string;
  /** Holds the zone, Knot's files, daemon configs and logs. */
  stateDir: string;
}

/** Where lab state lives unless told otherwise. */
export const LAB_STATE_ROOT = '/run/shim6-lab';

/** Names of the lab with this prefix (`lab` for `shim6 lab`, `e2e…` in tests). */
export function labFor(prefix = 'lab', stateRoot = LAB_STATE_ROOT): Lab {
  if (!/^(lab|e2e)[a-z0-9]{0,8}$/.test(prefix)) {
    throw new UsageError('EINVALID', `--prefix: invalid value ${JSON.stringify(prefix)}: must start with "lab" or "e2e", then up to 8 of [a-z0-9]`, '--prefix');
  }
  return { prefix, a: `${prefix}a`, b: `${prefix}b`, dns: `${prefix}dns`, x: `${prefix}x`, sw: `${prefix}sw`, stateDir: path.join(stateRoot, prefix) };
}

export interface ShResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Run a command to completion; throws (code ELAB) unless `check` is false. */
export function sh(argv: string[], opts: { input?: string; check?: boolean; timeoutMs?: number } = {}): ShResult {
  const [cmd, ...args] = argv;
  const r = spawnSync(cmd ?? 'false', args, { encoding: 'utf8', input: opts.input ?? '', timeout: opts.timeoutMs ?? 20_000 });
  const res = { status: r.status, stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? '') };
  if ((opts.check ?? true) && r.status !== 0) {
    throw new LabError(`\`${argv.join(' ')}\` failed (${r.status ?? r.signal ?? r.error?.message}): ${res.stderr.trim()}`);
  }
  return res;
}

/** A lab operation failed (a command, a timeout): not the user's fault. */
export class LabError extends Shim6Error {
  readonly code = 'ELAB';
}

/** Run argv inside namespace `ns`. */
export function nsExec(ns: string, argv: string[], opts: { input?: string; check?: boolean; timeoutMs?: number } = {}): ShResult {
  return sh(['ip', 'netns', 'exec', ns, ...argv], opts);
}

/** The namespaces that exist now. */
export function listNamespaces(): string[] {
  if (!existsSync('/run/netns')) return [];
  return readdirSync('/run/netns');
}

export function labExists(lab: Lab): boolean {
  const have = listNamespaces();
  return labNamespaces(lab).some((n) => have.includes(n));
}

/** Every namespace a lab may have (the attacker's and the hub's only exist on demand). */
function labNamespaces(lab: Lab): string[] {
  return [lab.a, lab.b, lab.dns, lab.x, lab.sw];
}

function prepareNs(ns: string): void {
  sh(['ip', 'netns', 'add', ns]);
  nsExec(ns, ['ip', 'link', 'set', 'lo', 'up']);
  for (const scope of ['all', 'default']) {
    // Addresses stay when a link goes down (a locator is still ours), usable at once.
    nsExec(ns, ['sysctl', '-q', '-w', `net.ipv6.conf.${scope}.keep_addr_on_down=1`]);
    nsExec(ns, ['sysctl', '-q', '-w', `net.ipv6.conf.${scope}.accept_dad=0`]);
    nsExec(ns, ['sysctl', '-q', '-w', `net.ipv6.conf.${scope}.accept_ra=0`]);
  }
}

function veth(nsA: string, ifA: string, nsB: string, ifB: string): void {
  sh(['ip', 'link', 'add', ifA, 'netns', nsA, 'type', 'veth', 'peer', 'name', ifB, 'netns', nsB]);
  nsExec(nsA, ['ip', 'link', 'set', ifA, 'up']);
  nsExec(nsB, ['ip', 'link', 'set', ifB, 'up']);
}

function addr(ns: string, dev: string, address: string): void {
  nsExec(ns, ['ip', '-6', 'addr', 'add', `${address}/64`, 'dev', dev, 'nodad']);
}

export interface TopologyOptions {
  /** Link P as a flooding hub with a third host on it, the attacker (see the header). Default false. */
  attacker?: boolean;
}

/** Create the namespaces, links and addresses. Tears down a stale lab of the same prefix first. */
export function topologyUp(lab: Lab, opts: TopologyOptions = {}): void {
  topologyDown(lab);
  mkdirSync(lab.stateDir, { recursive: true, mode: 0o700 });
  try {
    for (const ns of [lab.a, lab.b, lab.dns]) prepareNs(ns);
    if (opts.attacker) hubP(lab);
    else veth(lab.a, LAB_IF.P, lab.b, LAB_IF.P);
    veth(lab.a, LAB_IF.Q, lab.b, LAB_IF.Q);
    veth(lab.a, LAB_IF.dns, lab.dns, LAB_IF.dnsA);
    veth(lab.b, LAB_IF.dns, lab.dns, LAB_IF.dnsB);
    addr(lab.a, LAB_IF.P, LAB_ADDR.aP);
    addr(lab.b, LAB_IF.P, LAB_ADDR.bP);
    addr(lab.a, LAB_IF.Q, LAB_ADDR.aQ);
    addr(lab.b, LAB_IF.Q, LAB_ADDR.bQ);
    addr(lab.a, LAB_IF.dns, LAB_ADDR.aDns);
    addr(lab.dns, LAB_IF.dnsA, LAB_ADDR.dnsA);
    addr(lab.b, LAB_IF.dns, LAB_ADDR.bDns);
    addr(lab.dns, LAB_IF.dnsB, LAB_ADDR.dnsB);
  } catch (err) {
    topologyDown(lab);
    throw err;
  }
}

/**
 * Link P as a hub: a bridge that keeps no MAC address (ageing_time 0) floods
 * every unicast frame to all ports, as a shared medium would, and without
 * multicast snooping it floods neighbour discovery too. The hub's namespace
 * has no addresses (IPv6 off), so it is not a host on P. The attacker's
 * interface is named like A's and B's (`labp`).
 */
function hubP(lab: Lab): void {
  prepareNs(lab.sw);
  nsExec(lab.sw, ['sysctl', '-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1']);
  nsExec(lab.sw, ['sysctl', '-q', '-w', 'net.ipv6.conf.default.disable_ipv6=1']);
  prepareNs(lab.x);
  nsExec(lab.sw, ['ip', 'link', 'add', HUB.bridge, 'type', 'bridge', 'ageing_time', '0', 'mcast_snooping', '0', 'stp_state', '0']);
  nsExec(lab.sw, ['ip', 'link', 'set', HUB.bridge, 'up']);
  for (const [ns, port] of [[lab.a, HUB.a], [lab.b, HUB.b], [lab.x, HUB.x]] as const) {
    veth(ns, LAB_IF.P, lab.sw, port);
    nsExec(lab.sw, ['ip', 'link', 'set', port, 'master', HUB.bridge]);
  }
  addr(lab.x, LAB_IF.P, LAB_ADDR.xP);
}

/**
 * Kill every process in the lab's namespaces (all started by the lab), delete
 * the namespaces and the state directory. Idempotent: a missing piece is fine.
 */
export function topologyDown(lab: Lab): void {
  const have = listNamespaces();
  const pidsOf = (): number[] => labNamespaces(lab).filter((ns) => have.includes(ns))
    .flatMap((ns) => sh(['ip', 'netns', 'pids', ns], { check: false }).stdout.split(/\s+/).filter(Boolean).map(Number));
  const signal = (pids: number[], sig: NodeJS.Signals): void => {
    for (const pid of pids) {
      try { process.kill(pid, sig); } catch { /* already gone */ }
    }
  };
  // SIGTERM first, so daemons close their contexts and clean up; SIGKILL what is left after 3 s.
  signal(pidsOf(), 'SIGTERM');
  const deadline = Date.now() + 3000;
  while (pidsOf().length > 0 && Date.now() < deadline) sh(['sleep', '0.05'], { check: false });
  signal(pidsOf(), 'SIGKILL');
  for (const ns of labNamespaces(lab)) {
    if (have.includes(ns)) sh(['ip', 'netns', 'del', ns], { check: false });
  }
  rmSync(lab.stateDir, { recursive: true, force: true });
}

function bhTable(link: LabLink): string {
  return `labbh_${link}`;
}

/**
 * Silently black-hole link `link` on host A: every packet in or out of A's end
 * is dropped by nftables while the link stays up (no carrier change, no ICMP),
 * as a failed router upstream would look.
 */
export function blackhole(lab: Lab, link: LabLink, host: 'a' | 'b' = 'a'): void {
  const dev = LAB_IF[link];
  const t = bhTable(link);
  const rules = [
    `table netdev ${t} {`,
    `  chain inp { type filter hook ingress device "${dev}" priority -500; policy drop; }`,
    `}`,
    `table inet ${t}_o {`,
    `  chain outp { type filter hook output priority -500; policy accept; oifname "${dev}" drop; }`,
    `}`,
  ].join('\n');
  nsExec(host === 'a' ? lab.a : lab.b, ['nft', '-f', '-'], { input: rules });
}

/** Undo `blackhole`. */
export function unblackhole(lab: Lab, link: LabLink, host: 'a' | 'b' = 'a'): void {
  const ns = host === 'a' ? lab.a : lab.b;
  nsExec(ns, ['nft', 'delete', 'table', 'netdev', bhTable(link)], { check: false });
  nsExec(ns, ['nft', 'delete', 'table', 'inet', `${bhTable(link)}_o`], { check: false });
}

/** Set link `link` down (or up) on host A: the kernel sees it, unlike a black hole. */
export function setLink(lab: Lab, link: LabLink, up: boolean, host: 'a' | 'b' = 'a'): void {
  nsExec(host === 'a' ? lab.a : lab.b, ['ip', 'link', 'set', LAB_IF[link], up ? 'up' : 'down']);
}
