/**
 * A real authoritative DNS server on loopback for tests: Knot (`knotd`) or BIND
 * (`named`) serving the given zone texts on 127.0.0.1 and ::1 at one ephemeral
 * port, in a temp dir, optionally with a TSIG key (hmac-sha256) that may send
 * RFC 2136 dynamic updates. `start` returns once the server answers SOA for every
 * zone (polled with kdig or dig, bounded); `stop` kills it and removes the dir.
 *
 * With `netns`, the server runs in a namespace of the caller's, on port 53 of the
 * addresses given, and is probed from inside it.
 *
 * Both servers run as root (no privilege drop) so they can read and write the
 * temp dir. Owns nothing but its temp dir and its child process.
 *
 * Usage:
 *   const dns = await startAuthDns({ server: 'knot', zones: [{ name: 'example.', text }] });
 *   t.after(() => dns.stop());
 *   spawnSync('kdig', ['@' + dns.address, '-p', String(dns.port), 'host.example.', 'AAAA']);
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { haveCommand, isRoot } from './prereq.ts';
import { knotServerConfig } from '../../lab/dns.ts';
import { DEADLINE_MS } from './wait.ts';
import { decodeCapabilityRecord } from '../../shim/wire/capability-record.ts';

export type AuthDnsKind = 'knot' | 'bind';

/** One zone to serve: its apex (absolute, with the trailing dot) and master-file text. */
export interface AuthDnsZone {
  name: string;
  text: string;
}

/** A TSIG key (RFC 8945); `secret` is base64. Only hmac-sha256 is configured. */
export interface TsigKeySpec {
  name: string;
  secret: string;
  algorithm?: 'hmac-sha256';
}

export interface AuthDnsOptions {
  /** Which server to run; default: knot if knotd is installed, else bind. */
  server?: AuthDnsKind;
  zones: AuthDnsZone[];
  /** Configure this key on the server. */
  tsig?: TsigKeySpec;
  /** Allow RFC 2136 updates to every zone, signed with `tsig` (required for this). */
  allowUpdate?: boolean;
  /** Also listen on ::1 (default true). */
  ipv6?: boolean;
  /** Readiness deadline in ms (default DEADLINE_MS, 30 s: a busy machine starts servers slowly). */
  timeoutMs?: number;
  /** Extra `server:` settings for Knot, e.g. `['udp-max-payload: 4096']` (ignored for BIND). */
  knotServer?: string[];
  /**
   * Run the server in this network namespace (`ip netns exec`; the caller's own), on port 53 of
   * these IPv6 addresses (already on its interfaces) instead of loopback; the readiness probe
   * is sent from inside it. `ipv6` is then ignored.
   */
  netns?: { name: string; addresses: string[] };
}

export interface AuthDns {
  server: AuthDnsKind;
  /** The port, the same on 127.0.0.1 and ::1, UDP and TCP. */
  port: number;
  /** 127.0.0.1 (in a namespace: the first of its addresses) */
  address: string;
  /** [127.0.0.1, ::1] (or just 127.0.0.1 when ipv6 is false; in a namespace: its addresses). */
  addresses: string[];
  /** The temp dir (config, zone files, journals, logs). */
  dir: string;
  /** Path of the zone file the server loaded for `zone`. */
  zoneFile(zone: string): string;
  /** Server output so far (for failure messages); read from the log file in `dir`. */
  log(): string;
  /** Kill the server (TERM, then KILL after 3 s) and remove the temp dir. Idempotent. */
  stop(): Promise<void>;
  /** The server's process id (to pause it with SIGSTOP: a server that stops answering). */
  pid: number | undefined;
}

/** Which server `startAuthDns` picks by default, or undefined if neither is installed. */
export function defaultAuthDnsKind(): AuthDnsKind | undefined {
  if (haveCommand('knotd')) return 'knot';
  if (haveCommand('named')) return 'bind';
  return undefined;
}

/** A fresh random base64 secret for hmac-sha256 (32 octets). */
export function randomTsigSecret(): string {
  const b = new Uint8Array(32);
  crypto.getRandomValues(b);
  return Buffer.from(b).toString('base64');
}

function abs(name: string): string {
  return name.endsWith('.') ? name : name + '.';
}

function fileNameFor(zone: string): string {
  const n = abs(zone).toLowerCase();
  return (n === '.' ? 'root' : n.slice(0, -1)) + '.zone';
}

/** A port free for UDP and TCP on 127.0.0.1 (and ::1) right now. */
async function freePort(ipv6: boolean): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      const s = createSocket('udp4');
      s.once('error', reject);
      s.bind(0, '127.0.0.1', () => {
        const p = s.address().port;
        s.close(() => resolve(p));
      });
    });
    const hosts = ipv6 ? ['127.0.0.1', '::1'] : ['127.0.0.1'];
    let ok = true;
    for (const host of hosts) {
      ok = ok && (await new Promise<boolean>((resolve) => {
        const srv = createServer();
        srv.once('error', () => resolve(false));
        srv.listen(port, host, () => srv.close(() => resolve(true)));
      }));
      if (ipv6 && host === '::1') {
        ok = ok && (await new Promise<boolean>((resolve) => {
          const s = createSocket('udp6');
          s.once('error', () => resolve(false));
          s.bind(port, '::1', () => s.close(() => resolve(true)));
        }));
      }
    }
    if (ok) return port;
  }
  throw new Error('authdns: no free loopback port found');
}

