/**
 * What the attack tests (issue 15) share: a lab with the attacker on link P
 * (lab/topology.ts `attacker: true`) kept for a whole test file, A's daemon
 * restarted between tests, and the views of A a user has — `shim6 status`
 * (the same JSON `shim6 status --json` prints), A's routes, A's log, the
 * daemon's memory. Not a test file itself.
 *
 * The status and log names of the engine's trust fix (`engine.guard`, the
 * context's `port`, the driver's "ulid claim refused" warning) are read in
 * ONE place each (`rejectedClaims`, `limitedReplies`, `claimRejectionLogs`,
 * `peerPortOf`): adjust them there if they change.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import type { TestContext } from 'node:test';
import { readFileSync } from 'node:fs';
import { LAB_IF, nsExec, type Lab } from '../../lab/topology.ts';
import { labDaemonFiles, LAB_TUN, startLabDaemon, stopProcess, writeLabDaemonConfig, type LogRecord } from '../../lab/daemons.ts';
import { controlRequest } from '../../shim/daemon/control/client.ts';
import { formatIpv6, parseIpv6 } from '../../shim/wire/ipv6.ts';
import { Attacker } from '../helpers/attacker.ts';
import { freshLab, log } from './fixture.ts';
import { needs } from '../helpers/prereq.ts';

/** What the attack tests need besides root. */
export const ATTACK_PREREQ = { root: true, commands: ['ip', 'knotd', 'kdig', 'nft', 'dumpcap'] };

/** Cleanups for a lab shared by the tests of a file (run by the file's `after` hook, last in first out). */
/**
 * A file's attack lab (`x`, brought up in its `before` hook) for test `t`: undefined, the test
 * skipped (failed under CI) naming what is missing, without the prerequisites; asserted up otherwise.
 */
export function sharedLab(t: TestContext, x: AttackLab | undefined): AttackLab | undefined {
  if (!needs(t, ATTACK_PREREQ)) return undefined;
  assert.ok(x, 'the attack lab came up');
  return x;
}

export class Cleanup {
  private readonly fns: Array<() => unknown> = [];
  /** Names what the lab's kept logs are for (test/e2e/fixture.ts). */
  constructor(readonly name: string) {}
  after(fn: () => unknown): void {
    this.fns.push(fn);
  }
  async run(): Promise<void> {
    for (const fn of this.fns.splice(0).reverse()) {
      try { await fn(); } catch { /* keep cleaning */ }
    }
  }
}

/** One context as `shim6 status --json` shows it (the fields the tests read). */
export interface ContextView {
  state: string;
  localUlid: string;
  peerUlid: string;
  contextTag: number;
  peerContextTag: number;
  pair: { local: string; peer: string };
  /** Which way its application packets go (docs/dataplane.md "Kernel path"). */
  path?: 'kernel' | 'encap' | 'tun';
  peerLocators: Array<{ address: string; verified: boolean }>;
  /** The peer's UDP port when not 5533. */
  port?: number;
}

export interface StatusView {
  daemon: { pid: number; routed: string[]; dataPath?: 'kernel' | 'tun'; stats: { udpIn: number; udpOut: number; tunIn: number; kernelTraffic?: number; drops: Record<string, number> } };
  engine: {
    contexts: ContextView[];
    /** What the engine refused for unproven senders (shim/engine/core.ts GuardCounters). */
    guard?: {
      ulidUnproven: number; ulidIsLocal: number; replies: Record<string, { sent: number; limited: number; oversize: number }>;
      /** REAP answers to probes (shim/engine/core.ts ProbeReplyCounts). */
      probeReplies?: { sent: number; limited: number; trimmed: number; portPinned: number };
    };
  };
}

// ---------------------------------------------------------------- names that come with the engine fix (adjust here)

/** I2/I2bis refused because the claimed peer ULID was not proven, or was one of A's own (`engine.guard`). */
export function rejectedClaims(st: StatusView): number | undefined {
  const g = st.engine.guard;
  return g === undefined ? undefined : g.ulidUnproven + g.ulidIsLocal;
}

/** Stateless replies (R1, R1bis, Error) not sent because a token bucket was empty (`engine.guard.replies`). */
export function limitedReplies(st: StatusView): number | undefined {
  const r = st.engine.guard?.replies;
  return r === undefined ? undefined : Object.values(r).reduce((a, c) => a + c.limited, 0);
}

/** A's log records about refusing an unproven ULID claim from `src` (the driver logs once per source). */
export function claimRejectionLogs(records: readonly LogRecord[], src: string): LogRecord[] {
  return records.filter((r) => r.msg.startsWith('ulid claim refused') && r.source === src);
}

