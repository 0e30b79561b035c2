/**
 * shim6 daemons in the lab: one `shim6 daemon` per host (A and B), each with
 * its config (fast timers, its HBA set, its stub resolver on 127.0.0.53
 * forwarding to the lab's Knot, JSON logs), started inside its namespace;
 * their logs are read for the timeline (context established, locator pair
 * changed = re-homing). Owns the daemon processes it starts, their config,
 * log, cache and control-socket files in the lab's state directory.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { shim6NodeArgs } from '../shim/runtime-paths.ts';
import { LAB_ADDR, LAB_IF, LabError, type Lab } from './topology.ts';
import { writeLabCgaKey } from './cga-key.ts';

/** Running daemons of a lab, as the demo and the benchmarks see them. */
export interface LabShim6 {
  /** The address of A's stub resolver (inside A). */
  resolverA: string;
  /** Notable daemon events so far, one line each, for people. */
  events(): string[];
  /** When (epoch ms) A's daemon re-homed after `failAt`, or null. */
  rehomeAt(failAt: number | undefined): number | null;
  /** The locator pair A's context with `peer` was on just before `at` (epoch ms), or null (no context then). */
  pairAt(peer: string, at: number): { local: string; peer: string } | null;
  /** Files of host `h`. */
  files(h: 'a' | 'b'): LabDaemonFiles;
  /** Daemon restarts so far (`restart`, and `start` after `crash` or `stopHost`). */
  restarts(): number;
  /**
   * Where A's first context with `peer` came from: `discovery` (A's daemon
   * discovered it from the flow), `dns` (a capability record primed A),
   * `config` (a `peers` entry), or null (no context).
   */
  contextSource(peer: string): 'dns' | 'config' | 'discovery' | null;
  /** Restart host `h`'s daemon (SIGTERM, then start again with the same config). */
  restart(h: 'a' | 'b'): Promise<void>;
  /** Kill host `h`'s daemon with SIGKILL (a crash: no Close, nothing cleaned up). */
  crash(h: 'a' | 'b'): Promise<void>;
  /** Start host `h`'s daemon again (after `crash` or `stopHost`); `env`: variables of that process over the lab's. */
  start(h: 'a' | 'b', env?: Record<string, string>): Promise<void>;
  /** SIGTERM host `h`'s daemon only and wait for it (bounded): its peer stays up to answer the Close. */
  stopHost(h: 'a' | 'b'): Promise<void>;
  /** SIGTERM both daemons and wait for them (bounded). */
  stop(): Promise<void>;
}

export interface LabDaemonFiles {
  config: string;
  log: string;
  cache: string;
  control: string;
  hba: string;
  /** A's CGA key file (cga-key.ts); B has none. */
  cgaKey: string;
}

export const LAB_TUN = 'labtun';
export const LAB_STUB = '127.0.0.53';

