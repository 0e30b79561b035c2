/**
 * `--from-host`: the running host's own IPv6 addresses as ULID and locators, so
 * DNS follows what the host really has (a record that names addresses the host
 * no longer has misleads its peers).
 *
 * Owns: which interface addresses count (not loopback, link-local, multicast,
 * or IPv4-mapped). Must not know: records, DNS.
 */
import os from 'node:os';
import { formatIpv6, parseIpv6 } from '../shim/wire/ipv6.ts';
import { locatorProblem } from './zone-check.ts';

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
