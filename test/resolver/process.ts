/**
 * `shim6 resolver` as a child process for tests: on an ephemeral loopback port,
 * its control socket in a temp dir, killed at the end of the test. Also reads
 * the process's resident memory (/proc/PID/status) and its status over the
 * control socket.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { BIN } from '../helpers/cli.ts';
import { controlRequest } from '../../shim/daemon/control/client.ts';
import { sleep } from './harness.ts';

import { tmpdir } from '../helpers/tmp.ts';

export { tmpdir };

export interface RunningCli {
  port: number;
  sock: string;
  pid: number;
  stderr(): string;
  /** SIGTERM, then the exit code (or 'timeout' after 5 s). */
  stop(): Promise<number | null | 'timeout'>;
}

/** `shim6 resolver` as a child process on an ephemeral port; resolves once it logged "resolver ready". */
export async function startCli(t: TestContext, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<RunningCli> {
  const sock = path.join(tmpdir(t), 'control.sock');
  const child = spawn(process.execPath, [BIN, 'resolver', '--listen', '127.0.0.1:0', '--socket', sock, '--no-engine', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
  t.after(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  for (let i = 0; i < 300 && !stderr.includes('resolver ready') && child.exitCode === null; i++) await sleep(100);
  assert.match(stderr, /resolver ready/, stderr);
  const port = Number(/listening address=127\.0\.0\.1 port=(\d+)/.exec(stderr)?.[1]);
  return {
    port, sock, pid: child.pid!, stderr: () => stderr,
    stop: () => { child.kill('SIGTERM'); return Promise.race([exited, sleep(5000).then(() => 'timeout' as const)]); },
  };
}

/** Resident set size of a process in MiB (VmRSS in /proc/PID/status). */
export function rssMiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  assert.ok(m, `no VmRSS for ${pid}`);
  return Number(m[1]) / 1024;
}

/** The resolver part of `status` over the control socket. */
export async function resolverStatus<T = { counters: Record<string, number>; tcp: { connections: number; maxConnections: number } }>(cli: RunningCli): Promise<T> {
  // Not the client's 3 s default: a stub under a test's flood on a loaded CI machine answered later (CI run 151).
  return ((await controlRequest(cli.sock, 'status', {}, 30_000)) as { resolver: T }).resolver;
}

/** Poll `cond` (async) every 100 ms until it holds or `ms` passed; returns whether it held. Deadlines are generous: CI is loaded. */
export async function waitFor(cond: () => Promise<boolean> | boolean, ms = 60_000): Promise<boolean> {
  for (let waited = 0; waited < ms; waited += 100) {
    if (await cond()) return true;
    await sleep(100);
  }
  return cond();
}
