/** Shared bits of the zone tests: a zone header, temp dirs, and the two real validators. */
import { spawnSync } from 'node:child_process';
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

/** The real CLI, asynchronously (test/helpers/cli.ts). */
export { shim6Async, shim6BadStdout } from '../helpers/cli.ts';