function knotConfig(dir: string, port: number, opts: AuthDnsOptions): string {
  const listen = opts.netns ? opts.netns.addresses.map((a) => `${a}@${port}`) : [`127.0.0.1@${port}`, ...(opts.ipv6 === false ? [] : [`::1@${port}`])];
  const lines = knotServerConfig(dir, listen, opts.knotServer);
  if (opts.tsig) {
    lines.push('key:', `  - id: ${abs(opts.tsig.name)}`, '    algorithm: hmac-sha256', `    secret: ${opts.tsig.secret}`);
    if (opts.allowUpdate) lines.push('acl:', '  - id: tsig_update', `    key: ${abs(opts.tsig.name)}`, '    action: update');
  }
  lines.push(
    'template:',
    '  - id: default',
    `    storage: "${dir}"`,
    '    file: "%s.zone"',
    // Keep the zone file as written (the test compares against it); updates live in the journal.
    '    zonefile-sync: -1',
    '    zonefile-load: whole',
    '    journal-content: changes',
    '    semantic-checks: on',
    'zone:',
  );
  for (const z of opts.zones) {
    lines.push(`  - domain: ${abs(z.name)}`, `    file: "${path.join(dir, fileNameFor(z.name))}"`);
    if (opts.tsig && opts.allowUpdate) lines.push('    acl: tsig_update');
  }
  return lines.join('\n') + '\n';
}

function bindConfig(dir: string, port: number, opts: AuthDnsOptions): string {
  const v6 = opts.netns ? opts.netns.addresses.map((a) => `${a};`).join(' ') : opts.ipv6 === false ? 'none;' : '::1;';
  const out = [
    'options {',
    `  directory "${dir}";`,
    `  pid-file "${dir}/named.pid";`,
    `  session-keyfile "${dir}/session.key";`,
    `  managed-keys-directory "${dir}";`,
    `  listen-on port ${port} { ${opts.netns ? 'none' : '127.0.0.1'}; };`,
    `  listen-on-v6 port ${port} { ${v6} };`,
    '  recursion no;',
    '  dnssec-validation no;',
    '  allow-query { any; };',
    '  notify no;',
    '};',
    'controls { };',
  ];
  if (opts.tsig) out.push(`key "${abs(opts.tsig.name)}" { algorithm hmac-sha256; secret "${opts.tsig.secret}"; };`);
  for (const z of opts.zones) {
    out.push(`zone "${abs(z.name)}" {`, '  type primary;', `  file "${path.join(dir, fileNameFor(z.name))}";`);
    if (opts.tsig && opts.allowUpdate) out.push(`  allow-update { key "${abs(opts.tsig.name)}"; };`);
    out.push('};');
  }
  return out.join('\n') + '\n';
}

/** One SOA query with kdig (or dig); true when the server answers with the SOA. */
function answersSoa(port: number, zone: string, netns?: AuthDnsOptions['netns']): boolean {
  const kdig = haveCommand('kdig');
  const limits = kdig ? ['+timeout=1', '+retry=0'] : ['+time=1', '+tries=1'];
  const argv = [kdig ? 'kdig' : 'dig', `@${netns ? netns.addresses[0]! : '127.0.0.1'}`, '-p', String(port), abs(zone), 'SOA', ...limits, '+short'];
  const r = spawnSync(netns ? 'ip' : argv[0]!, netns ? ['netns', 'exec', netns.name, ...argv] : argv.slice(1), {
    encoding: 'utf8',
    timeout: 3000,
  });
  return r.status === 0 && String(r.stdout).trim().length > 0;
}

/** Knot's and BIND's log lines for a zone that did not load. */
const LOAD_FAILED = /zone event 'load' failed|failed to load zone|not loaded due to errors|loading from master file .* failed/;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Start a Knot or BIND server on loopback serving `opts.zones`. Throws (after
 * cleaning up) if the server exits or does not answer within the deadline.
 */
export async function startAuthDns(opts: AuthDnsOptions): Promise<AuthDns> {
  const kind = opts.server ?? defaultAuthDnsKind();
  if (!kind) throw new Error('authdns: neither knotd nor named is installed');
  if (opts.allowUpdate && !opts.tsig) throw new Error('authdns: allowUpdate needs a tsig key');
  if (opts.zones.length === 0) throw new Error('authdns: no zones given');
  let lastError: Error | undefined;
  // A port found free may be taken before the server binds it: retry a few times.
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await startOnce(kind, opts);
    } catch (e) {
      lastError = e as Error;
      if (!/address in use|bind|listen/i.test(lastError.message)) break;
    }
  }
  throw lastError ?? new Error('authdns: failed to start');
}

