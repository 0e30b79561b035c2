/**
 * The tests of test/install/ run what an installed user runs: bin/shim6.js on
 * the compiled dist/. `npm test` builds dist/ first; run alone, a test here
 * fails at once if dist/ is missing or older than a source, instead of testing
 * stale JavaScript.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { TestContext } from 'node:test';
import { buildIsCurrent } from '../../scripts/build.mjs';
import { BUILT_BIN } from '../helpers/cli.ts';
import { waitFor } from '../helpers/wait.ts';

export { BUILT_BIN, waitFor };
export { tmpdir } from '../helpers/tmp.ts';


export function requireBuilt(): void {
  if (!buildIsCurrent()) throw new Error('dist/ is missing or older than the sources: run `npm run build` (npm test builds first)');
}


/** A child process with its output collected; SIGKILLed when the test ends if still running. */
export interface Proc {
  child: ChildProcess;
  out(): string;
  /** Exit code or signal name; undefined while running. */
  status(): number | string | undefined;
  exited(): Promise<number | string>;
}

export function track(t: TestContext, child: ChildProcess): Proc {
  let out = '';
  let status: number | string | undefined;
  child.stdout?.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr?.on('data', (d: Buffer) => { out += d.toString(); });
  child.on('close', (code, signal) => { status = code ?? signal ?? 'unknown'; });
  t.after(() => { if (status === undefined) child.kill('SIGKILL'); });
  return {
    child, out: () => out, status: () => status,
    exited: async () => { await waitFor(() => status !== undefined, 'the process to exit'); return status!; },
  };
}

/** The built `shim6 …args`, running. */
export function spawnBuilt(t: TestContext, args: string[], env: NodeJS.ProcessEnv = process.env): Proc {
  return track(t, spawn(process.execPath, [BUILT_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env }));
}
