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
import { existsSync, mkdirSync, readdirSync, rmdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
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

/**
 * Whether A's packets on a locator pair of its context with B leave on link P. A routes by
 * destination, so B's locator decides: from A's P address to B's Q address they leave on Q
 * (nothing in the lab filters sources by link), and REAP may settle there.
 */
export function crossesLinkP(pair: { local: string; peer: string }): boolean {
  return pair.peer === LAB_ADDR.bP;
}

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

/** Names of the lab with this prefix (`lab` for `shim6 lab`, `e2e…` in tests): 1–8 of [a-z0-9]. */
export function labFor(prefix = 'lab', stateRoot = LAB_STATE_ROOT): Lab {
  if (!/^[a-z0-9]{1,8}$/.test(prefix)) {
    throw new UsageError('EINVALID', `--prefix: invalid value ${JSON.stringify(prefix)}: expected 1 to 8 lowercase letters or digits`, '--prefix');
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

/**
 * Run argv inside namespace `ns`. An `ip` command enters the namespace itself (`ip -n`): one
 * process instead of two (`ip netns exec` then the command) — the lab runs thousands of them.
 */
export function nsExec(ns: string, argv: string[], opts: { input?: string; check?: boolean; timeoutMs?: number } = {}): ShResult {
  if (argv[0] === 'ip') return sh(['ip', '-n', ns, ...argv.slice(1)], opts);
  return sh(['ip', 'netns', 'exec', ns, ...argv], opts);
}

/** Run `ip` commands (each without the leading `ip`) inside namespace `ns`, in one process (`ip -batch`). */
export function nsIpBatch(ns: string, commands: readonly (readonly string[])[]): void {
  if (commands.length > 0) sh(['ip', '-n', ns, '-batch', '-'], { input: commands.map((c) => c.join(' ')).join('\n') + '\n' });
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

/** The lab's namespaces that exist now (a lab running, or being built, under this prefix). */
export function runningNamespaces(lab: Lab): string[] {
  const have = listNamespaces();
  return labNamespaces(lab).filter((n) => have.includes(n));
}

/** Every namespace a lab may have (the attacker's and the hub's only exist on demand). */
function labNamespaces(lab: Lab): string[] {
  return [lab.a, lab.b, lab.dns, lab.x, lab.sw];
}

/**
 * A namespace with its sysctls: addresses stay when a link goes down (a locator is still ours) and
 * are usable at once; set before its links exist, which take the `default` values.
 */
function prepareNs(ns: string, extraSysctls: string[] = []): void {
  sh(['ip', 'netns', 'add', ns]);
  const conf = ['all', 'default'].flatMap((scope) => ['keep_addr_on_down=1', 'accept_dad=0', 'accept_ra=0'].map((kv) => `net.ipv6.conf.${scope}.${kv}`));
  nsExec(ns, ['sysctl', '-q', '-w', ...conf, ...extraSysctls]);
}

/** The `ip` commands of each namespace, run as one batch per namespace once the links exist. */
type NsCommands = Map<string, string[][]>;

function queue(cmds: NsCommands, ns: string, ...command: string[][]): void {
  let list = cmds.get(ns);
  if (list === undefined) cmds.set(ns, list = [['link', 'set', 'lo', 'up']]);
  list.push(...command);
}

/** A veth pair with its ends in their namespaces (created now; set up with their namespace's batch). */
function veth(cmds: NsCommands, nsA: string, ifA: string, nsB: string, ifB: string): void {
  sh(['ip', 'link', 'add', ifA, 'netns', nsA, 'type', 'veth', 'peer', 'name', ifB, 'netns', nsB]);
  queue(cmds, nsA, ['link', 'set', ifA, 'up']);
  queue(cmds, nsB, ['link', 'set', ifB, 'up']);
}

function addr(cmds: NsCommands, ns: string, dev: string, address: string): void {
  queue(cmds, ns, ['addr', 'add', `${address}/64`, 'dev', dev, 'nodad']);
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
    const cmds: NsCommands = new Map();
    for (const ns of [lab.a, lab.b, lab.dns]) prepareNs(ns);
    if (opts.attacker) hubP(lab, cmds);
    else veth(cmds, lab.a, LAB_IF.P, lab.b, LAB_IF.P);
    veth(cmds, lab.a, LAB_IF.Q, lab.b, LAB_IF.Q);
    veth(cmds, lab.a, LAB_IF.dns, lab.dns, LAB_IF.dnsA);
    veth(cmds, lab.b, LAB_IF.dns, lab.dns, LAB_IF.dnsB);
    addr(cmds, lab.a, LAB_IF.P, LAB_ADDR.aP);
    addr(cmds, lab.b, LAB_IF.P, LAB_ADDR.bP);
    addr(cmds, lab.a, LAB_IF.Q, LAB_ADDR.aQ);
    addr(cmds, lab.b, LAB_IF.Q, LAB_ADDR.bQ);
    addr(cmds, lab.a, LAB_IF.dns, LAB_ADDR.aDns);
    addr(cmds, lab.dns, LAB_IF.dnsA, LAB_ADDR.dnsA);
    addr(cmds, lab.b, LAB_IF.dns, LAB_ADDR.bDns);
    addr(cmds, lab.dns, LAB_IF.dnsB, LAB_ADDR.dnsB);
    for (const [ns, commands] of cmds) nsIpBatch(ns, commands);
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
function hubP(lab: Lab, cmds: NsCommands): void {
  prepareNs(lab.sw, ['net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
  prepareNs(lab.x);
  nsExec(lab.sw, ['ip', 'link', 'add', HUB.bridge, 'type', 'bridge', 'ageing_time', '0', 'mcast_snooping', '0', 'stp_state', '0']);
  queue(cmds, lab.sw, ['link', 'set', HUB.bridge, 'up']);
  for (const [ns, port] of [[lab.a, HUB.a], [lab.b, HUB.b], [lab.x, HUB.x]] as const) {
    veth(cmds, ns, LAB_IF.P, lab.sw, port);
    queue(cmds, lab.sw, ['link', 'set', port, 'master', HUB.bridge]);
  }
  addr(cmds, lab.x, LAB_IF.P, LAB_ADDR.xP);
}

/** For a synchronous 50 ms pause without a process (`Atomics.wait` on a word nobody changes). */
const PAUSE = new Int32Array(new SharedArrayBuffer(4));

/**
 * The processes in namespaces `names` (what `ip netns pids` prints, read from /proc here: a lab's
 * teardown asks many times).
 */
function pidsIn(names: string[]): number[] {
  if (names.length === 0) return [];
  const inodes = new Set<number>();
  for (const n of names) {
    try { inodes.add(statSync(path.join('/run/netns', n)).ino); } catch { /* gone meanwhile */ }
  }
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (inodes.has(statSync(`/proc/${e}/ns/net`).ino)) out.push(Number(e));
    } catch { /* exited meanwhile, or a kernel thread */ }
  }
  return out;
}

/**
 * Kill every process in the lab's namespaces (all started by the lab), delete
 * the namespaces and the state directory. Idempotent: a missing piece is fine.
 */
export function topologyDown(lab: Lab): void {
  const have = listNamespaces();
  const mine = labNamespaces(lab).filter((ns) => have.includes(ns));
  const pidsOf = (): number[] => pidsIn(mine);
  const signal = (pids: number[], sig: NodeJS.Signals): void => {
    for (const pid of pids) {
      try { process.kill(pid, sig); } catch { /* already gone */ }
    }
  };
  // SIGTERM first, so daemons close their contexts and clean up; SIGKILL what is left after 3 s.
  signal(pidsOf(), 'SIGTERM');
  const deadline = Date.now() + 3000;
  while (pidsOf().length > 0 && Date.now() < deadline) Atomics.wait(PAUSE, 0, 0, 50);
  signal(pidsOf(), 'SIGKILL');
  for (const ns of labNamespaces(lab)) {
    if (have.includes(ns)) sh(['ip', 'netns', 'del', ns], { check: false });
  }
  removeNetnsResolvConf(lab);
  rmSync(lab.stateDir, { recursive: true, force: true });
}

/** Where `ip netns exec <ns>` finds files to bind over /etc (ip-netns(8)). */
export const NETNS_ETC = '/etc/netns';

/**
 * `/etc/netns/<ns>/resolv.conf` for A and B: `ip netns exec` binds it over
 * /etc/resolv.conf, so programs run in a host resolve through that host's
 * stub (`stub`; the shim6 daemon's, priming the engine), then the lab's
 * Knot when no stub answers; search domain lab.example. Removed with the lab.
 */
export function writeNetnsResolvConf(lab: Lab, stub: string, domain: string): void {
  for (const [ns, knot] of [[lab.a, LAB_ADDR.dnsA], [lab.b, LAB_ADDR.dnsB]] as const) {
    const dir = path.join(NETNS_ETC, ns);
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    writeFileSync(path.join(dir, 'resolv.conf'), [
      `# shim6 lab ${lab.prefix}: host ${ns === lab.a ? 'A' : 'B'} resolves through its shim6 stub, else the lab's Knot; removed by \`shim6 lab down\``,
      `nameserver ${stub}`, `nameserver ${knot}`, `search ${domain}`, 'options timeout:1 attempts:2', '',
    ].join('\n'), { mode: 0o644 });
  }
}

/** Undo writeNetnsResolvConf (and /etc/netns itself when nothing else is in it). */
function removeNetnsResolvConf(lab: Lab): void {
  for (const ns of labNamespaces(lab)) {
    const dir = path.join(NETNS_ETC, ns);
    rmSync(path.join(dir, 'resolv.conf'), { force: true });
    try { rmdirSync(dir); } catch { /* absent, or holds files of someone else's */ }
  }
  try { rmdirSync(NETNS_ETC); } catch { /* absent or not empty */ }
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
