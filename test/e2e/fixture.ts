/**
 * The end-to-end tests' lab: a fresh `shim6 lab` (namespaces A, B, DNS,
 * links P and Q, Knot with B's record) under a unique `e2e…` prefix, and
 * optionally the shim6 daemons; everything is removed in t.after, also when
 * the test fails. Not a test file itself.
 *
 * The tests wait for what the daemons log, with generous deadlines; how long
 * things took is printed (t.diagnostic), and measured by `npm run bench -- failover`.
 */
import type { TestContext } from 'node:test';
import { copyFileSync, existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from '../helpers/cli.ts';
import { LAB_IF, labFor, sh, type Lab } from '../../lab/topology.ts';
import { labDown, labUp, type LabUpOptions } from '../../lab/lab.ts';
import type { runStream } from '../../lab/run.ts';
import { readLog, startLabDaemon, startLabShim6, stopProcess, writeLabDaemonConfig, labDaemonFiles, type LabShim6, type LogRecord } from '../../lab/daemons.ts';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import assert from 'node:assert/strict';
import { DEADLINE_MS } from '../helpers/wait.ts';
import { controlRequest } from '../../shim/daemon/control/client.ts';
import { pinDirectory } from '../../shim/dataplane/bpf-encap.ts';

let n = 0;

/** Where each lab's daemon logs are kept after its test (`npm test` empties it when it starts). */
export const E2E_LOGS = path.join(ROOT, 'test-artifacts', 'e2e');

/**
 * A fresh lab (with the attacker on link P when `opts.attacker`; namespace names under `prefix`
 * when given, else a unique `e2e…`), removed after the test; its
 * daemons' logs, and their status at the test's end (`status-a.log`, `status-b.log`: messages
 * by type, drops by reason), are kept under test-artifacts/e2e/<prefix>-<test name>/ to read
 * when it failed.
 */
export async function freshLab(t: Pick<TestContext, 'after' | 'name'>, opts: LabUpOptions = {}, prefix?: string): Promise<Lab> {
  // `prefix` (at most 7 characters), else SHIM6_E2E_PREFIX (up to 7 lowercase letters or digits): the
  // labs' names start with it instead of `e2e` and the process id, for a run beside others on one
  // host (its namespaces only); a counter after it.
  const lab = labFor(`${prefix ?? process.env.SHIM6_E2E_PREFIX ?? `e2e${process.pid.toString(36).slice(-4)}`}${(n++).toString(36)}`);
  // Hooks run in the order they were added: this one before the daemons' (daemons()), so they still answer.
  t.after(async () => {
    await keepStatus(lab);
    keepLogs(lab, t.name);
    labDown(lab);
  });
  await labUp(lab, opts);
  return lab;
}

function keepLogs(lab: Lab, testName: string): void {
  const logs = existsSync(lab.stateDir) ? readdirSync(lab.stateDir).filter((f) => f.endsWith('.log')) : [];
  if (logs.length === 0) return;
  const dir = path.join(E2E_LOGS, `${lab.prefix}-${process.env.SHIM6_TEST_DATA_PATH ?? "auto"}-${testName.replace(/[^A-Za-z0-9]+/g, '-').slice(0, 60)}`);
  mkdirSync(dir, { recursive: true });
  for (const f of logs) copyFileSync(path.join(lab.stateDir, f), path.join(dir, f));
}

/** Daemons on A and B (fast profile), stopped after the test. */
export async function daemons(t: TestContext, lab: Lab, timers: Record<string, number> = {}, extra: Record<string, unknown> = {}): Promise<LabShim6> {
  const s = await startLabShim6(lab, () => undefined, { timers, extra });
  t.after(() => s.stop());
  return s;
}

/**
 * Both daemons' status, as JSON beside their logs (kept with them by keepLogs); a daemon not
 * running (or not answering) is skipped. Beside it, `kernel-<h>.log`: the host's TCP sockets
 * (`ss -tin`) and, with the kernel encapsulation on, the tc programs on P and Q and their maps of
 * contexts (shim6_egr, shim6_ing), read through the daemon's own mount namespace, where they are
 * pinned: what a stalled stream left.
 */
async function keepStatus(lab: Lab): Promise<void> {
  for (const h of ['a', 'b'] as const) {
    let st: { daemon?: { pid?: number; kernelEncapsulation?: unknown } };
    try {
      st = await controlRequest(labDaemonFiles(lab, h).control, 'status') as typeof st;
      writeFileSync(path.join(lab.stateDir, `status-${h}.log`), JSON.stringify(st, null, 1) + '\n');
    } catch {
      continue; // stopped by the test itself, or never up
    }
    const ns = h === 'a' ? lab.a : lab.b;
    const parts: Array<[string, string[], string?]> = [['ss -tin', ['ip', 'netns', 'exec', ns, 'ss', '-tin']]];
    const pid = st.daemon?.pid;
    if (pid !== undefined && st.daemon?.kernelEncapsulation !== undefined) {
      const filters = [LAB_IF.P, LAB_IF.Q].flatMap((dev) => [`filter show dev ${dev} egress`, `filter show dev ${dev} ingress`]);
      parts.push(['tc filters on P and Q', ['tc', '-n', ns, '-force', '-batch', '-'], filters.join('\n') + '\n']);
      // The daemon's pins are its network namespace's (bpf-encap.ts pinDirectory).
      const netns = statSync(`/proc/${pid}/ns/net`, { throwIfNoEntry: false })?.ino;
      if (netns !== undefined) for (const m of ['shim6_egr', 'shim6_ing']) parts.push([m, ['nsenter', '-t', String(pid), '-m', 'bpftool', 'map', 'dump', 'pinned', `${pinDirectory(netns)}/maps/${m}`]]);
    }
    const text = parts.map(([title, argv, input]) => {
      const r = sh(argv, { check: false, timeoutMs: 10_000, ...(input !== undefined ? { input } : {}) });
      return `== ${title}\n${r.stdout}${r.stderr}`;
    });
    writeFileSync(path.join(lab.stateDir, `kernel-${h}.log`), text.join('\n'));
  }
}

/** One daemon only (host `h`; `extra` config keys over the lab's), stopped after the test. */
export async function oneDaemon(t: TestContext, lab: Lab, h: 'a' | 'b', extra: Record<string, unknown> = {}): Promise<ChildProcess> {
  writeLabDaemonConfig(lab, h, extra);
  const p = await startLabDaemon(lab, h);
  t.after(() => stopProcess(p));
  return p;
}

/** Host `h`'s daemon log records. */
export function log(lab: Lab, h: 'a' | 'b'): LogRecord[] {
  return readLog(labDaemonFiles(lab, h).log);
}

/** Wait (bounded, DEADLINE_MS unless told) until host `h`'s log has a record matching `pred`. */
export async function waitLog(lab: Lab, h: 'a' | 'b', pred: (r: LogRecord) => boolean, timeoutMs = DEADLINE_MS): Promise<LogRecord> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = log(lab, h).find(pred);
    if (r) return r;
    if (Date.now() > deadline) throw new Error(`no matching log record on ${h.toUpperCase()} within ${timeoutMs} ms; last: ${log(lab, h).slice(-5).map((x) => x.msg).join(' | ')}`);
    await new Promise((res) => setTimeout(res, 50));
  }
}

