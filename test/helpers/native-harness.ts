/**
 * C programs of the tests that include the addon's sources (native/*.c) as they are, to call what
 * N-API does not reach (static parsers, the NFLOG socket's set-up), built with AddressSanitizer and
 * UBSan: a read or write out of bounds aborts the program. The N-API, libuv and reader calls of the
 * included sources, which the programs never make, are stubbed (a trap if one were made).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import assert from 'node:assert/strict';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { packageRoot } from '../../shim/runtime-paths.ts';
import { needs } from './prereq.ts';
import { tmpdir } from './tmp.ts';

/** `source` (relative to the repository root) built as above → the program's path; undefined when skipped (prerequisites missing, outside CI). */
export function buildNativeHarness(t: TestContext, source: string): string | undefined {
  // Node's headers, where node-gyp found them for the addon: beside node, or in node-gyp's cache.
  const headers = [path.join(process.execPath, '../../include/node'), path.join(os.homedir(), '.cache/node-gyp', process.versions.node, 'include/node')]
    .find((d) => existsSync(path.join(d, 'node_api.h')));
  if (!needs(t, { commands: ['cc', 'nm'], paths: [headers ?? 'node_api.h (node\'s headers)'] })) return undefined;
  const dir = tmpdir(t, 'shim6-native-harness-');
  const cc = (args: string[]): void => {
    const r = spawnSync('cc', ['-g', '-O1', '-fsanitize=address,undefined', '-fno-sanitize-recover=all', ...args], { encoding: 'utf8' });
    assert.equal(r.status, 0, `cc ${args.join(' ')}: ${r.stderr}`);
  };
  const obj = path.join(dir, 'harness.o');
  cc(['-c', `-I${path.join(packageRoot, 'native')}`, `-I${headers!}`, '-o', obj, path.join(packageRoot, source)]);
  const nm = spawnSync('nm', ['-u', obj], { encoding: 'utf8' });
  assert.equal(nm.status, 0, nm.stderr);
  const stubs = nm.stdout.split('\n').map((l) => l.trim().split(/\s+/).pop()!).filter((s) => /^(napi_|uv_|reader_)/.test(s));
  writeFileSync(path.join(dir, 'stubs.c'), stubs.map((s) => `void ${s}(void) { __builtin_trap(); }\n`).join(''));
  const bin = path.join(dir, 'harness');
  cc(['-o', bin, obj, path.join(dir, 'stubs.c')]);
  return bin;
}
