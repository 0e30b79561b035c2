/** Shared bits of the zone tests: a zone header, temp dirs, and the two real validators. */
import { spawn, spawnSync } from 'node:child_process';
import { BIN } from '../helpers/cli.ts';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';

/** SOA + NS (with its address) for `zone`, so the validators accept the file as a whole zone. */
export function zoneHeader(zone: string): string {
  return [
    `$ORIGIN ${zone}`,
    '$TTL 300',
    `@ IN SOA ns.${zone} hostmaster.${zone} ( 1 3600 600 86400 300 )`,
    `@ IN NS ns.${zone}`,
    `ns IN AAAA 2001:db8::53`,
    '',
  ].join('\n');
}

/** A temp dir removed after the test. */
export function tempDir(t: TestContext, tag = 'zone'): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), `shim6-${tag}-`));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export function writeZone(dir: string, name: string, text: string): string {
  const p = path.join(dir, name);
  writeFileSync(p, text);
  return p;
}

export interface ToolResult { status: number | null; output: string }

export function namedCheckzone(zone: string, file: string): ToolResult {
  const r = spawnSync('named-checkzone', [zone, file], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, output: String(r.stdout) + String(r.stderr) };
}

export function kzonecheck(zone: string, file: string): ToolResult {
  const r = spawnSync('kzonecheck', ['-o', zone, file], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, output: String(r.stdout) + String(r.stderr) };
}

/** The real CLI, asynchronously, so a test can run several at once (each tsx start costs a second or more). */
export function shim6Async(args: string[], input?: string): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('close', (status) => { clearTimeout(timer); resolve({ status, stdout, stderr }); });
    child.stdin.end(input ?? '');
  });
}
