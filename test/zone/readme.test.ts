// Every ```sh example of README.md's "## Zone tools" section runs, in order, in
// one temp dir, with `shim6` on PATH and $PRIMARY a real Knot primary for
// example.org. that takes updates signed with tsig.key (CoreDNS readme_test style).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { needs } from '../helpers/prereq.ts';
import { BIN, ROOT } from '../helpers/cli.ts';
import { randomTsigSecret, startAuthDns } from '../helpers/authdns.ts';
import { tempDir, zoneHeader } from './zonefile.ts';

/** The fenced ```sh blocks of one `## ` section of a Markdown text. */
export function shellBlocks(markdown: string, heading: string): string[] {
  const start = markdown.indexOf(`\n${heading}\n`);
  if (start < 0) return [];
  const rest = markdown.slice(start + heading.length + 2);
  const end = rest.search(/\n## /);
  const section = end < 0 ? rest : rest.slice(0, end);
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
}

function bash(script: string, cwd: string, env: NodeJS.ProcessEnv): Promise<{ status: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn('bash', ['-e', '-o', 'pipefail', '-c', script], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => { output += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { output += d.toString(); });
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('close', (status) => { clearTimeout(timer); resolve({ status, output }); });
  });
}

test('every example of the README "Zone tools" section runs', async (t) => {
  if (!needs(t, { root: true, commands: ['knotd', 'named-checkzone', 'kzonecheck', 'bash'] })) return;
  const blocks = shellBlocks(readFileSync(path.join(ROOT, 'README.md'), 'utf8'), '## Zone tools');
  assert.ok(blocks.length >= 5, `found ${blocks.length} sh blocks in "## Zone tools"`);
  const dir = tempDir(t, 'readme');
  const bin = path.join(dir, '.bin');
  mkdirSync(bin);
  writeFileSync(path.join(bin, 'shim6'), `#!/bin/sh\nexec "${process.execPath}" "${BIN}" "$@"\n`);
  chmodSync(path.join(bin, 'shim6'), 0o755);
  const secret = randomTsigSecret();
  writeFileSync(path.join(dir, 'tsig.key'), `key "host-update" {\n\talgorithm hmac-sha256;\n\tsecret "${secret}";\n};\n`);
  const dns = await startAuthDns({ server: 'knot', zones: [{ name: 'example.org.', text: zoneHeader('example.org.') }], tsig: { name: 'host-update.', secret }, allowUpdate: true });
  t.after(() => dns.stop());
  const env = { ...process.env, PATH: `${bin}:${process.env.PATH ?? ''}`, PRIMARY: `127.0.0.1:${dns.port}` };
  for (const [i, block] of blocks.entries()) {
    const r = await bash(block, dir, env);
    assert.equal(r.status, 0, `README "Zone tools" example ${i + 1} failed:\n${block}\n--- output:\n${r.output}`);
  }
  // The examples did what they say: the zone has all four hosts and the primary has the updates.
  const zone = readFileSync(path.join(dir, 'example.org.zone'), 'utf8');
  for (const h of ['host', 'mobile', 'web1', 'web2']) assert.match(zone, new RegExp(`^${h}\\.example\\.org\\. \\d+ IN TYPE65300 `, 'm'));
});
