/**
 * `--from-host`: the running host's own IPv6 addresses as ULID and locators, so
 * DNS follows what the host really has (a record that names addresses the host
 * no longer has misleads its peers).
 *
 * Owns: which interface addresses count (not loopback, link-local, multicast,
 * or IPv4-mapped). Must not know: records, DNS.
 */
import { existsSync } from 'node:fs';
import os from 'node:os';
import { formatIpv6, locatorProblem, parseIpv6 } from '../shim/wire/ipv6.ts';

export type InterfaceTable = ReturnType<typeof os.networkInterfaces>;

/** Global-scope IPv6 addresses, in interface order, without duplicates. `only` restricts to named interfaces. */
export function hostLocators(table: InterfaceTable = os.networkInterfaces(), only?: readonly string[]): string[] {
  const out: string[] = [];
  for (const [ifname, addrs] of Object.entries(table)) {
    if (only && only.length > 0 && !only.includes(ifname)) continue;
    for (const a of addrs ?? []) {
      if (a.family !== 'IPv6' || a.internal) continue;
      let canon: string;
      try { canon = formatIpv6(parseIpv6(a.address)); } catch { continue; }
      if (locatorProblem(canon) !== undefined || out.includes(canon)) continue;
      out.push(canon);
    }
  }
  return out;
}

/**
 * Why `--interface NAME` names no interface of this host, or undefined. The
 * table lists only interfaces that are up with addresses; one that exists but
 * is not there is down (or has none), which `--from-host` reports itself.
 */
export function interfaceProblem(name: string, table: InterfaceTable = os.networkInterfaces(), sysNet = '/sys/class/net'): string | undefined {
  if (Object.hasOwn(table, name)) return undefined;
  // Linux's rules for a name (IFNAMSIZ 16 with the NUL, no '/', no white space, not . or ..).
  if (name.length === 0 || name.length > 15 || /[/\s:]/.test(name) || name === '.' || name === '..') return 'not an interface name';
  return existsSync(`${sysNet}/${name}`) ? undefined : 'no such interface';
}
