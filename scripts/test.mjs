// `npm test`: install what is missing, build dist/ when a source is newer
// (tests run the built `shim6` command too: test/install/), then type check,
// lint, and run every test file under test/ with node's test runner (tsx
// compiles the tests and the sources they import).
// Extra arguments are passed as file filters: `npm test -- wire` runs the test
// files whose path contains "wire".
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureNodeDeps, ensureSystemPackages } from './ensure.mjs';
import { ensureBuilt } from './build.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
process.chdir(root);

ensureNodeDeps();
ensureSystemPackages();
try {
  ensureBuilt();
} catch (err) {
  console.error(`npm test: build failed: ${err.message}`);
  process.exit(1);
}

function run(label, cmd, args) {
  console.log(`\n== ${label}`);
  const r = spawnSync(cmd, args, { stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`npm test: ${label} failed`);
    process.exit(r.status ?? 1);
  }
}

function findTests(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) out.push(...findTests(p));
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out.sort();
}

const filters = process.argv.slice(2);
if (filters.length === 0) {
  run('type check (tsc)', 'npx', ['tsc', '--noEmit', '-p', '.']);
  run('lint (eslint)', 'npx', ['eslint', '.']);
}
const files = findTests('test').filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)));
if (files.length === 0) {
  console.error('npm test: no test files matched');
  process.exit(1);
}
const concurrency = process.env.SHIM6_TEST_CONCURRENCY ?? '2';
run(`tests (${files.length} files)`, process.execPath, ['--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, '--test-reporter=spec', ...files]);