/** Why the daemon cannot run in this build (engine, data plane, TUN addon), or undefined when it can. */
export async function shim6Unavailable(): Promise<string | undefined> {
  try {
    await import('../shim/daemon/daemon.ts');
    const { loadAddon } = await import('../native/addon.ts');
    loadAddon();
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/** Whether the parts the daemon needs exist in this build. */
export async function shim6Available(): Promise<boolean> {
  return (await shim6Unavailable()) === undefined;
}

export function labDaemonFiles(lab: Lab, h: 'a' | 'b'): LabDaemonFiles {
  const d = lab.stateDir;
  return {
    config: path.join(d, `shim6-${h}.json`), log: path.join(d, `shim6-${h}.log`), cache: path.join(d, `caches-${h}.json`),
    control: path.join(d, `control-${h}.sock`), hba: path.join(d, `hba-${h}.json`),
    cgaKey: path.join(d, `cga-${h}.pem`),
  };
}

/** The daemon config of host `h` (extra keys merged over the defaults). */
export function writeLabDaemonConfig(lab: Lab, h: 'a' | 'b', extra: Record<string, unknown> = {}): void {
  const f = labDaemonFiles(lab, h);
  // A signs locators outside its HBA set with its CGA key (renumbering, issue 18).
  if (h === 'a') writeLabCgaKey(f.cgaKey);
  const config = {
    listen: [`${LAB_STUB}:53`],
    upstreams: [h === 'a' ? LAB_ADDR.dnsA : LAB_ADDR.dnsB],
    interfaces: [LAB_IF.P, LAB_IF.Q],
    timers: { profile: 'fast' },
    tun: { name: LAB_TUN, mtu: 1400 },
    log: { level: 'info', format: 'json' },
    cacheFile: f.cache, controlSocket: f.control, hba: f.hba,
    ...(h === 'a' ? { cga: { key: f.cgaKey, sec: 0 } } : {}),
    // The data path can be forced for a whole test run (CI runs the end-to-end tests on both).
    ...(process.env.SHIM6_TEST_DATA_PATH ? { dataPath: process.env.SHIM6_TEST_DATA_PATH } : {}),
    ...(process.env.SHIM6_TEST_ENCAPSULATION ? { encapsulation: process.env.SHIM6_TEST_ENCAPSULATION } : {}),
    ...extra,
  };
  writeFileSync(f.config, JSON.stringify(config, null, 2) + '\n');
}

/** Start host `h`'s daemon and wait (≤ 60 s: a busy machine starts it slowly; only a hang takes that long) for "daemon ready" in its log. */
export async function startLabDaemon(lab: Lab, h: 'a' | 'b', opts: { detached?: boolean; env?: Record<string, string> } = {}): Promise<ChildProcess> {
  const f = labDaemonFiles(lab, h);
  if (!existsSync(f.config)) writeLabDaemonConfig(lab, h);
  const start = existsSync(f.log) ? readFileSync(f.log, 'utf8').length : 0;
  const fd = openSync(f.log, 'a');
  const child = spawn('ip', ['netns', 'exec', h === 'a' ? lab.a : lab.b, process.execPath, ...shim6NodeArgs(), 'daemon', '--config', f.config], {
    stdio: ['ignore', fd, fd], detached: opts.detached ?? false,
    // The lab's own state directory: a lab daemon never sees (nor restores) the host's DNS hand-over.
    env: { ...process.env, STATE_DIRECTORY: lab.stateDir, ...opts.env },
  });
  // Detached (`shim6 lab up`): the daemon outlives the CLI; `lab down` stops it.
  if (opts.detached) child.unref();
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const text = readFileSync(f.log, 'utf8').slice(start);
    if (text.includes('"msg":"daemon ready"')) {
      if (opts.detached) { child.stdout?.destroy(); child.stderr?.destroy(); }
      return child;
    }
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill('SIGKILL');
  throw new LabError(`shim6 daemon on ${h.toUpperCase()} did not start: ${readFileSync(f.log, 'utf8').slice(start).trim().split('\n').slice(-5).join(' | ')}`);
}

/** SIGTERM and wait for exit (≤ 8 s, then SIGKILL). */
export function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => { child.kill('SIGKILL'); resolve(); }, 8000);
    child.once('exit', () => { clearTimeout(t); resolve(); });
    child.kill('SIGTERM');
  });
}

/** One JSON log record of a daemon. */
export interface LogRecord { ts: string; level: string; component: string; msg: string; [k: string]: unknown }

/** Parse a daemon's JSON log file (lines that are not JSON are skipped). */
export function readLog(file: string): LogRecord[] {
  if (!existsSync(file)) return [];
  const out: LogRecord[] = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.startsWith('{')) continue;
    try { out.push(JSON.parse(line) as LogRecord); } catch { /* partial line */ }
  }
  return out;
}

const NOTABLE = new Set(['prime', 'context-established', 'context-closed', 'context-failed', 'locator-pair-changed', 'locator-set-updated', 'peer-unsupported', 'local locators changed', 'tcp prompted after re-homing']);

/** Options of the lab's daemons. */
export interface LabShim6Options {
  /** Timer overrides on top of the fast profile (ms), e.g. `{ sendTimeout: 150 }`. */
  timers?: Record<string, number>;
  /** Other config keys for both daemons. */
  extra?: Record<string, unknown>;
  /** Config keys for A's daemon only (over `extra`). */
  extraA?: Record<string, unknown>;
}

