/**
 * Real network namespaces, veth links, addresses, sysctls and link failures for
 * tests and benchmarks, always torn down afterwards (also on failure).
 *
 * Owns: namespaces it created, processes it started in them, nft tables it
 * added. It must not touch anything it did not create: names are made unique
 * per process (`<prefix><pid36><n>`), veth ends are created directly inside
 * their namespaces so nothing ever appears in the host namespace.
 *
 * Usage (node:test):
 *   const net = new NetLab(t);            // cleanup registered with t.after
 *   const a = net.ns('dpa'); const b = net.ns('dpb');
 *   net.veth(a, 'dpp0', b, 'dpp1');
 *   net.addr(a, 'dpp0', 'fd00:1::1/64'); net.addr(b, 'dpp1', 'fd00:1::2/64');
 *   net.run(a, ['ping', '-6', '-c1', 'fd00:1::2']);
 * Outside a test, pass any `{ after(fn) }` and call `net.cleanup()` yourself.
 */
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { DEADLINE_MS } from './wait.ts';

/** Something that runs a function at the end (node:test's TestContext fits). */
export interface AfterHook {
  after(fn: () => unknown): void;
}

/** A namespace created by NetLab. */
export interface Netns {
  readonly name: string;
}

/** Result of a command run to completion. */
export interface RunResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

let counter = 0;

/** A name unique to this process: prefix + pid (base 36) + counter, ≤ 15 chars. */
export function uniqueName(prefix: string): string {
  const name = `${prefix}${process.pid.toString(36)}${(counter++).toString(36)}`;
  if (name.length > 15) throw new Error(`netns: name ${name} longer than 15 characters (prefix too long)`);
  return name;
}

/** Namespaces, links and processes for one test; everything is undone by cleanup(). */
export class NetLab {
  private readonly namespaces: string[] = [];
  private readonly children = new Set<ChildProcess>();
  private cleaned = false;

  /** Last resort if the process exits before cleanup ran (a crash, process.exit in a script). */
  private readonly onExit = () => this.cleanupSync();

  constructor(hook?: AfterHook) {
    hook?.after(() => this.cleanup());
    process.once('exit', this.onExit);
  }

  /**
   * Create a namespace `<prefix>…` with loopback up and IPv6 set up for
   * tests: addresses survive link down (keep_addr_on_down), no DAD delays,
   * forwarding off.
   */
  ns(prefix: string): Netns {
    const name = uniqueName(prefix);
    sh(['ip', 'netns', 'add', name]);
    this.namespaces.push(name);
    const ns = { name };
    this.run(ns, ['ip', 'link', 'set', 'lo', 'up']);
    this.sysctl(ns, 'net.ipv6.conf.all.keep_addr_on_down', '1');
    this.sysctl(ns, 'net.ipv6.conf.default.keep_addr_on_down', '1');
    this.sysctl(ns, 'net.ipv6.conf.all.accept_dad', '0');
    this.sysctl(ns, 'net.ipv6.conf.default.accept_dad', '0');
    return ns;
  }

  /** A veth pair with one end in each namespace, both up. */
  veth(a: Netns, ifA: string, b: Netns, ifB: string, opts: { mtu?: number } = {}): void {
    sh(['ip', 'link', 'add', ifA, 'netns', a.name, 'type', 'veth', 'peer', 'name', ifB, 'netns', b.name]);
    for (const [ns, dev] of [[a, ifA], [b, ifB]] as const) {
      if (opts.mtu !== undefined) this.run(ns, ['ip', 'link', 'set', dev, 'mtu', String(opts.mtu)]);
      this.run(ns, ['ip', 'link', 'set', dev, 'up']);
    }
  }

  /** Add an address (`fd00::1/64`) with nodad, so it is usable at once. */
  addr(ns: Netns, dev: string, cidr: string): void {
    const v6 = cidr.includes(':');
    this.run(ns, ['ip', v6 ? '-6' : '-4', 'addr', 'add', cidr, 'dev', dev, ...(v6 ? ['nodad'] : [])]);
  }

  /** Set a sysctl inside the namespace. */
  sysctl(ns: Netns, key: string, value: string): void {
    this.run(ns, ['sysctl', '-q', '-w', `${key}=${value}`]);
  }

  /** Run a command in the namespace to completion; throws if it fails. */
  run(ns: Netns, argv: string[], opts: { timeoutMs?: number; input?: string } = {}): RunResult {
    return sh(['ip', 'netns', 'exec', ns.name, ...argv], opts);
  }

  /** Run a command in the namespace; return its result even when it fails. */
  tryRun(ns: Netns, argv: string[], opts: { timeoutMs?: number; input?: string } = {}): RunResult {
    return sh(['ip', 'netns', 'exec', ns.name, ...argv], { ...opts, check: false });
  }

