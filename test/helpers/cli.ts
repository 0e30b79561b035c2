/**
 * Runs the real `shim6` command as a child process. `BUILT_BIN` is
 * bin/shim6.js, the command users run, on the compiled dist/ (`npm run build`;
 * `npm test` builds first). `BIN` is the command the tests start: the same one
 * under `npm test` (which sets SHIM6_PROGRAMS=dist after building; a start
 * through tsx costs half a second of CPU more), otherwise the sources
 * (shim6-sources.mjs, through tsx), so that a test file run on its own after a
 * source change needs no build.
 */
import { spawn, spawnSync, type SpawnOptions, type SpawnSyncOptions } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import path from 'node:path';
import { packageRoot, programsFromSources } from '../../shim/runtime-paths.ts';

/** The repository (whether the tests run from it or compiled: helpers/tree.ts). */
export const ROOT = packageRoot;
export const BUILT_BIN = path.join(ROOT, 'bin/shim6.js');
export const BIN = programsFromSources ? path.join(ROOT, 'test/helpers/shim6-sources.mjs') : BUILT_BIN;

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** `shim6 …args` from the sources. */
export function shim6(args: string[], opts: SpawnSyncOptions = {}): CliResult {
  return shim6Bin(BIN, args, opts);
}

/** `shim6 …args` through bin/shim6.js: the compiled tree, as installed. */
export function builtShim6(args: string[], opts: SpawnSyncOptions = {}): CliResult {
  return shim6Bin(BUILT_BIN, args, opts);
}

/** `shim6 …args` through the entry point `bin` (the bin/shim6.js of a package elsewhere). */
export function shim6Bin(bin: string, args: string[], opts: SpawnSyncOptions = {}): CliResult {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 60_000, ...opts });
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

/** `shim6 …args` with stdout on `stdout` ('full': /dev/full; 'closed': a pipe whose reader is gone). */
export function shim6BadStdout(args: string[], stdout: 'full' | 'closed'): Promise<{ status: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const fd = stdout === 'full' ? openSync('/dev/full', 'w') : 'pipe';
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', fd, 'pipe'] });
    if (typeof fd === 'number') closeSync(fd);
    child.stdout?.destroy(); // the reader is gone: the child's writes get EPIPE
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.once('error', reject);
    child.once('close', (status) => resolve({ status, stderr }));
  });
}