/** The node:test timeout of an end-to-end test: lab, daemons and stream on a busy machine. */
export const E2E_TIMEOUT_MS = 240_000;

/**
 * The application stream's rate in these tests, octets/s: thousands of full-sized segments around
 * every failure, and little CPU for the ~50 streams of a run (on the TUN path every octet crosses
 * both daemons). `mostOf` is what a check of "most of the stream arrived" asks: half of what a
 * stream of `durationMs` plans to send.
 */
export const STREAM_RATE = 1_000_000;
export const mostOf = (durationMs: number): number => (STREAM_RATE * durationMs) / 2000;

/** `ss -tnio` of the established TCP sockets to `peer` in namespace `ns` (their timer, `rto:`, `backoff:`), on one line. */
export function tcpSockets(ns: string, peer: string): string {
  return execFileSync('ip', ['netns', 'exec', ns, 'ss', '-tnioH', 'state', 'established', 'dst', `[${peer}]`], { encoding: 'utf8' }).replace(/\s+/g, ' ').trim();
}

/** A stream (runStream) ended whole and intact. */
export function streamIntact(r: Awaited<ReturnType<typeof runStream>>): void {
  const lastData = r.samples.filter((x) => x.bytes > 0).at(-1);
  assert.equal(r.complete, true, `the stream ended normally (sent ${r.bytes_sent}, verified ${r.bytes_verified}, longest gap ${r.stall_ms} ms, last data at B ${lastData === undefined ? 'never' : `${lastData.t - r.connectedAt} ms after it connected`})`);
  assert.equal(r.corrupt, 0);
  assert.equal(r.bytes_verified, r.bytes_sent, 'every octet once and intact');
}

/** A program in namespace `ns` (`node -e code`), its stdout lines kept; killed after the test. */
export function inNs(t: Pick<TestContext, 'after'>, ns: string, code: string): { child: ChildProcess; lines: string[] } {
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines: string[] = [];
  createInterface({ input: child.stdout! }).on('line', (l) => lines.push(l));
  t.after(() => { child.kill('SIGKILL'); });
  return { child, lines };
}
