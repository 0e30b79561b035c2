/**
 * The host's open connections, from the kernel's socket tables: TCP
 * (/proc/net/tcp6) and connected UDP sockets (/proc/net/udp6). After a restart
 * the daemon protects each again with a context between its local address and
 * its peer (docs/operations.md "Protection that lasts"). Reads files; knows
 * nothing of the engine.
 */
import { readFileSync } from 'node:fs';
import { formatIpv6, isLinkLocalOctets, isV4MappedOctets, type Ipv6 } from '../wire/ipv6.ts';
import { flowKey, type RestartFlow, type TcpFlow } from '../dataplane/tcp-prompt.ts';

/** TCP states that carry an application's connection (established, or closing while data may still flow). */
const TCP_OPEN_STATES = new Set(['01', '08']); // ESTABLISHED, CLOSE_WAIT
/**
 * …and, with `opening`, our own connections still opening (SYN_SENT): at a start, a connect()
 * whose handshake spans the restart (its SYN or the answer lost while no daemon ran) is
 * established natively by a SYN retransmitted before the new daemon watches new flows, and would
 * never be seen again. Not SYN_RECV: those are the peers' handshakes, which anybody can start with
 * a forged source, and a start must not probe a SYN flood's sources.
 */
const TCP_OPENING_STATES = new Set([...TCP_OPEN_STATES, '02']); // SYN_SENT
/** A UDP socket's state is 01 (TCP_ESTABLISHED) once connect() gave it a peer; an unconnected one is 07. */
const UDP_CONNECTED_STATES = new Set(['01']);

/** One open connection: our address and the peer's (both global IPv6). */
export interface OpenConnection {
  local: Ipv6;
  peer: Ipv6;
  proto: 'tcp' | 'udp';
}

/** An address of /proc's `ADDR:PORT` column (four 32-bit words, each in host byte order): a global IPv6 address, else undefined. */
function globalAddress(column: string | undefined): Ipv6 | undefined {
  const hex = column?.split(':')[0] ?? '';
  if (hex.length !== 32) return undefined;
  const b = new Uint8Array(16);
  for (let w = 0; w < 4; w++) for (let k = 0; k < 4; k++) b[w * 4 + k] = parseInt(hex.slice(w * 8 + (3 - k) * 2, w * 8 + (3 - k) * 2 + 2), 16);
  if (b.some(Number.isNaN)) return undefined;
  const loopback = b.subarray(0, 15).every((x) => x === 0); // :: and ::1
  if (isV4MappedOctets(b) || loopback || isLinkLocalOctets(b) || b[0] === 0xff) return undefined;
  return formatIpv6(b);
}

/** The rows of a /proc socket table's text in one of `states`, global IPv6 at both ends: their columns and both addresses. */
function* openRows(text: string, states: ReadonlySet<string>): Generator<{ f: string[]; local: Ipv6; peer: Ipv6 }> {
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (!states.has(f[3] ?? '')) continue;
    const local = globalAddress(f[1]);
    const peer = globalAddress(f[2]);
    if (local !== undefined && peer !== undefined) yield { f, local, peer };
  }
}

/**
 * Open connections in `/proc/net/tcp6` (`tcp`: established or close-wait, and with `opening`
 * SYN_SENT too) or `/proc/net/udp6` (`udp`: connected sockets only) text, global IPv6 at both
 * ends (no IPv4-mapped, unspecified, loopback, link-local or multicast), each
 * local/peer pair once.
 */
export function parseSocketTable(text: string, proto: 'tcp' | 'udp', opening = false): OpenConnection[] {
  const out = new Map<string, OpenConnection>();
  for (const { local, peer } of openRows(text, proto === 'udp' ? UDP_CONNECTED_STATES : opening ? TCP_OPENING_STATES : TCP_OPEN_STATES)) {
    const key = `${local} ${peer}`;
    if (!out.has(key)) out.set(key, { local, peer, proto });
  }
  return [...out.values()];
}

