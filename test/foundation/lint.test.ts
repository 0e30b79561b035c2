// The sans-I/O rule must actually fire on the protocol core, and only there.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ESLint } from 'eslint';
import { ROOT } from '../helpers/cli.ts';

const offending = `
import dgram from 'node:dgram';
import { readFileSync } from 'fs';
export function f(): number {
  setTimeout(() => undefined, 1);
  void dgram; void readFileSync;
  return Date.now() + performance.now() + new Date().getTime();
}
`;

async function ruleIds(filePath: string): Promise<string[]> {
  const eslint = new ESLint({ cwd: ROOT });
  const [res] = await eslint.lintText(offending, { filePath });
  return (res?.messages ?? []).map((m) => m.ruleId ?? 'fatal');
}

for (const dir of ['shim/wire', 'shim/engine', 'shim/cache']) {
  test(`sans-I/O lint rule rejects sockets, files, timers and clocks in ${dir}/`, async () => {
    const ids = await ruleIds(`${ROOT}/${dir}/example.ts`);
    assert.equal(ids.filter((r) => r === 'no-restricted-imports').length, 2, `imports: ${ids.join(',')}`);
    assert.ok(ids.includes('no-restricted-globals'), 'setTimeout / performance');
    assert.ok(ids.includes('no-restricted-properties'), 'Date.now');
    assert.ok(ids.includes('no-restricted-syntax'), 'new Date()');
  });
}

test('drivers (shim/dataplane, resolver) may do I/O', async () => {
  for (const dir of ['shim/dataplane', 'resolver']) {
    const ids = await ruleIds(`${ROOT}/${dir}/example.ts`);
    assert.deepEqual(ids.filter((r) => r?.startsWith('no-restricted')), [], dir);
  }
});
