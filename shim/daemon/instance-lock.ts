/**
 * One `shim6 daemon` per network namespace. Its routes (table 5533), rules
 * (preferences 5532, 5533) and nftables tables have fixed names in the
 * namespace, and a start removes what "a crashed daemon" left of them: a second
 * daemon must be refused before it touches any of it, or its refused start
 * takes the running one's data plane down (found by a sysadmin's review).
 *
 * The claim is an abstract Unix socket (Linux): abstract names belong to a
 * network namespace, and the kernel releases the name when the process ends,
 * killed with SIGKILL too, so there is no stale lock to clean. The holder
 * answers a connection with its pid, for the refusal's message.
 *
 * Owns the claim. Must not know what the daemon sets up.
 */
import net from 'node:net';
import { EnvironmentError } from '../errors.ts';

/** The abstract name (Node writes a leading NUL as the abstract namespace). */
export const INSTANCE_SOCKET = '\0shim6-daemon';

export interface InstanceClaim {
  release(): void;
}

/** The holder's pid, asked over its socket; undefined when it does not say within a second. */
function holderPid(name: string): Promise<number | undefined> {
  return new Promise((resolve) => {
    const c = net.connect({ path: name });
    let text = '';
    const done = (pid: number | undefined): void => { clearTimeout(timer); c.destroy(); resolve(pid); };
    const timer = setTimeout(() => done(undefined), 1000);
    c.setEncoding('utf8');
    c.on('data', (d: string) => { text += d; if (text.length > 32) done(undefined); });
    c.on('end', () => done(/^\d{1,10}\n$/.test(text) ? Number(text) : undefined));
    c.on('error', () => done(undefined));
  });
}

/**
 * Claim this network namespace for this daemon, or EnvironmentError EDAEMON_RUNNING (with the
 * running daemon's pid when it says it) and nothing changed. `name`: tests only.
 */
export async function claimNamespace(name = INSTANCE_SOCKET): Promise<InstanceClaim> {
  const server = net.createServer((c) => { c.on('error', () => c.destroy()); c.end(`${process.pid}\n`); });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ path: name }, () => { server.off('error', reject); resolve(); });
    });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    const pid = await holderPid(name);
    throw new EnvironmentError('EDAEMON_RUNNING', `another shim6 daemon runs in this network namespace${pid === undefined ? '' : ` (pid ${pid})`}: there is one per namespace (its routes, rules and nftables tables have fixed names); nothing was changed`);
  }
  server.unref();
  let held = true;
  return { release: () => { if (held) { held = false; server.close(); } } };
}