  /** Start a long-running process in the namespace; it is killed at cleanup. */
  spawn(ns: Netns, argv: string[], opts: SpawnOptions = {}): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', ns.name, ...argv], { stdio: 'pipe', ...opts });
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    return child;
  }

  /** Link down (the kernel sees the failure: routes go, the driver may be told). */
  linkDown(ns: Netns, dev: string): void {
    this.run(ns, ['ip', 'link', 'set', dev, 'down']);
  }

  linkUp(ns: Netns, dev: string): void {
    this.run(ns, ['ip', 'link', 'set', dev, 'up']);
  }

  /**
   * Silently black-hole a link: nftables drops every packet in and out of
   * `dev` while the link stays up (no carrier loss, no ICMP). Undo with
   * `unblackhole`. The table is per device, so several links can be cut.
   */
  blackhole(ns: Netns, dev: string): void {
    const table = `dpbh_${dev.replace(/[^A-Za-z0-9_]/g, '_')}`;
    const rules = [
      `table netdev ${table} {`,
      `  chain inp { type filter hook ingress device "${dev}" priority -500; policy drop; }`,
      `}`,
    ].join('\n');
    // ingress hook on the device catches inbound; an output rule catches outbound.
    const out = [
      `table inet ${table}_o {`,
      `  chain outp { type filter hook output priority -500; policy accept; oifname "${dev}" drop; }`,
      `  chain forw { type filter hook forward priority -500; policy accept; oifname "${dev}" drop; }`,
      `}`,
    ].join('\n');
    this.run(ns, ['nft', '-f', '-'], { input: rules });
    this.run(ns, ['nft', '-f', '-'], { input: out });
  }

  /** Undo `blackhole`. */
  unblackhole(ns: Netns, dev: string): void {
    const table = `dpbh_${dev.replace(/[^A-Za-z0-9_]/g, '_')}`;
    this.tryRun(ns, ['nft', 'delete', 'table', 'netdev', table]);
    this.tryRun(ns, ['nft', 'delete', 'table', 'inet', `${table}_o`]);
  }

  /**
   * Is `addr` reachable from `ns`? A TCP connect to a closed port: an RST
   * ("refused") or an accept proves two-way reachability without any server
   * and without ping (not installed here); silence until `timeoutMs` means
   * not reachable.
   */
  reach(ns: Netns, addr: string, opts: { port?: number; timeoutMs?: number } = {}): boolean {
    const port = opts.port ?? 9;
    const timeoutMs = opts.timeoutMs ?? DEADLINE_MS; // only a silent (black-holed) address waits it out
    const code = `const s=require('net').connect({host:${JSON.stringify(addr)},port:${port}});` +
      `const t=setTimeout(()=>{console.log('timeout');process.exit(0)},${timeoutMs});` +
      `s.on('connect',()=>{console.log('connected');process.exit(0)});` +
      `s.on('error',e=>{console.log(e.code);process.exit(0)});`;
    const out = this.run(ns, [process.execPath, '-e', code], { timeoutMs: timeoutMs + 5000 }).stdout.trim();
    return out === 'connected' || out === 'ECONNREFUSED';
  }

  /** Kill processes started here, then delete the namespaces (and with them links and nft tables). */
  async cleanup(): Promise<void> {
    if (this.cleaned) return;
    this.cleaned = true;
    const waits: Promise<unknown>[] = [];
    for (const child of this.children) {
      if (child.exitCode !== null || child.signalCode !== null) continue;
      waits.push(new Promise((resolve) => {
        const timer = setTimeout(() => { child.kill('SIGKILL'); resolve(undefined); }, 2000);
        child.once('exit', () => { clearTimeout(timer); resolve(undefined); });
      }));
      child.kill('SIGTERM');
    }
    await Promise.all(waits);
    this.deleteNamespaces();
    process.off('exit', this.onExit);
  }

  /** Synchronous cleanup: SIGKILL our processes, delete our namespaces (also midway through cleanup()). */
  cleanupSync(): void {
    this.cleaned = true;
    process.off('exit', this.onExit);
    for (const child of this.children) child.kill('SIGKILL');
    this.deleteNamespaces();
  }

  private deleteNamespaces(): void {
    for (const name of this.namespaces.splice(0).reverse()) {
      // Anything still running in the namespace was started by us (the name is ours).
      const pids = sh(['ip', 'netns', 'pids', name], { check: false }).stdout.split(/\s+/).filter(Boolean);
      for (const pid of pids) {
        try { process.kill(Number(pid), 'SIGKILL'); } catch { /* already gone */ }
      }
      sh(['ip', 'netns', 'del', name], { check: false });
    }
  }
}

function sh(argv: string[], opts: { timeoutMs?: number; input?: string; check?: boolean } = {}): RunResult {
  const [cmd, ...args] = argv;
  const r = spawnSync(cmd!, args, { encoding: 'utf8', timeout: opts.timeoutMs ?? 120_000, input: opts.input ?? '' });
  const res = { status: r.status, stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? '') };
  if ((opts.check ?? true) && r.status !== 0) {
    throw new Error(`netns: \`${argv.join(' ')}\` failed (${r.status ?? r.signal ?? r.error?.message}): ${res.stderr.trim()}`);
  }
  return res;
}

/**
 * A namespace of its own (`prefix…`) with a veth pair `<prefix>0`/`<prefix>1` up in it and
 * `address` on `<prefix>0`: a host with one link, for a daemon started alone.
 */
export function hostWithLink(t: AfterHook, prefix: string, address = '2001:db8:5533::1/64'): { net: NetLab; ns: Netns } {
  const net = new NetLab(t);
  const ns = net.ns(prefix);
  net.run(ns, ['ip', 'link', 'add', `${prefix}0`, 'type', 'veth', 'peer', 'name', `${prefix}1`]);
  for (const dev of [`${prefix}0`, `${prefix}1`]) net.run(ns, ['ip', 'link', 'set', dev, 'up']);
  net.addr(ns, `${prefix}0`, address);
  return { net, ns };
}
