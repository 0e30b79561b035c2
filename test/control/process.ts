/**
 * Real `shim6` processes for the control socket tests: `shim6 resolver` with
 * its control socket on a path of the test's choosing (no root, no upstream:
 * the tests only talk to the control socket), waiting on conditions instead of
 * sleeping fixed times (CI runs on a loaded machine), and a process's RSS.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { TestContext } from 'node:test';
import { BIN } from '../helpers/cli.ts';
import { waitFor } from '../helpers/wait.ts';

export { tmpdir } from '../helpers/tmp.ts';

export interface ShimProcess {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Exit code, or the signal's name; undefined while running. */
  status(): number | string | undefined;
  /** Resolves with the exit code (or signal name) once the process has exited. */
  exited(): Promise<number | string>;
}

/**
 * Start `shim6 …args`; killed with SIGKILL when the test ends if still running. `as`: the command
 * that runs node (`setpriv …` to run it as another user; it must exec node, so that the process's
 * pid is node's), `env` and `cwd` the child's.
 */
export function startShim6(t: TestContext, args: string[], opts: { as?: string[]; env?: NodeJS.ProcessEnv; cwd?: string } = {}): ShimProcess {
  const argv = [...(opts.as ?? []), process.execPath, BIN, ...args];
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], ...(opts.env ? { env: opts.env } : {}), ...(opts.cwd ? { cwd: opts.cwd } : {}) });
  let stdout = '';
  let stderr = '';
  let status: number | string | undefined;
  child.stdout!.on('data', (d: Buffer) => { stdout += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  const done = new Promise<number | string>((resolve) => child.on('close', (code, signal) => { status = code ?? signal ?? 'unknown'; resolve(status); }));
  t.after(() => { if (status === undefined) child.kill('SIGKILL'); });
  return {
    child, stdout: () => stdout, stderr: () => stderr, status: () => status,
    exited: async () => {
      await waitFor(() => status !== undefined, `shim6 ${args[0] ?? ''} to exit`);
      return done;
    },
  };
}

/** `shim6 resolver` serving its control socket at `sock`. */
export function startResolver(t: TestContext, sock: string): ShimProcess {
  return startShim6(t, ['resolver', '--listen', '127.0.0.1:0', '--upstream', '127.0.0.1:9', '--no-engine', '--socket', sock]);
}

/** Wait until the resolver logged "resolver ready" (fails at once if it exited instead). */
export async function ready(p: ShimProcess): Promise<void> {
  await waitFor(() => {
    if (p.status() !== undefined) throw new Error(`shim6 resolver exited with ${String(p.status())}: ${p.stderr()}`);
    return p.stderr().includes('resolver ready');
  }, 'resolver ready');
}

/** `shim6 …args` run to completion. */
export async function runShim6(t: TestContext, args: string[], opts: Parameters<typeof startShim6>[2] = {}): Promise<{ status: number | string; stdout: string; stderr: string }> {
  const p = startShim6(t, args, opts);
  const status = await p.exited();
  return { status, stdout: p.stdout(), stderr: p.stderr() };
}

/** Resident set size of process `pid` in KiB (VmRSS in /proc/PID/status). */
export function vmRssKiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for process ${pid}`);
  return Number(m[1]);
}
