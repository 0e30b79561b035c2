/**
 * The peers of this host's open TCP connections, from the kernel's socket
 * table (/proc/net/tcp6): after a restart the daemon primes the ones it knows
 * to run shim6, so connections opened before the restart are protected again
 * before they need it. Reads a file; knows nothing of the engine.
 */
import { readFileSync } from 'node:fs';
import { formatIpv6, type Ipv6 } from '../wire/ipv6.ts';

/** TCP states that carry an application's connection (established, or closing while data may still flow). */
const OPEN_STATES = new Set(['01', '08']); // ESTABLISHED, CLOSE_WAIT

/**
 * Remote addresses of open TCP connections in `/proc/net/tcp6` text: global
 * IPv6 only (no IPv4-mapped, loopback, link-local or multicast), each once.
 */
export function parseTcp6Peers(text: string): Ipv6[] {
  const out = new Set<Ipv6>();
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    const remote = f[2];
    if (remote === undefined || !OPEN_STATES.has(f[3] ?? '')) continue;
    const hex = remote.split(':')[0] ?? '';
    if (hex.length !== 32) continue;
    // Four 32-bit words, each in host (little-endian) byte order.
    const b = new Uint8Array(16);
    for (let w = 0; w < 4; w++) for (let k = 0; k < 4; k++) b[w * 4 + k] = parseInt(hex.slice(w * 8 + (3 - k) * 2, w * 8 + (3 - k) * 2 + 2), 16);
    if (b.some(Number.isNaN)) continue;
    const mapped = b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff;
    const loopback = b.subarray(0, 15).every((x) => x === 0);
    const linkLocal = b[0] === 0xfe && (b[1]! & 0xc0) === 0x80;
    if (mapped || loopback || linkLocal || b[0] === 0xff) continue;
    out.add(formatIpv6(b));
  }
  return [...out];
}

/** The peers of the host's open TCP connections now ([] when the table cannot be read). */
export function openTcpPeers(file = '/proc/net/tcp6'): Ipv6[] {
  try {
    return parseTcp6Peers(readFileSync(file, 'utf8'));
  } catch {
    return [];
  }
}
