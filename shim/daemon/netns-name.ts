/**
 * The network namespace a daemon runs in, as its per-namespace default paths name it. One daemon
 * runs per network namespace (instance-lock.ts), and daemons of several namespaces (`ip netns exec
 * X shim6 daemon`, `nsenter --net`, systemd `NetworkNamespacePath=`) share one /var/lib: with one
 * default `cacheFile` they overwrote each other's caches and saved contexts, and a restart resumed
 * the other daemon's contexts (or none).
 *
 * The name is the namespace's name under /run/netns (`ip netns add`; the first in order when it has
 * several): stable across restarts of the daemon and of the host, as the root namespace's paths are.
 * The host's initial namespace (the one of pid 1) and a namespace without a name (`unshare -n`,
 * systemd `PrivateNetwork=`: made anew at each start, so nothing in it lasts past the daemon) keep
 * the host's default paths.
 *
 * Owns the naming. Must not know which files are named after it.
 */
import { readdirSync, statSync } from 'node:fs';

/** Where `ip netns add` names its namespaces. */
export const NETNS_RUN_DIR = '/run/netns';

/**
 * The name of this process's network namespace under `runDir`, or undefined in the initial
 * namespace (pid 1's), in one without a name, or where /run/netns cannot be read.
 */
export function networkNamespaceName(runDir = NETNS_RUN_DIR): string | undefined {
  let self;
  try { self = statSync('/proc/self/ns/net'); } catch { return undefined; }
  try {
    const init = statSync('/proc/1/ns/net');
    if (init.ino === self.ino && init.dev === self.dev) return undefined;
  } catch {
    // pid 1's namespace cannot be read (a container's root without CAP_SYS_PTRACE over pid 1):
    // the initial namespace has no name under /run/netns unless one was given to it (`ip netns
    // attach NAME 1`), the one case that then takes the per-namespace paths.
  }
  let names: string[];
  try { names = readdirSync(runDir).sort(); } catch { return undefined; }
  return names.find((name) => {
    try {
      const st = statSync(`${runDir}/${name}`);
      return st.ino === self.ino && st.dev === self.dev;
    } catch {
      return false;
    }
  });
}