/** The port of /proc's `ADDR:PORT` column (hex), else undefined. */
function portOf(column: string | undefined): number | undefined {
  const hex = column?.split(':')[1] ?? '';
  const port = /^[0-9A-Fa-f]{4}$/.test(hex) ? parseInt(hex, 16) : NaN;
  return port > 0 ? port : undefined;
}

/**
 * The open TCP flows in `/proc/net/tcp6` text (established or close-wait, global IPv6 at both
 * ends, as parseSocketTable) whose send queue holds octets (`tx_queue`, written and not yet
 * acknowledged by the peer): after a restart the daemon prompts our own stack on them. `persist`:
 * the flow is in TCP's persist timer (the `tr` column 04, ICSK_TIME_PROBE0: the peer's window was
 * zero, or our host refused the flow's packets after everything in flight was acknowledged), with
 * nothing in flight for a prompt to retransmit: it is kicked instead (tcp-prompt.ts, kickAck;
 * docs/dataplane.md "Our own stack").
 */
export function parseUnackedTcpFlows(text: string): RestartFlow[] {
  const out: RestartFlow[] = [];
  for (const { f, local, peer } of openRows(text, TCP_OPEN_STATES)) {
    const localPort = portOf(f[1]);
    const peerPort = portOf(f[2]);
    if (/^0*[1-9A-Fa-f][0-9A-Fa-f]*:/.test(f[4] ?? '') && localPort !== undefined && peerPort !== undefined) {
      out.push({ local, localPort, peer, peerPort, persist: (f[5] ?? '').startsWith('04:') });
    }
  }
  return out;
}

/** parse's result for the text of `file`, none when it cannot be read. */
function readTable<T>(file: string, parse: (text: string) => T[]): T[] {
  try {
    return parse(readFileSync(file, 'utf8'));
  } catch {
    return [];
  }
}

/** parseUnackedTcpFlows of the host's table now (none when it cannot be read). */
export function unackedTcpFlows(file = '/proc/net/tcp6'): RestartFlow[] {
  return readTable(file, parseUnackedTcpFlows);
}

/** For each of `flows`, whether the host's table shows it now in TCP's persist timer (parseUnackedTcpFlows); one reading. */
export function inPersistTimer(flows: readonly TcpFlow[], file = '/proc/net/tcp6'): boolean[] {
  const key = (f: TcpFlow): string => flowKey(f.local, f.localPort, f.peer, f.peerPort);
  const persist = new Set(unackedTcpFlows(file).filter((u) => u.persist).map(key));
  return flows.map((f) => persist.has(key(f)));
}

/** Remote addresses of open TCP connections in `/proc/net/tcp6` text, each once. */
export function parseTcp6Peers(text: string): Ipv6[] {
  return [...new Set(parseSocketTable(text, 'tcp').map((c) => c.peer))];
}

/** Connections are counted once per local/peer pair. */
const connectionKey = (c: OpenConnection): string => `${c.local} ${c.peer}`;

/** `before`, then those of `now` it does not have (by local/peer pair). */
export function withOpenedSince(before: readonly OpenConnection[], now: readonly OpenConnection[]): OpenConnection[] {
  const have = new Set(before.map(connectionKey));
  return [...before, ...now.filter((c) => !have.has(connectionKey(c)))];
}

/**
 * The host's open connections now: TCP, then connected UDP, each local/peer
 * pair once (a table that cannot be read gives none). `opening`: our TCP
 * connections still opening too (at a daemon's start: TCP_OPENING_STATES).
 */
export function openConnections(opening = false, files: { tcp: string; udp: string } = { tcp: '/proc/net/tcp6', udp: '/proc/net/udp6' }): OpenConnection[] {
  const out = new Map<string, OpenConnection>();
  for (const c of [...readTable(files.tcp, (t) => parseSocketTable(t, 'tcp', opening)), ...readTable(files.udp, (t) => parseSocketTable(t, 'udp'))]) {
    const key = connectionKey(c);
    if (!out.has(key)) out.set(key, c);
  }
  return [...out.values()];
}
