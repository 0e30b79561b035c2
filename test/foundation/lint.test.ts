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

test('drivers and tools (shim/dataplane, shim/daemon, resolver, lab, native) may do I/O', async () => {
  for (const dir of ['shim/dataplane', 'shim/daemon', 'resolver', 'lab', 'native']) {
    const ids = await ruleIds(`${ROOT}/${dir}/example.ts`);
    assert.deepEqual(ids.filter((r) => r?.startsWith('no-restricted')), [], dir);
  }
});

test('the engine\'s modules import each other without cycles (value imports; type-only imports are erased)', async () => {
  const { readdirSync, readFileSync } = await import('node:fs');
  const dir = `${ROOT}/shim/engine`;
  const files = readdirSync(dir).filter((f) => f.endsWith('.ts'));
  const edges = new Map<string, string[]>();
  for (const f of files) {
    const text = readFileSync(`${dir}/${f}`, 'utf8');
    const deps = [...text.matchAll(/^import (?!type )[^;]*? from '\.\/([\w-]+\.ts)';/gm)].map((m) => m[1]!);
    edges.set(f, deps);
  }
  const cycles: string[] = [];
  const walk = (f: string, path: string[]): void => {
    if (path.includes(f)) { cycles.push([...path.slice(path.indexOf(f)), f].join(' → ')); return; }
    for (const d of edges.get(f) ?? []) walk(d, [...path, f]);
  };
  for (const f of files) walk(f, []);
  assert.deepEqual([...new Set(cycles)], []);
  assert.ok((edges.get('handshake.ts') ?? []).length > 3, 'the import scan sees handshake.ts\'s imports');
});

test('the CLI imports only the daemon, the resolver, the zone tools, the wire formats and shim/*.ts (the lab only in `shim6 lab`)', async () => {
  const eslint = new ESLint({ cwd: ROOT });
  const source = (spec: string, dynamic: boolean): string => (dynamic ? `export const m = import('${spec}');\n` : `export * from '${spec}';\n`);
  const errors = async (file: string, spec: string, dynamic: boolean): Promise<string[]> => {
    const [res] = await eslint.lintText(source(spec, dynamic), { filePath: `${ROOT}/${file}` });
    return (res?.messages ?? []).filter((m) => m.ruleId === 'no-restricted-imports' || m.ruleId === 'no-restricted-syntax').map((m) => m.ruleId!);
  };
  for (const dynamic of [false, true]) {
    const rule = dynamic ? 'no-restricted-syntax' : 'no-restricted-imports';
    for (const room of ['shim/engine/index.ts', 'shim/cache/engine-cache.ts', 'shim/dataplane/udp.ts', 'native/addon.ts', 'lab/lab.ts', 'test/helpers/wait.ts']) {
      assert.deepEqual(await errors('cli/commands/example.ts', `../../${room}`, dynamic), [rule], `${room} (${dynamic ? 'dynamic' : 'static'})`);
      assert.deepEqual(await errors('cli/example.ts', `../${room}`, dynamic), [rule], `${room} from cli/`);
    }
    for (const room of ['shim/daemon/process.ts', 'shim/daemon/control/client.ts', 'resolver/config.ts', 'zone-tools/commands.ts', 'shim/wire/index.ts', 'shim/log.ts']) {
      assert.deepEqual(await errors('cli/commands/example.ts', `../../${room}`, dynamic), [], room);
      assert.deepEqual(await errors('cli/example.ts', `../${room}`, dynamic), [], `${room} from cli/`);
    }
    assert.deepEqual(await errors('cli/commands/example.ts', '../errors.ts', dynamic), [], 'cli\'s own modules');
    assert.deepEqual(await errors('cli/commands/lab.ts', '../../lab/lab.ts', dynamic), [], 'shim6 lab runs the lab');
    assert.deepEqual(await errors('cli/commands/lab.ts', '../../shim/dataplane/routes.ts', dynamic), [rule], 'shim6 lab: not the data plane');
  }
});
