/**
 * Who may ask the stub (config key `allow`): clients on loopback always; others
 * only from the prefixes listed (none by default, as unbound's access-control).
 * A stub listening on an address other networks reach must not become an open
 * resolver (a reflector for anyone's floods). Checked only on listeners bound
 * to a non-loopback address: a loopback socket hears this host alone, so the
 * default stub's path does no check at all.
 *
 * Addresses are compared as the four 32-bit words udp-socket.ts's Endpoint
 * holds (IPv4 as IPv4-mapped IPv6). Must not know about sockets.
 */
import net from 'node:net';
import { UsageError, badValueCode } from '../shim/errors.ts';
import { parseIpv6 } from '../shim/wire/ipv6.ts';

/** An address as udp-socket.ts's Endpoint holds it. */
interface Words { w0: number; w1: number; w2: number; w3: number }

interface Prefix { w: Uint32Array; m: Uint32Array }

function words(address: string): Uint32Array {
  const b = parseIpv6(net.isIPv4(address) ? `::ffff:${address}` : address);
  const v = new DataView(b.buffer, b.byteOffset, 16);
  return Uint32Array.of(v.getUint32(0), v.getUint32(4), v.getUint32(8), v.getUint32(12));
}

function masks(bits: number): Uint32Array {
  const m = new Uint32Array(4);
  for (let i = 0; i < 4; i++) {
    const b = Math.max(0, Math.min(32, bits - 32 * i));
    m[i] = b === 0 ? 0 : (0xffffffff << (32 - b)) >>> 0;
  }
  return m;
}

/** ::1 and 127.0.0.0/8 (as ::ffff:127.0.0.0/104). */
const LOOPBACK: Prefix[] = [{ w: words('::1'), m: masks(128) }, { w: words('127.0.0.0'), m: masks(104) }];

function inPrefix(a: Words, p: Prefix): boolean {
  return ((a.w0 & p.m[0]!) >>> 0) === p.w[0] && ((a.w1 & p.m[1]!) >>> 0) === p.w[1]
    && ((a.w2 & p.m[2]!) >>> 0) === p.w[2] && ((a.w3 & p.m[3]!) >>> 0) === p.w[3];
}

/** Whether `host` (a listen address) is a loopback one: its socket needs no check. */
export function isLoopbackHost(host: string): boolean {
  if (net.isIP(host) === 0) return false;
  const w = words(host);
  const a = { w0: w[0]!, w1: w[1]!, w2: w[2]!, w3: w[3]! };
  return LOOPBACK.some((p) => inPrefix(a, p));
}

export class ClientAcl {
  private constructor(private readonly prefixes: readonly Prefix[], readonly text: readonly string[]) {}

  /**
   * `list`: prefixes as `ADDR/LEN` or a bare address (one host), IPv6 or IPv4. `key` names the
   * config key or flag in errors (ECONFIG, or EINVALID for a flag).
   */
  static parse(list: unknown, key: string): ClientAcl {
    if (list === undefined || list === null) return new ClientAcl(LOOPBACK, []);
    if (!Array.isArray(list) || list.length > 1024) throw new UsageError(badValueCode(key), `${key}: expected a list of at most 1024 prefixes (ADDR/LEN or ADDR)`, key);
    const out: Prefix[] = [...LOOPBACK];
    list.forEach((item, i) => {
      const field = `${key}[${i}]`;
      const bad = (why: string): never => { throw new UsageError(badValueCode(key), `${field}: invalid value ${JSON.stringify(item)}: ${why}`, field); };
      if (typeof item !== 'string' || item.length > 64) bad('expected ADDR/LEN or ADDR');
      const [addr = '', len, ...rest] = (item as string).split('/');
      const family = net.isIP(addr);
      if (family === 0 || rest.length > 0) bad('expected ADDR/LEN or ADDR');
      if (addr.includes('%')) bad('a prefix has no zone (%…): fe80::/10 covers every link');
      const max = family === 4 ? 32 : 128;
      if (len !== undefined && !/^\d{1,3}$/.test(len)) bad(`the length must be 0..${max}`);
      const bits = len === undefined ? max : Number(len);
      if (bits > max) bad(`the length must be 0..${max}`);
      const m = masks(family === 4 ? 96 + bits : bits);
      const w = words(addr);
      for (let j = 0; j < 4; j++) w[j] = (w[j]! & m[j]!) >>> 0;
      out.push({ w, m });
    });
    return new ClientAcl(out, (list as string[]).slice());
  }

  /** Whether the client at `a` may ask. */
  allows(a: Words): boolean {
    for (const p of this.prefixes) if (inPrefix(a, p)) return true;
    return false;
  }

  /**
   * The same for an address as text (a TCP socket's remoteAddress: a link-local one comes with its
   * zone, `fe80::2%eth0`, which is dropped). Never throws: anything else unreadable is refused.
   */
  allowsAddress(address: string): boolean {
    const zone = address.indexOf('%');
    const bare = zone < 0 ? address : address.slice(0, zone);
    if (net.isIP(bare) === 0) return false;
    let w: Uint32Array;
    try { w = words(bare); } catch { return false; }
    return this.allows({ w0: w[0]!, w1: w[1]!, w2: w[2]!, w3: w[3]! });
  }
}