/** The UDP port A sends to for this context (status shows `port` only when it is not 5533). */
export function peerPortOf(c: ContextView): number {
  return c.port ?? 5533;
}

// ---------------------------------------------------------------- the lab

/** The attack lab: A's daemon (restartable), optionally B's, and the attacker tool. */
export class AttackLab {
  private procs: Partial<Record<'a' | 'b', ChildProcess>> = {};

  private constructor(readonly lab: Lab, readonly attacker: Attacker, private readonly extra: Partial<Record<'a' | 'b', Record<string, unknown>>>) {}

  /** Build the lab (namespaces named under `prefix` when given), start the daemons asked for (B first) and the attacker tool. */
  static async up(hook: Cleanup, hosts: ReadonlyArray<'a' | 'b'>, extra: Partial<Record<'a' | 'b', Record<string, unknown>>> = {}, prefix?: string): Promise<AttackLab> {
    const lab = await freshLab(hook, { attacker: true }, prefix);
    const x = new AttackLab(lab, Attacker.start(hook, lab), extra);
    hook.after(() => x.stopAll());
    for (const h of ['b', 'a'] as const) if (hosts.includes(h)) await x.start(h);
    return x;
  }

  /**
   * (Re)start host `h`'s daemon with the file's config plus `extra` (a fresh engine: no contexts,
   * full buckets). Returns when the new daemon started (ms, after the one before it stopped): its
   * log lines are those from then on. The daemon before it may log after a test's own start, as
   * when B, started first, sets up again with it a context B's cache file saved.
   */
  async start(h: 'a' | 'b', extra: Record<string, unknown> = this.extra[h] ?? {}): Promise<number> {
    const p = this.procs[h];
    if (p) await stopProcess(p);
    const startedAt = Date.now();
    writeLabDaemonConfig(this.lab, h, extra);
    this.procs[h] = await startLabDaemon(this.lab, h);
    return startedAt;
  }

  async stopAll(): Promise<void> {
    await Promise.all(Object.values(this.procs).map((p) => stopProcess(p)));
  }

  async status(h: 'a' | 'b' = 'a'): Promise<StatusView> {
    return await controlRequest(labDaemonFiles(this.lab, h).control, 'status', {}, 10_000) as StatusView;
  }

  log(h: 'a' | 'b' = 'a'): LogRecord[] {
    return log(this.lab, h);
  }

  /** Routes in A (any table) that send `address` into the shim6 TUN. */
  tunRoutesTo(address: string): string[] {
    return nsExec(this.lab.a, ['ip', '-6', 'route', 'show', 'table', 'all']).stdout.split('\n')
      .filter((l) => (l.startsWith(`${address} `) || l.startsWith(`${address}/128 `)) && (l.includes(`dev ${LAB_TUN}`) || l.includes('table 5533')));
  }

  /** Send one UDP datagram from host `h` (an application there) to `dst`:`port`. */
  sendUdp(h: 'a' | 'b', dst: string, port: number, payloadHex: string): void {
    const code = `const s=require('dgram').createSocket('udp6');s.send(Buffer.from(${JSON.stringify(payloadHex)},'hex'),${port},${JSON.stringify(dst)},(e)=>{if(e)console.error(e.message);s.close()})`;
    nsExec(h === 'a' ? this.lab.a : this.lab.b, [process.execPath, '-e', code]);
  }

  /** Route prefixes via the attacker in A, or in host `h` (the attacker as a router on P for its other /64s). */
  routeViaAttacker(prefix: string, via: string, h: 'a' | 'b' = 'a'): void {
    nsExec(h === 'a' ? this.lab.a : this.lab.b, ['ip', '-6', 'route', 'replace', prefix, 'via', via, 'dev', LAB_IF.P]);
  }

  /** Add many addresses to the attacker in one `ip -batch` (dev LAB_IF.P or lo). */
  addAttackerAddresses(items: ReadonlyArray<{ address: string; dev: string }>): void {
    const batch = items.map((i) => `addr add ${i.address}/${i.dev === 'lo' ? 128 : 64} dev ${i.dev} nodad`).join('\n') + '\n';
    nsExec(this.lab.x, ['ip', '-6', '-batch', '-'], { input: batch, timeoutMs: 60_000 });
  }
}

/** Resident and peak resident memory of a process (kB), from /proc/PID/status. */
export function memoryOf(pid: number): { rssKb: number; hwmKb: number } {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN);
  return { rssKb: kb('VmRSS'), hwmKb: kb('VmHWM') };
}

/** The /64 of an address (the first four groups of its full form). */
export function prefix64(address: string): string {
  const b = parseIpv6(address);
  b.fill(0, 8);
  return `${formatIpv6(b)}/64`;
}
