/** Runs the real `shim6` command (bin/shim6.js) as a child process. */
import { spawn, spawnSync, type SpawnOptions, type SpawnSyncOptions } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const BIN = path.join(ROOT, 'bin/shim6.js');

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function shim6(args: string[], opts: SpawnSyncOptions = {}): CliResult {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 60_000, ...opts });
  return { status: r.status, stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? '') };
}

/**
 * `shim6 …` as a child process without blocking the event loop, so that a test can run several at
 * once (each tsx start costs a second or more); `input` goes to its stdin.
 */
export function shim6Async(args: string[], input = '', opts: SpawnOptions = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['pipe', 'pipe', 'pipe'], ...opts });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.once('error', (e) => { clearTimeout(timer); reject(e); });
    child.once('close', (status) => { clearTimeout(timer); resolve({ status, stdout, stderr }); });
    child.stdin!.end(input);
  });
}
