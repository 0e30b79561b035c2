// `npm test`: install what is missing, build dist/ when a source is newer
// (tests run the built `shim6` command too: test/install/), then type check
// and lint (side by side), and run every test file under test/ with node's
// test runner (tsx compiles the tests and the sources they import), three
// files at a time: the end-to-end files mostly wait on their labs, so a third
// file keeps both CPUs of the build machine busy.
// Extra arguments are passed as file filters: `npm test -- wire` runs the test
// files whose path contains "wire".
import { spawn, spawnSync } from 'node:child_process';
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

/** Run the commands side by side; print each one's output in order once all are done; exit on a failure. */
async function runTogether(jobs) {
  const results = await Promise.all(jobs.map(([label, cmd, args]) => new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { out += d; });
    child.on('error', (e) => resolve({ label, status: 1, out: out + String(e) }));
    child.on('close', (status) => resolve({ label, status, out }));
  })));
  for (const r of results) {
    console.log(`\n== ${r.label}`);
    process.stdout.write(r.out);
  }
  const failed = results.find((r) => r.status !== 0);
  if (failed) {
    console.error(`npm test: ${failed.label} failed`);
    process.exit(failed.status ?? 1);
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
  await runTogether([['type check (tsc)', 'npx', ['tsc', '--noEmit', '-p', '.']], ['lint (eslint)', 'npx', ['eslint', '.']]]);
}
const files = findTests('test').filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)));
if (files.length === 0) {
  console.error('npm test: no test files matched');
  process.exit(1);
}
const concurrency = process.env.SHIM6_TEST_CONCURRENCY ?? '3';
run(`tests (${files.length} files)`, process.execPath, ['--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, '--test-reporter=spec', ...files]);
// The whole suite also runs the end-to-end failover tests with every context on the kernel path
// (config dataPath: kernel; above they ran on the TUN path, the default): both paths pass the same
// tests. Not test/e2e/restart: it checks the TUN path's way back (B's TCP gets nothing while B's
// daemon is down); on the kernel path the stream flows on natively.
if (filters.length === 0 && process.env.SHIM6_TEST_DATA_PATH === undefined) {
  const kernel = ['test/e2e/primed.test.ts', 'test/e2e/lasting.test.ts'];
  process.env.SHIM6_TEST_DATA_PATH = 'kernel';
  run(`tests on the kernel path (${kernel.length} files, dataPath: kernel)`, process.execPath, ['--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, '--test-reporter=spec', ...kernel]);
}