/** Start daemons on B then A (B answers A's I1 at once). */
export async function startLabShim6(lab: Lab, say: (l: string) => void, opts: LabShim6Options = {}): Promise<LabShim6> {
  const procs: Record<'a' | 'b', ChildProcess | undefined> = { a: undefined, b: undefined };
  let restarts = 0;
  for (const h of ['b', 'a'] as const) {
    writeLabDaemonConfig(lab, h, { timers: { profile: 'fast', ...opts.timers }, ...opts.extra, ...(h === 'a' ? opts.extraA : {}) });
    procs[h] = await startLabDaemon(lab, h);
    say(`shim6 daemon on ${h.toUpperCase()} (tun ${LAB_TUN}, stub ${LAB_STUB}, fast profile), log ${labDaemonFiles(lab, h).log}`);
  }
  const stopAll = async (): Promise<void> => {
    await Promise.all((['a', 'b'] as const).map((h) => (procs[h] ? stopProcess(procs[h]) : Promise.resolve())));
  };
  try {
    return {
      resolverA: LAB_STUB,
      files: (h) => labDaemonFiles(lab, h),
      events: () => (['a', 'b'] as const).flatMap((h) => readLog(labDaemonFiles(lab, h).log)
        .filter((r) => NOTABLE.has(r.msg))
        .map((r) => `${r.ts.slice(11, 23)} ${h.toUpperCase()} ${r.msg}${r.peerUlid ? ` peer ${String(r.peerUlid)}` : ''}${r.new ? ` → ${JSON.stringify(r.new)}` : ''}`)).sort(),
      rehomeAt: (failAt) => {
        if (failAt === undefined) return null;
        const r = readLog(labDaemonFiles(lab, 'a').log).find((x) => x.msg === 'locator-pair-changed' && Date.parse(x.ts) >= failAt);
        return r ? Date.parse(r.ts) : null;
      },
      pairAt: (peer, at) => pairAt(readLog(labDaemonFiles(lab, 'a').log), peer, at),
      restarts: () => restarts,
      contextSource: (peer) => contextSource(readLog(labDaemonFiles(lab, 'a').log), peer, opts.extra?.peers),
      restart: async (h) => {
        if (procs[h]) await stopProcess(procs[h]);
        procs[h] = await startLabDaemon(lab, h);
        restarts++;
      },
      crash: async (h) => {
        const p = procs[h];
        if (!p || p.exitCode !== null) return;
        await new Promise<void>((resolve) => { p.once('exit', () => resolve()); p.kill('SIGKILL'); });
      },
      start: async (h, env) => { procs[h] = await startLabDaemon(lab, h, env ? { env } : {}); restarts++; },
      stopHost: async (h) => { if (procs[h]) await stopProcess(procs[h]); },
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/** The pair a daemon's context with `peer` was on just before `at`: its last establishment or pair change (LabShim6.pairAt). */
export function pairAt(records: readonly LogRecord[], peer: string, at: number): { local: string; peer: string } | null {
  let pair: { local: string; peer: string } | null = null;
  for (const r of records) {
    if (r.peerUlid !== peer || Date.parse(r.ts) >= at) continue;
    if (r.msg === 'context-established') pair = (r.pair as typeof pair) ?? null;
    else if (r.msg === 'locator-pair-changed') pair = (r.new as typeof pair) ?? pair;
    else if (r.msg === 'context-closed' || r.msg === 'context-failed') pair = null;
  }
  return pair;
}

/** Where the first context with `peer` in a daemon's log came from (LabShim6.contextSource). */
export function contextSource(records: readonly LogRecord[], peer: string, peers?: unknown): 'dns' | 'config' | 'discovery' | null {
  const first = records.findIndex((r) => r.msg === 'context-established' && r.peerUlid === peer);
  if (first < 0) return null;
  const before = records.slice(0, first + 1);
  // Discovery logs its start before the exchange, and 'context from discovery' right after the context.
  if (before.some((r) => r.msg === 'discovery started' && r.peer === peer)) return 'discovery';
  if (before.some((r) => r.msg === 'prime' && r.ulid === peer)) return 'dns';
  if (Array.isArray(peers) && peers.some((p) => (p as { ulid?: string }).ulid === peer)) return 'config';
  return null;
}