function spawnServer(kind: AuthDnsKind, dir: string, port: number, opts: AuthDnsOptions, logFd: number): ChildProcess {
  // `ip netns exec` execs the server: the child's pid is the server's (SIGSTOP pauses it).
  const run = (argv: string[]): ChildProcess => opts.netns
    ? spawn('ip', ['netns', 'exec', opts.netns.name, ...argv], { stdio: ['ignore', logFd, logFd] })
    : spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', logFd, logFd] });
  if (kind === 'knot') {
    const conf = path.join(dir, 'knot.conf');
    writeFileSync(conf, knotConfig(dir, port, opts));
    return run(['knotd', '-c', conf]);
  }
  const conf = path.join(dir, 'named.conf');
  writeFileSync(conf, bindConfig(dir, port, opts));
  // -g: foreground, log to stderr; -u root keeps it root so it can use the temp dir (a user's own
  // run keeps that user: named cannot change its group then).
  return run(['named', '-g', ...(isRoot() ? ['-u', 'root'] : []), '-c', conf]);
}

/** Poll SOA of every zone until all answer; throws (the caller stops the server) on exit, load failure or deadline. */
async function waitReady(kind: AuthDnsKind, port: number, opts: AuthDnsOptions, exited: () => boolean, readLog: () => string): Promise<void> {
  const timeout = opts.timeoutMs ?? DEADLINE_MS;
  const deadline = Date.now() + timeout;
  const pending = new Set(opts.zones.map((z) => z.name));
  await sleep(150); // both need about this long to bind; an earlier probe just waits out kdig's 1 s timeout
  while (pending.size > 0) {
    if (exited()) throw new Error(`authdns: ${kind} exited or did not start before answering:\n${readLog()}`);
    // Both servers keep running when a zone fails to load: fail fast on their message.
    if (LOAD_FAILED.test(readLog())) throw new Error(`authdns: ${kind} refused a zone:\n${readLog()}`);
    if (Date.now() > deadline) throw new Error(`authdns: ${kind} did not answer within ${timeout} ms:\n${readLog()}`);
    for (const z of [...pending]) if (answersSoa(port, z, opts.netns)) pending.delete(z);
    if (pending.size > 0) await sleep(100);
  }
}

async function startOnce(kind: AuthDnsKind, opts: AuthDnsOptions): Promise<AuthDns> {
  const dir = mkdtempSync(path.join(os.tmpdir(), `authdns-${kind}-`));
  const port = opts.netns ? 53 : await freePort(opts.ipv6 !== false);
  mkdirSync(path.join(dir, 'db'));
  for (const z of opts.zones) writeFileSync(path.join(dir, fileNameFor(z.name)), z.text);
  // The server logs to a file, not a pipe: a test that blocks its event loop (spawnSync)
  // must not stall a server whose pipe to us is full.
  const logPath = path.join(dir, 'server.log');
  const logFd = openSync(logPath, 'a');
  const child = spawnServer(kind, dir, port, opts, logFd);
  closeSync(logFd);
  let spawnError = '';
  const readLog = (): string => {
    try { return readFileSync(logPath, 'utf8') + spawnError; } catch { return spawnError; }
  };
  let exited = false;
  const exitPromise = new Promise<void>((resolve) => child.once('exit', () => { exited = true; resolve(); }));
  child.once('error', (e) => { spawnError += `\nspawn error: ${e.message}`; });

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    if (!exited && child.pid !== undefined) {
      child.kill('SIGTERM');
      const killer = setTimeout(() => { if (!exited) child.kill('SIGKILL'); }, 3000);
      await exitPromise;
      clearTimeout(killer);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitReady(kind, port, opts, () => exited || spawnError !== '', readLog); // a spawn error (not installed) emits no exit
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    server: kind,
    port,
    address: opts.netns ? opts.netns.addresses[0]! : '127.0.0.1',
    addresses: opts.netns ? [...opts.netns.addresses] : opts.ipv6 === false ? ['127.0.0.1'] : ['127.0.0.1', '::1'],
    dir,
    zoneFile: (zone: string) => path.join(dir, fileNameFor(zone)),
    log: readLog,
    stop,
    pid: child.pid,
  };
}

/** `kdig +short` against a server on 127.0.0.1:`port`: the answer's lines, sorted. */
export function kdigShort(port: number, args: string[]): string[] {
  const r = spawnSync('kdig', ['@127.0.0.1', '-p', String(port), ...args, '+short', '+timeout=5', '+retry=1'], { encoding: 'utf8', timeout: 60_000 });
  return String(r.stdout).trim().split('\n').filter((l) => l !== '').sort();
}

/** The locators of a capability record as `kdig +short` prints it (RFC 3597 `\# N hex`); [] for no line. */
export function recordLocators(line: string | undefined): string[] {
  if (!line) return [];
  return decodeCapabilityRecord(new Uint8Array(Buffer.from(line.replace(/^\\# \d+ /, '').replace(/ /g, ''), 'hex'))).locators.map((l) => l.address);
}
