/**
 * The programs the lab runs, and the Debian package of each (the names of
 * scripts/system-packages.txt, which `npm start` and `npm test` install as
 * root). A lab command checks what it needs first and names what is missing
 * (`ETOOL`), never failing later on an exec. Owns only this table.
 */
import { accessSync, constants } from 'node:fs';
import path from 'node:path';
import { EnvironmentError } from '../shim/errors.ts';

/** Command → Debian package. */
export const LAB_TOOL_PACKAGES: Readonly<Record<string, string>> = {
  ip: 'iproute2', nft: 'nftables', knotd: 'knot', kdig: 'knot-dnsutils', 'named-checkzone': 'bind9-utils',
  mptcpize: 'mptcpize', iperf3: 'iperf3', curl: 'curl',
};

/** What every lab needs: namespaces and links, the black hole, the DNS server and its checks. */
export const LAB_BASE_TOOLS: readonly string[] = ['ip', 'nft', 'knotd', 'kdig', 'named-checkzone'];

/** True when `cmd` is an executable on PATH (or in /usr/sbin, /sbin: root's tools). */
export function haveTool(cmd: string, envPath = process.env.PATH ?? ''): boolean {
  for (const dir of [...envPath.split(':').filter(Boolean), '/usr/sbin', '/sbin']) {
    try {
      accessSync(path.join(dir, cmd), constants.X_OK);
      return true;
    } catch { /* next */ }
  }
  return false;
}

/** The commands of `cmds` that are not installed. */
export function missingTools(cmds: readonly string[]): string[] {
  return cmds.filter((c) => !haveTool(c));
}

/** Throws ETOOL (exit 1) naming every missing command and its package, for `what` (e.g. "lab demo --mode mptcp"). */
export function requireTools(cmds: readonly string[], what: string): void {
  const missing = missingTools(cmds);
  if (missing.length === 0) return;
  const pkgs = [...new Set(missing.map((c) => LAB_TOOL_PACKAGES[c] ?? c))];
  throw new EnvironmentError('ETOOL', `${what} needs ${missing.join(', ')}, not installed here: apt-get install ${pkgs.join(' ')} (scripts/system-packages.txt lists them; npm start and npm test install them as root)`);
}
