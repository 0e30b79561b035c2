// `npm test`: install what is missing, build dist/ when a source is newer
// (the programs the tests start run compiled: test/helpers/cli.ts), compile
// the tests and the sources they import into dist-test/ (scripts/build.mjs
// `buildTests`, about a second), then run every test file under test/ from
// there with node's test runner, CONCURRENCY files at a time, and beside them
// the type check and the lint. The end-to-end files mostly wait on their labs
// (timers of REAP, streams of fixed length), so more files than CPUs keep the
// CPUs busy; SHIM6_TEST_CONCURRENCY overrides it.
// Extra arguments are passed as file filters: `npm test -- wire` runs the test
// files whose path contains "wire".
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { addSbinToPath, ensureNodeDeps, ensureSystemPackages } from './ensure.mjs';
import { TEST_TREE, buildTests, ensureBuilt } from './build.mjs';

/** Test files run at a time. */
const CONCURRENCY = 12;
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
process.chdir(root);

ensureNodeDeps();
ensureSystemPackages();
try {
  await ensureBuilt();
  await buildTests();
} catch (err) {
  console.error(`npm test: build failed: ${err.message}`);
  process.exit(1);
}
// dist/ is current: the programs the tests start (daemons, the zone tool, the lab's tools) run
// compiled, as users run them (shim/runtime-paths.ts). The test files run compiled too, from
// dist-test/ (test/helpers/tree.ts): through tsx, each of the ~120 test processes spent about
// 0.3 s of CPU on the loader alone.
process.env.SHIM6_PROGRAMS = 'dist';
addSbinToPath();
// Node reads the CA bundle NODE_EXTRA_CA_CERTS names at every start, before any code runs (on
// the build machine ~55 ms of CPU per process against ~25 ms for the rest of its start), and a
// run starts ~700 node processes (test files, daemons, the CLI) of which only npm speaks TLS. The
// variable is set aside for the one test that runs npm (test/install/package.test.ts), which gives
// it back to npm.
if (process.env.NODE_EXTRA_CA_CERTS !== undefined) {
  process.env.SHIM6_TEST_NPM_CA_CERTS = process.env.NODE_EXTRA_CA_CERTS;
  delete process.env.NODE_EXTRA_CA_CERTS;
}

/** Start a command with its output gathered; resolves with its label, exit status and output. */
function start(label, cmd, args) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { out += d; });
    child.on('error', (e) => resolve({ label, status: 1, out: out + String(e) }));
    child.on('close', (status) => resolve({ label, status, out }));
  });
}

/** Print each result's output under its label, in order; exit on the first failure. */
function report(results) {
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

/**
 * The folders whose files take longest (labs of namespaces and daemons, streams of fixed length)
 * start first, so that the run does not end waiting on one long file started last.
 */
const LONG_FIRST = ['test/e2e/', 'test/lab/', 'test/handover/', 'test/install/', 'test/zone/'];
const rank = (f) => {
  const i = LONG_FIRST.findIndex((d) => f.startsWith(d));
  return i < 0 ? LONG_FIRST.length : i;
};

const filters = process.argv.slice(2);
const files = findTests('test').filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
if (files.length === 0) {
  console.error('npm test: no test files matched');
  process.exit(1);
}
// The type check and the lint run beside the tests (the end-to-end files mostly wait on their
// labs); their output comes after the tests'. Both keep what they learnt in node_modules/.cache/,
// so a second run checks only what changed (a fresh clone checks everything).
const cache = path.join(root, 'node_modules', '.cache', 'shim6');
// The tools' own entry points, run by this node (an npx process in front of each cost ~1.3 s of CPU).
const bin = (pkg, file) => path.join(root, 'node_modules', pkg, file);
const checks = filters.length === 0
  ? Promise.all([
    start('type check (tsc)', process.execPath, [bin('typescript', 'bin/tsc'), '--noEmit', '--incremental', '--tsBuildInfoFile', path.join(cache, 'tsc.tsbuildinfo'), '-p', '.']),
    start('lint (eslint)', process.execPath, [bin('eslint', 'bin/eslint.js'), '--cache', '--cache-location', path.join(cache, 'eslint'), '.']),
  ])
  : Promise.resolve([]);
const concurrency = process.env.SHIM6_TEST_CONCURRENCY ?? String(CONCURRENCY);
console.log(`\n== tests (${files.length} files, ${concurrency} at a time)`);
// The end-to-end tests keep their labs' daemon logs here (test/e2e/fixture.ts): this run's only.
if (filters.length === 0) rmSync(path.join(root, 'test-artifacts', 'e2e'), { recursive: true, force: true });
const began = Date.now();
const tapFile = path.join(cache, 'last-run.tap');
mkdirSync(cache, { recursive: true });
const tests = await new Promise((resolve) => {
  const compiled = files.map((f) => path.join(TEST_TREE, `${f.slice(0, -3)}.js`));
  // --enable-source-maps: a failure's stack names the TypeScript source's lines.
  // The spec report for the reader; a TAP copy for the counts of the closing line.
  const child = spawn(process.execPath, ['--enable-source-maps', '--test', `--test-concurrency=${concurrency}`, '--test-reporter=spec', '--test-reporter-destination=stdout',
    '--test-reporter=tap', `--test-reporter-destination=${tapFile}`, ...compiled], { stdio: 'inherit' });
  child.on('error', () => resolve(1));
  child.on('close', (status) => resolve(status ?? 1));
});
const seconds = Math.round((Date.now() - began) / 1000);
report(await checks);
if (tests !== 0) {
  console.error(`npm test: tests failed (${seconds} s)`);
  process.exit(tests);
}
// A skip is not a pass: the closing line says how many tests skipped (outside CI, each names the
// prerequisite it lacks; under CI=true a missing prerequisite fails instead).
const tap = readFileSync(tapFile, 'utf8');
const count = (key) => Number(new RegExp(`^# ${key} (\\d+)$`, 'm').exec(tap)?.[1] ?? 0);
const skipped = count('skipped');
console.log(`\nnpm test: ${files.length} test files passed in ${seconds} s (${count('pass')} tests passed${skipped > 0 ? `, ${skipped} skipped for a missing prerequisite` : ''})`);
